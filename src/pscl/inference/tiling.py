"""Segmenting images of any size with any per-tile model: overlapping tiles blended smoothly,
streamed by rows. Numpy only, so the torch and the ONNX Runtime paths share it.

An image that fits in one tile is segmented in a single pass (exactly whole-image inference).
A larger one is cut into ``tile`` x ``tile`` tiles overlapping by ``overlap`` pixels; each tile's
class probabilities are weighted by a window that ramps linearly over the overlap (never zero,
so every pixel is covered) and the weighted sum is normalised. Tiles are processed one row of
tiles at a time and rows are finalised as soon as no later tile touches them, so memory holds
one strip of ``C x tile x width`` probabilities, not the whole image's: a 10000 x 10000
micrograph segments in a few hundred MB beyond the image itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from pscl.data.orientation import ALL_TRANSFORMS, apply, undo

#: maps a batch of same-sized grey tiles (N, H, W) float32 to class probabilities (N, C, H, W)
TileModel = Callable[[np.ndarray], np.ndarray]

@dataclass
class Segmentation:
    """Per-pixel labels (uint8, H x W), the mean class probabilities over the image, and per pixel how
    unsure the model is (uint8, 0: all probability on one class, 255: spread evenly over all classes)."""

    labels: np.ndarray
    mean_probabilities: np.ndarray
    unsure: np.ndarray | None = None

    def fractions(self, num_classes: int) -> np.ndarray:
        """Area fraction of every class (hard labels)."""
        return np.bincount(self.labels.ravel(), minlength=num_classes)[:num_classes] / self.labels.size


def with_tta(tile_model: TileModel, transforms: tuple[tuple[bool, int], ...] = ALL_TRANSFORMS) -> TileModel:
    """Test-time augmentation: the tile model's probabilities averaged over ``transforms`` of each tile
    (each mapped back before averaging): the 8 flips and quarter turns, or those the run's geometry
    allows (:mod:`pscl.data.orientation`). One forward pass per transform."""
    def run(tiles: np.ndarray) -> np.ndarray:
        total = None
        for transform in transforms:
            p = tile_model(np.ascontiguousarray(apply(tiles, transform, axes=(1, 2))))
            p = undo(p, transform, axes=(2, 3))
            total = p.astype(np.float32) if total is None else total + p
        return total / len(transforms)
    return run


def averaged(tile_models: list[TileModel]) -> TileModel:
    """An ensemble: the mean of several tile models' probabilities (e.g. U-Nets fine-tuned on the same
    annotated image with different seeds, whose single-run Dice differs by several hundredths)."""
    if not tile_models:
        raise ValueError("an ensemble needs at least one model")

    def run(tiles: np.ndarray) -> np.ndarray:
        return sum(m(tiles).astype(np.float32) for m in tile_models) / len(tile_models)
    return run


def _ramp(length: int, overlap: int) -> np.ndarray:
    i = np.arange(length, dtype=np.float32) + 0.5
    if overlap <= 0:
        return np.ones(length, dtype=np.float32)
    return np.minimum(1.0, np.minimum(i, length - i) / overlap)


def _origins(size: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of the tiles along one axis; starts are multiples of the stride (itself a
    multiple of 8) so every tile sees the same pooling grid as whole-image inference."""
    spans, start = [], 0
    while True:
        spans.append((start, min(tile, size - start)))
        if start + tile >= size:
            return spans
        start += stride


def segment_tiled(tile_model: TileModel, image: np.ndarray, num_classes: int, tile: int = 512,
                  overlap: int = 128, batch_size: int = 4,
                  on_strip: Callable[[int, int], None] | None = None) -> Segmentation:
    """Segment a normalised (H, W) float image by overlapping tiles (see module doc);
    ``on_strip(done, total)`` is called after each strip of tiles (progress of a large micrograph)."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
    if tile < 16 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 16 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    h, w = image.shape
    c = num_classes
    th, tw = min(tile, h), min(tile, w)
    if th == h and tw == w:
        probs = tile_model(image[None])[0]
        return Segmentation(probs.argmax(0).astype(np.uint8), probs.reshape(c, -1).mean(1), _unsure(probs))
    stride = max(8, (tile - overlap) // 8 * 8)
    ys, xs = _origins(h, th, stride), _origins(w, tw, stride)
    labels = np.empty((h, w), dtype=np.uint8)
    unsure = np.empty((h, w), dtype=np.uint8)
    prob_sum = np.zeros(c, dtype=np.float64)
    acc = np.zeros((c, th, w), dtype=np.float32)  # strip of rows [y0, y0 + th)
    wsum = np.zeros((th, w), dtype=np.float32)
    for n, (y0, hh) in enumerate(ys):
        wy = _ramp(hh, overlap)
        for b in range(0, len(xs), batch_size):
            group = xs[b:b + batch_size]
            # tiles of one batch must share a shape: the short last tile goes alone
            for same in ([g for g in group if g[1] == tw], [g for g in group if g[1] != tw]):
                if not same:
                    continue
                probs = tile_model(np.stack([image[y0:y0 + hh, x0:x0 + ww] for x0, ww in same]))
                for (x0, ww), p in zip(same, probs):
                    window = wy[:, None] * _ramp(ww, overlap)[None, :]
                    acc[:, :hh, x0:x0 + ww] += p * window
                    wsum[:hh, x0:x0 + ww] += window
        done = (ys[n + 1][0] - y0) if n + 1 < len(ys) else hh
        p = acc[:, :done] / wsum[:done]
        labels[y0:y0 + done] = p.argmax(0)
        unsure[y0:y0 + done] = _unsure(p)
        prob_sum += p.reshape(c, -1).sum(1)
        acc = np.concatenate([acc[:, done:], np.zeros((c, done, w), np.float32)], 1)
        wsum = np.concatenate([wsum[done:], np.zeros((done, w), np.float32)], 0)
        if on_strip:
            on_strip(n + 1, len(ys))
    return Segmentation(labels, prob_sum / (h * w), unsure)


def _unsure(probs: np.ndarray) -> np.ndarray:
    """(C, H, W) probabilities -> uint8 (1 - max probability) / (1 - 1 / C) * 255."""
    c = probs.shape[0]
    return np.clip((1 - probs.max(0)) / (1 - 1 / c) * 255 + 0.5, 0, 255).astype(np.uint8)


__all__ = ["Segmentation", "TileModel", "segment_tiled", "with_tta"]
