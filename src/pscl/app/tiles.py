"""Tiles of a micrograph and of its label layers, for a viewer that never holds a whole large image.

Level ``L`` shows the image at 1 / 2**L of its size, cut into :data:`TILE` x :data:`TILE` tiles; the
viewer asks only for the tiles it shows, at the level nearest its zoom. The grey levels are the
micrograph's 1st..99th intensity percentile stretched to 0..255 (as the model sees it); the level images
are made once per micrograph (each halves the one before) and kept for the :data:`CACHED` micrographs
used last. Label layers (strokes, predicted classes) are coloured per class index with 255 transparent;
the unsure layer is red with the model's unsureness as opacity.
"""
from __future__ import annotations

import io
import math
from collections import OrderedDict
from pathlib import Path
from threading import Lock

import numpy as np
from PIL import Image

from pscl.data.io import IGNORE_INDEX, normalize_intensity, read_image

TILE = 256
CACHED = 6
THUMB = 160


def levels_for(height: int, width: int) -> int:
    """Level count: down to the level whose larger side fits one tile."""
    return max(1, math.ceil(math.log2(max(height, width, TILE) / TILE)) + 1)


def display_image(path: Path) -> np.ndarray:
    """The micrograph as uint8 grey, percentile-stretched."""
    return (np.clip(normalize_intensity(read_image(path)), 0, 1) * 255 + 0.5).astype(np.uint8)


class Pyramid:
    """The level images of one micrograph (uint8), level 0 the full size."""

    def __init__(self, image: np.ndarray):
        self.levels = [image]
        current = Image.fromarray(image)
        for _ in range(1, levels_for(*image.shape)):
            current = current.reduce(2) if min(current.size) >= 2 else current
            self.levels.append(np.asarray(current))

    def tile(self, level: int, tx: int, ty: int) -> np.ndarray | None:
        if not 0 <= level < len(self.levels):
            return None
        return label_tile(self.levels[level], 0, tx, ty)


def label_tile(labels: np.ndarray, level: int, tx: int, ty: int) -> np.ndarray | None:
    """The tile (tx, ty) of a full-size array at ``level`` (nearest: every 2**level-th pixel; at level 0
    a plain cut, as of a level image), None outside it."""
    step = 2 ** level
    y0, x0 = ty * TILE * step, tx * TILE * step
    if tx < 0 or ty < 0 or y0 >= labels.shape[0] or x0 >= labels.shape[1]:
        return None
    return labels[y0:y0 + TILE * step:step, x0:x0 + TILE * step:step]


def colour_table(colours: list[tuple[int, int, int]]) -> np.ndarray:
    """RGBA lookup of 256 entries: the class colours opaque, every other index transparent."""
    table = np.zeros((256, 4), dtype=np.uint8)
    for index, rgb in enumerate(colours[:IGNORE_INDEX]):
        table[index] = (*rgb, 255)
    return table


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def unsure_rgba(unsure: np.ndarray) -> np.ndarray:
    out = np.zeros((*unsure.shape, 4), dtype=np.uint8)
    out[..., 0] = 255
    out[..., 3] = unsure
    return out


def thumbnail(path: Path, size: int = THUMB) -> bytes:
    """A small PNG of the micrograph (its longer side ``size`` px)."""
    image = Image.fromarray(display_image(path))
    image.thumbnail((size, size))
    return png(np.asarray(image))


class PyramidCache:
    """The pyramids of the micrographs viewed last (thread-safe; one build per micrograph at a time)."""

    def __init__(self, size: int = CACHED):
        self.size, self.items, self.lock = size, OrderedDict(), Lock()

    def get(self, path: Path) -> Pyramid:
        key = (str(path), path.stat().st_mtime_ns)
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        pyramid = Pyramid(display_image(path))
        with self.lock:
            self.items[key] = pyramid
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return pyramid


__all__ = ["TILE", "Pyramid", "PyramidCache", "colour_table", "display_image", "label_tile", "levels_for",
           "png", "thumbnail", "unsure_rgba"]
