"""Procedural micrographs with exact ground truth: the built-in dataset of the demo and the tests.

Three classes that differ by texture and shape, not only by brightness:

0. ``matrix``: Voronoi grains of slightly different grey, smooth low-frequency mottling, darker
   grain boundaries;
1. ``lamellar``: colonies (whole grains) filled with parallel lamellae of random orientation and
   period (pearlite-like); their mean grey equals the matrix's, so only the texture tells them apart;
2. ``precipitate``: small bright round particles (radius 2-5 px) in the matrix.

SEM-like imaging follows: Gaussian blur, a brightness gradient across the field, a random gain and
offset per image, and shot plus read noise; then 8-bit quantisation. Everything is drawn from one
``numpy.random.Generator`` per image, derived from the dataset seed, so output is deterministic.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.spatial import cKDTree

from pscl.errors import DataError
from pscl.files import publish_folder

CLASSES = ["matrix", "lamellar", "precipitate"]


def synth_micrograph(rng: np.random.Generator, size: int = 256,
                     classes: Sequence[int] = (0, 1, 2)) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic micrograph: (uint8 image (size, size), uint8 mask (size, size)).

    ``classes`` lists the classes that may appear (0 = matrix, 1 = lamellar, 2 = precipitate);
    ``(1,)`` gives an image made only of lamellar colonies, ``(0,)`` only matrix grains.
    """
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # -- grains: Voronoi cells of random seeds
    n_grains = max(4, int(rng.poisson(size * size / 45.0 ** 2)))
    seeds = rng.uniform(0, size, size=(n_grains, 2))
    _, grain = cKDTree(seeds).query(np.stack([yy.ravel(), xx.ravel()], 1))
    grain = grain.reshape(h, w)
    lamellar_share = 0.4 if {0, 1} <= set(classes) else (1.0 if 1 in classes else 0.0)
    is_lamellar = rng.random(n_grains) < lamellar_share
    if 0 in classes and 1 in classes and not is_lamellar.any():
        is_lamellar[rng.integers(n_grains)] = True
    mask = np.where(is_lamellar[grain], 1, 0).astype(np.uint8)
    # -- matrix: per-grain grey level plus smooth mottling
    level = rng.uniform(0.42, 0.58, n_grains).astype(np.float32)
    mottle = ndimage.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), 6)
    mottle *= 0.05 / (mottle.std() + 1e-6)
    image = level[grain] + mottle
    # -- lamellae: a sinusoid of random orientation and period per colony, same mean grey
    theta = rng.uniform(0, np.pi, n_grains)
    period = rng.uniform(4.5, 8.0, n_grains)
    phase = (xx * np.cos(theta)[grain] + yy * np.sin(theta)[grain]) / period[grain]
    lamellae = 0.5 + 0.22 * np.sin(2 * np.pi * phase)
    image = np.where(mask == 1, lamellae, image)
    # -- grain boundaries: darker lines, class of the grain they lie in
    boundary = (np.diff(grain, axis=0, prepend=grain[:1]) != 0) | (np.diff(grain, axis=1, prepend=grain[:, :1]) != 0)
    boundary = ndimage.binary_dilation(boundary)
    image = np.where(boundary, image - 0.12, image)
    # -- precipitates: bright discs inside the matrix
    if 2 in classes:
        n_particles = int(rng.poisson(size * size / 1400.0)) + 1
        for _ in range(n_particles):
            r = rng.uniform(2.0, 5.0)
            cy, cx = rng.uniform(0, size, 2)
            if 0 in classes and mask[int(cy), int(cx)] != 0 and len(classes) > 1:
                continue  # precipitates sit in the matrix when a matrix exists
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            image = np.where(disc, rng.uniform(0.82, 0.95), image)
            mask[disc] = 2
    # -- SEM imaging: blur, drift, gain/offset, shot + read noise, 8-bit
    image = ndimage.gaussian_filter(image, rng.uniform(0.6, 1.1))
    angle = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0.0, 0.15) * ((xx * np.cos(angle) + yy * np.sin(angle)) / size - 0.5)
    image = rng.uniform(0.7, 1.2) * (image + drift) + rng.uniform(-0.1, 0.1)
    image = image + rng.normal(0, 1, (h, w)) * (0.025 + 0.04 * np.sqrt(np.clip(image, 0, None)))
    image8 = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    return image8, mask


def _save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path, format="PNG")


KINDS = ("micrograph", "cross-section")


def synthesize_dataset(out: str | Path, n: int = 12, seed: int = 0, size: int = 256,
                       n_unlabeled: int | None = None, overwrite: bool = False, kind: str = "micrograph") -> Path:
    """Write a dataset folder of ``n`` labelled and ``n_unlabeled`` (default 2n) unlabelled images:
    plan views of a microstructure (``kind="micrograph"``, :func:`synth_micrograph`) or coated
    cross-sections (``"cross-section"``, :func:`pscl.data.synth_cross.synth_cross_section`).

    Splits: a quarter each (at least one image) to val and test, the rest to train. The folder
    appears complete or not at all: it is built in a temporary folder and renamed into place.
    """
    out = Path(out)
    if kind not in KINDS:
        raise ValueError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if n < 3:
        raise ValueError(f"n must be >= 3 (train, val and test need one image each), got {n}")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out}: exists and is not empty (pass --overwrite to replace it, or choose another --out)")
        shutil.rmtree(out)
    n_unlabeled = 2 * n if n_unlabeled is None else n_unlabeled
    from pscl.data.synth_cross import CROSS_CLASSES, synth_cross_section
    draw, classes = (synth_micrograph, CLASSES) if kind == "micrograph" else (synth_cross_section, CROSS_CLASSES)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        for sub in ("images", "masks", "unlabeled"):
            (tmp / sub).mkdir()
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n + n_unlabeled)]
        stems = [f"synth{i:03d}" for i in range(n)]
        for stem, rng in zip(stems, rngs[:n]):
            image, mask = draw(rng, size)
            _save_png(tmp / "images" / f"{stem}.png", image)
            _save_png(tmp / "masks" / f"{stem}.png", mask)
        for i, rng in enumerate(rngs[n:]):
            _save_png(tmp / "unlabeled" / f"unlab{i:03d}.png", draw(rng, size)[0])
        n_eval = max(1, n // 4)
        splits = {"train": stems[: n - 2 * n_eval], "val": stems[n - 2 * n_eval: n - n_eval],
                  "test": stems[n - n_eval:]}
        meta = {"name": "synthetic" if kind == "micrograph" else "synthetic-cross-section", "classes": classes,
                "splits": splits, "modality": f"synthetic SEM-like {kind}s",
                "source": f"pscl.data.synth seed={seed} kind={kind}",
                "licence": "CC0", "notes": f"{size}x{size}, generated by pscl"}
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            out.rmdir()
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
