"""Class colours and the overlay of a segmentation on its micrograph (numpy only)."""
from __future__ import annotations

import numpy as np

# one colour per class index (matplotlib's tab10): overlays, the bench figure and the report agree
PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
                   dtype=np.uint8)


def class_colours(num_classes: int, colours: list | None = None) -> np.ndarray:
    """(num_classes, 3) uint8: the given RGB triples (e.g. a user's, recorded in predictions.json), else
    :data:`PALETTE` in turn."""
    if colours is not None and len(colours) >= num_classes:
        return np.asarray(colours[:num_classes], dtype=np.uint8).reshape(num_classes, 3)
    return PALETTE[np.arange(num_classes) % len(PALETTE)]


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45, rows: int = 256,
            palette: np.ndarray = PALETTE) -> np.ndarray:
    """RGB uint8: the normalised grey image with class colours (``palette``) blended over it, ``rows`` rows
    at a time so that no float copy of a whole large micrograph is made (memory: the output only)."""
    out = np.empty((*labels.shape, 3), dtype=np.uint8)
    for y in range(0, labels.shape[0], rows):
        grey = (np.clip(image[y:y + rows], 0, 1) * 255).astype(np.float32)[..., None]
        colour = palette[labels[y:y + rows] % len(palette)].astype(np.float32)
        out[y:y + rows] = np.clip((1 - alpha) * grey + alpha * colour, 0, 255).astype(np.uint8)
    return out
