"""`pscl data check`: every problem of a dataset folder, what the annotation covers (labelled pixels per
class and image) and the classes nothing labels.

With strokes most pixels are not labelled, and a class a user forgot to stroke is never learnt; `pscl data
check` shows the counts and warns about such classes.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pscl.data.folders import DatasetFolder, list_images, load_dataset
from pscl.data.io import IGNORE_INDEX, read_image, read_mask
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


def check_dataset(path: str | Path) -> list[str]:
    """Validate a dataset folder; return every problem found (empty list = valid).

    Checks: dataset.json readable, class names distinct strings, stems strings; a train split (val
    and test are optional); no stem listed twice; each listed stem has a readable image that is not constant
    and a mask of the same size with indices < C or 255 and at least one labelled pixel; images in
    unlabeled/ readable.
    """
    try:
        ds = load_dataset(path)
    except DataError as exc:
        return [str(exc)]
    problems: list[str] = []
    if not ds.labelled:
        for stem in ds.splits["all"]:
            try:
                read_image(ds.image_path(stem))
            except DataError as exc:
                problems.append(str(exc))
        return problems
    meta_path = ds.root / "dataset.json"
    if not ds.splits.get("train"):  # (val and test are optional: a user's own folder often has neither)
        problems.append(f"{meta_path}: split 'train' is missing or empty")
    problems += ds.split_problems()
    for stem in dict.fromkeys(s for stems in ds.splits.values() for s in stems):
        try:
            image, mask = ds.load_pair(stem)  # reads image and mask, checks size, class range and minimum size
        except DataError as exc:
            problems.append(str(exc))
            continue
        problems += ds.pair_problems(stem, image, mask)
    for folder in ("images", "masks"):
        stems_on_disk = [p.stem for p in list_images(ds.root / folder)] if (ds.root / folder).is_dir() else []
        for stem in sorted({s for s in stems_on_disk if stems_on_disk.count(s) > 1}):
            problems.append(f"{ds.root / folder}: several files share the stem {stem!r}")
    for img in ds.unlabeled_paths():
        try:
            read_image(img)
        except DataError as exc:
            problems.append(str(exc))
    return problems
