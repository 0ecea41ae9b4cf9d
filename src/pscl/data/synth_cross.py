"""Procedural cross-sections with exact ground truth: layers stacked along one axis, thin cracks.

A polished cross-section of a coated part, as an SEM shows it, top to bottom:

0. ``resin``: the mounting resin above the surface, dark and smooth;
1. ``coating``: a band of columnar grains grown from the substrate (vertical streaks) with a wavy
   top and bottom;
2. ``substrate``: equiaxed grains of the base metal, brighter;
3. ``crack``: thin dark cracks (1-3 px) running from the coating's surface down into it, mostly
   vertical.

Unlike :mod:`pscl.data.synth`, the structure has a direction: turned by a quarter turn, the layers
stand on end and the cracks lie flat, which no real cross-section shows. Drawn from one
``numpy.random.Generator`` per image, so output is deterministic.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

CROSS_CLASSES = ["resin", "coating", "substrate", "crack"]


def _wavy(rng: np.random.Generator, width: int, mean: float, amplitude: float) -> np.ndarray:
    """A smooth random line across the image: one row position per column."""
    line = ndimage.gaussian_filter1d(rng.normal(0, 1, width), width / 12, mode="wrap")
    return mean + amplitude * line / (np.abs(line).max() + 1e-6)


def synth_cross_section(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic cross-section: (uint8 image (size, size), uint8 mask (size, size))."""
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    top = _wavy(rng, w, rng.uniform(0.15, 0.3) * h, rng.uniform(0.01, 0.04) * h)
    bottom = top + _wavy(rng, w, rng.uniform(0.3, 0.45) * h, rng.uniform(0.01, 0.05) * h)
    mask = np.where(yy < top[None], 0, np.where(yy < bottom[None], 1, 2)).astype(np.uint8)
    # resin: dark, smooth
    image = np.full((h, w), rng.uniform(0.12, 0.2), np.float32)
    # coating: columnar grains, long along y (growth direction), one grey level each
    columns = max(6, int(w / rng.uniform(8, 14)))
    edges = np.sort(rng.uniform(0, w, columns))
    column = np.searchsorted(edges, xx[0]).astype(np.int64)
    column_level = rng.uniform(0.5, 0.62, columns + 1).astype(np.float32)
    streaks = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), (12, 0.8))
    coating = column_level[column][None, :] + 0.04 * streaks / (streaks.std() + 1e-6)
    image = np.where(mask == 1, coating, image)
    # substrate: equiaxed Voronoi grains, brighter, boundaries slightly darker
    seeds = rng.uniform(0, size, size=(max(6, int(size * size / 30.0 ** 2)), 2))
    _, grain = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
    grain = grain.reshape(h, w)
    substrate = rng.uniform(0.7, 0.82, len(seeds)).astype(np.float32)[grain]
    boundary = (np.diff(grain, axis=0, prepend=grain[:1]) != 0) | (np.diff(grain, axis=1, prepend=grain[:, :1]) != 0)
    substrate = np.where(boundary, substrate - 0.08, substrate)
    image = np.where(mask == 2, substrate, image)
    # cracks: from the coating's surface down into it, a random walk in x, 1-3 px wide
    for _ in range(int(rng.integers(1, 4))):
        x = rng.uniform(0.05, 0.95) * w
        depth = rng.uniform(0.5, 1.0)
        half = rng.uniform(0.5, 1.5)
        y0 = int(top[int(x)])
        y1 = int(y0 + depth * (bottom[int(x)] - y0))
        for y in range(max(0, y0 - 1), min(h, y1)):
            x += rng.normal(0, 0.35)
            x = float(np.clip(x, 2, w - 3))
            lo, hi = int(round(x - half)), int(round(x + half)) + 1
            mask[y, lo:hi] = 3
            image[y, lo:hi] = rng.uniform(0.05, 0.12)
    # SEM imaging: blur, gain/offset, shot + read noise, 8-bit
    image = ndimage.gaussian_filter(image, rng.uniform(0.5, 0.9))
    image = rng.uniform(0.8, 1.15) * image + rng.uniform(-0.06, 0.06)
    image = image + rng.normal(0, 1, (h, w)) * (0.02 + 0.03 * np.sqrt(np.clip(image, 0, None)))
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8), mask
