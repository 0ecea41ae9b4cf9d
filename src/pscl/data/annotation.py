"""Making a folder of micrographs a dataset folder, and keeping it valid while it is annotated.

:func:`init_dataset` writes ``dataset.json`` beside the micrographs (in place: images stay where they
are, in ``images/`` or directly in the folder) with the class names and a ``train`` split of the images
whose masks label at least one pixel. :func:`save_mask` writes one image's mask atomically and then
brings the train split in line with the masks on disk (:func:`sync_train_split`): an image with a labelled
pixel is listed in ``train`` unless another split lists it; one whose every pixel is 255 leaves ``train``.
A crash between the two writes leaves a state the next :func:`sync_train_split` repairs. The class list can
grow and be renamed (:func:`set_classes`), never shrink or reorder: masks hold class indices.
"""
from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np

from pscl.data.folders import DatasetFolder, find_by_stem, list_images, load_dataset
from pscl.data.io import IGNORE_INDEX, read_mask
from pscl.errors import DataError, DataWarning
from pscl.files import write_png, write_text

META = "dataset.json"
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")  # a class colour as dataset.json keeps it
MAX_CLASSES = 254  # indices 0..253; 255 is "not labelled"


def check_class_names(names: list[str], where: str = "--classes") -> list[str]:
    """``names`` stripped, or a DataError naming ``where``: at least two, distinct, non-empty, no commas."""
    names = [n.strip() for n in names]
    if len(names) < 2:
        raise DataError(f"{where}: give at least two class names (e.g. matrix,precipitate), got {names}")
    if any(not n or "," in n for n in names):
        raise DataError(f"{where}: class names must be non-empty and hold no comma, got {names}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{where}: class names must differ; listed more than once: {', '.join(repeated)}")
    if len(names) > MAX_CLASSES:
        raise DataError(f"{where}: at most {MAX_CLASSES} classes, got {len(names)}")
    return names


def _read_meta(root: Path) -> dict:
    try:
        return json.loads((root / META).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{root / META}: unreadable dataset.json ({exc})") from exc


def _write_meta(root: Path, meta: dict) -> None:
    write_text(root / META, json.dumps(meta, indent=1) + "\n")


def init_dataset(folder: str | Path, classes: list[str], name: str | None = None) -> DatasetFolder:
    """Make ``folder`` (micrographs in it or in ``images/``) a dataset folder with ``classes``.

    A folder that is one already is returned as it is if its classes are ``classes``, and refused
    otherwise (renaming classes is :func:`set_classes`). Nothing is moved or copied: ``dataset.json``
    and an empty ``masks/`` are written beside the images.
    """
    root = Path(folder)
    classes = check_class_names(list(classes))
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    if (root / META).exists():
        ds = load_dataset(root)
        if ds.classes != classes:
            raise DataError(f"{root / META}: already a dataset folder with classes {','.join(ds.classes or [])}; "
                            "rename or add classes in `pscl app`, or edit dataset.json")
        return ds
    images = root / "images"
    with warnings.catch_warnings():  # (subfolders such as masks/ are expected beside the images)
        warnings.simplefilter("ignore", DataWarning)
        found = list_images(images if images.is_dir() else root, unique_stems=True)
    if not found:
        raise DataError(f"{root}: no micrographs (PNG, TIFF, JPEG or BMP) in it or in images/")
    (root / "masks").mkdir(exist_ok=True)
    _write_meta(root, {"name": name or root.resolve().name, "classes": classes, "splits": {"train": []}})
    sync_train_split(root)
    return load_dataset(root)


def _labelled(path: Path | None) -> bool:
    if path is None:
        return False
    try:
        return bool((read_mask(path) != IGNORE_INDEX).any())
    except DataError:
        return True  # listed, so that `pscl data check` names the unreadable mask


def sync_train_split(folder: str | Path, labelled: dict[str, bool] | None = None) -> list[str]:
    """List in ``train`` every image whose mask labels a pixel and that no other split lists; drop from
    ``train`` those whose mask labels none. ``labelled``: stem -> whether its mask labels a pixel, for the
    images to bring in line (a mask just written); by default every image's mask is read. Returns the
    train split."""
    root = Path(folder)
    meta = _read_meta(root)
    splits = meta.setdefault("splits", {})
    train = list(splits.get("train", []))
    if labelled is None:
        stems = dict.fromkeys([p.stem for p in load_dataset(root).image_files()] + train)
        labelled = {stem: _labelled(find_by_stem(root / "masks", stem)) for stem in stems}
    elsewhere = {s for split, listed in splits.items() if split != "train" for s in listed}
    for stem, has_labels in labelled.items():
        if has_labels and stem not in train and stem not in elsewhere:
            train.append(stem)
        elif not has_labels and stem in train:
            train.remove(stem)
    if train != splits.get("train"):
        splits["train"] = train
        _write_meta(root, meta)
    return train


def save_mask(folder: str | Path, stem: str, mask: np.ndarray) -> Path:
    """Write ``masks/<stem>.png`` atomically (a mask of another format with that stem is replaced),
    then :func:`sync_train_split` for ``stem`` (from ``mask`` itself: the file is not read back)."""
    root = Path(folder)
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise ValueError(f"a mask is a 2-D uint8 array, got {mask.dtype} {mask.shape}")
    old = find_by_stem(root / "masks", stem)
    path = write_png(root / "masks" / f"{stem}.png", mask)
    if old is not None and old != path:
        old.unlink()
    sync_train_split(root, {stem: bool((mask != IGNORE_INDEX).any())})
    return path


def set_classes(folder: str | Path, classes: list[str], colours: list[str] | None = None) -> list[str]:
    """Rename classes or append new ones (indices never change: masks hold them); ``colours``: one
    ``#rrggbb`` per class, kept in dataset.json for the page."""
    root = Path(folder)
    meta = _read_meta(root)
    classes = check_class_names(list(classes), "classes")
    current = load_dataset(root).classes or []
    if len(classes) < len(current):
        raise DataError(f"{root / META}: classes can be renamed or added, not removed "
                        f"({len(current)} now, {len(classes)} given): masks hold class indices")
    if colours is not None:
        if len(colours) != len(classes):
            raise DataError(f"give one colour per class ({len(classes)} classes, {len(colours)} colours)")
        bad = [c for c in colours if not COLOUR.fullmatch(str(c))]
        if bad:
            raise DataError(f"colour {bad[0]!r}: give #rrggbb")
        meta["colours"] = [c.lower() for c in colours]
    meta["classes"] = classes
    _write_meta(root, meta)
    return classes


__all__ = ["check_class_names", "init_dataset", "save_mask", "set_classes", "sync_train_split"]
