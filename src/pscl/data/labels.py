"""What the annotation covers: labelled pixels per class and image, and the classes nothing labels.

With strokes most pixels are not labelled, and a class a user forgot to stroke is never learnt; `pscl data
check` shows the counts and warns about such classes.
"""
from __future__ import annotations

import numpy as np

from pscl.data.folders import DatasetFolder
from pscl.data.io import IGNORE_INDEX, read_mask
from pscl.errors import DataError


def labelled_pixels(ds: DatasetFolder, split: str = "train") -> dict[str, tuple[np.ndarray, int]]:
    """stem -> (labelled pixels of each class (C,), pixels of the mask) for the masks of ``split`` (unreadable
    masks skipped: the check reports them)."""
    counts = {}
    for stem in ds.stems(split):
        try:
            mask = read_mask(ds.mask_path(stem))
        except DataError:
            continue
        labelled = mask[mask != IGNORE_INDEX]
        counts[stem] = np.bincount(labelled[labelled < ds.num_classes], minlength=ds.num_classes), mask.size
    return counts


def label_warnings(ds: DatasetFolder, counts: dict[str, tuple[np.ndarray, int]]) -> list[str]:
    """Classes no train mask labels (they can never be predicted)."""
    if not counts:
        return []
    total = np.sum([n for n, _ in counts.values()], axis=0)
    return [f"class {name!r} is labelled in no train image: stroke it where it appears, or it is never predicted"
            for name, n in zip(ds.classes, total) if n == 0]


def label_table(counts: dict[str, tuple[np.ndarray, int]]) -> list[list[str]]:
    """Rows (stem, labelled share of the image, pixels per class) of :func:`labelled_pixels`' counts."""
    return [[stem, f"{n.sum() / size:.1%}", *(str(int(v)) for v in n)] for stem, (n, size) in counts.items()]
