"""Dataset folders: the on-disk format pscl reads, its validation, and the choice of shots.

Layout (the README's "Data folder")::

    DIR/dataset.json      name, classes (index -> name), splits {train, val, test: [stems]}
    DIR/images/<stem>.png micrographs (PNG or TIFF, 8/16-bit, grey/RGB/RGBA); or DIR/<stem>.png
                          where there is no images/ folder (a plain folder made a dataset in place)
    DIR/masks/<stem>.png  class index per pixel, 255 = not labelled
    DIR/unlabeled/*.png   optional micrographs without masks

A micrograph in the image folder that no split lists counts as unlabelled too.

A plain folder of images (no dataset.json) is accepted where only images are needed
(pretraining, prediction): it has no classes and a single split ``all``.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pscl.data.databar import rows_to_cut
from pscl.data.io import (IGNORE_INDEX, is_image_file, load_micrograph, normalize_intensity, read_image, read_mask,
                          require_segmentable)
from pscl.errors import DataError, DataWarning

def find_by_stem(folder: Path, stem: str) -> Path | None:
    for path in sorted(folder.glob(f"{stem}.*")):
        if is_image_file(path) and path.stem == stem:
            return path
    return None


def list_images(folder: str | Path, unique_stems: bool = False) -> list[Path]:
    """All image files directly inside ``folder``, sorted by name. What is skipped besides other
    files is named in a :class:`DataWarning` (subfolders, symlinks that lead nowhere or loop);
    ``unique_stems``: two images with one stem (``a.png``, ``a.tif``), whose outputs would collide,
    are refused, naming both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a directory")
    paths, skipped = [], []
    for path in sorted(folder.iterdir()):
        if is_image_file(path):
            paths.append(path)
        elif path.is_symlink() and not path.exists():
            skipped.append(f"{path.name} (a symlink that loops or leads nowhere)")
        elif path.is_dir():
            skipped.append(f"{path.name}/ (a subfolder: only images directly in the folder are read)")
    if skipped:
        warnings.warn(DataWarning(f"{folder}: skipped " + ", ".join(skipped)), stacklevel=2)
    if unique_stems:
        first: dict[str, Path] = {}
        for path in paths:
            if path.stem in first:
                raise DataError(f"{first[path.stem]} and {path}: two images share the stem {path.stem!r}, and outputs "
                                "are named by stem; rename or move one of them")
            first[path.stem] = path
    return paths


@dataclass
class DatasetFolder:
    """A dataset folder (or plain image folder) on disk; images are read lazily."""

    root: Path
    name: str
    classes: list[str] | None
    splits: dict[str, list[str]]
    meta: dict = field(default_factory=dict)
    crop_bottom: int | str | None = "auto"  # SEM data bar: "auto" detects it, N cuts N rows, None keeps all

    @property
    def labelled(self) -> bool:
        return self.classes is not None

    @property
    def num_classes(self) -> int:
        if self.classes is None:
            raise DataError(f"{self.root}: a plain image folder has no classes (no dataset.json)")
        return len(self.classes)

    @property
    def image_folder(self) -> Path:
        """``images/``, or the folder itself where it has none (and for a plain image folder)."""
        images = self.root / "images"
        return images if self.labelled and images.is_dir() else self.root

    def image_path(self, stem: str) -> Path:
        """The image of ``stem``: in the image folder, else in ``unlabeled/`` (an unlabelled micrograph
        annotated later is listed in a split where it lies)."""
        folder = self.image_folder
        path = find_by_stem(folder, stem)
        if path is None and self.labelled and (self.root / "unlabeled").is_dir():
            path = find_by_stem(self.root / "unlabeled", stem)
        if path is None:
            raise DataError(f"{folder}/{stem}.*: image listed in dataset.json is missing")
        return path

    def mask_path(self, stem: str) -> Path:
        path = find_by_stem(self.root / "masks", stem)
        if path is None:
            raise DataError(f"{self.root / 'masks'}/{stem}.*: mask is missing")
        return path

    def stems(self, split: str) -> list[str]:
        if split not in self.splits:
            raise DataError(f"{self.root}: no split {split!r} (has {sorted(self.splits)})")
        if not self.splits[split]:
            raise DataError(f"{self.root}: split {split!r} is empty")
        return list(self.splits[split])

    def load_image(self, stem: str) -> np.ndarray:
        """The intensity-normalised float32 image of ``stem``."""
        return load_micrograph(self.image_path(stem), self.crop_bottom)

    def load_mask(self, stem: str) -> np.ndarray:
        """The uint8 mask of ``stem``, checked against its image size and the class count."""
        return self.load_pair(stem)[1]

    def load_pair(self, stem: str) -> tuple[np.ndarray, np.ndarray]:
        """(normalised float32 image, checked uint8 mask) of ``stem``, each file read once."""
        image_path = self.image_path(stem)
        mask_path = self.mask_path(stem)
        mask = read_mask(mask_path)
        image = read_image(image_path)
        if mask.shape != image.shape:
            raise DataError(f"{mask_path}: mask size {mask.shape} differs from image size {image.shape}")
        rows = rows_to_cut(image, self.crop_bottom, image_path)
        if rows:  # the data bar is neither trained on nor scored
            image, mask = image[:-rows], mask[:-rows]
        require_segmentable(image, image_path)
        bad = (mask >= self.num_classes) & (mask != IGNORE_INDEX)
        if bad.any():
            raise DataError(f"{mask_path}: class index {int(mask[bad].max())} out of range "
                            f"0..{self.num_classes - 1} (255 = ignore)")
        return normalize_intensity(image), mask

    def pair_problems(self, stem: str, image: np.ndarray, mask: np.ndarray) -> list[str]:
        """What makes a loaded pair useless to train or score on: a mask without one labelled pixel,
        a constant image."""
        problems = []
        if not (mask != IGNORE_INDEX).any():
            problems.append(f"{self.mask_path(stem)}: no pixel is labelled (every pixel is 255, 'not labelled'); "
                            "label at least a few pixels of each class")
        if float(image.max()) - float(image.min()) < 1e-6:
            problems.append(f"{self.image_path(stem)}: the image is constant (every pixel has one value): "
                            "there is nothing to learn from it")
        return problems

    def unlabeled_paths(self) -> list[Path]:
        """The micrographs no split lists: those of ``unlabeled/`` and of the image folder."""
        listed = {s for stems in self.splits.values() for s in stems}
        folder = self.root / "unlabeled"
        paths = [p for p in self.image_files() if p.stem not in listed] if self.labelled else []
        paths += [p for p in (list_images(folder) if folder.is_dir() else []) if p.stem not in listed]
        return paths

    def image_files(self) -> list[Path]:
        """Every image file directly in the image folder (subfolders such as masks/ are not images)."""
        return [p for p in sorted(self.image_folder.iterdir()) if is_image_file(p)]

    def pretraining_paths(self) -> list[Path]:
        """Every image usable without labels: unlabeled/ plus the train split (or all images)."""
        if not self.labelled:
            return [self.image_path(s) for s in self.splits["all"]]
        return self.unlabeled_paths() + [self.image_path(s) for s in self.splits.get("train", [])]

    def annotated(self, shots: int = 1, round_index: int = 0, all_train: bool = False,
                  stems: list[str] | None = None) -> list[str]:
        """The annotated train images of a run: explicit ``stems``, the whole train split
        (``all_train``), or the ``shots`` images of round ``round_index`` (:meth:`shots`).

        The one rule every stage uses (fine-tuning, PSCL pretraining, probe, forest, bench). Refuses
        what `pscl data check` refuses and what would silently train on something else than asked:
        a stem in two splits or listed twice, stems outside the train split, more shots than train
        images, a negative round.
        """
        self.require_consistent_splits()
        train = self.stems("train")
        if stems:
            missing = [s for s in stems if s not in train]
            if missing:
                raise DataError(f"{self.root}: annotated stems {missing} are not in the train split")
            return list(stems)
        if all_train:
            return train
        if shots > len(train):
            raise ValueError(f"--shots {shots} exceeds the {len(train)} train images of {self.root}; "
                             "use --all-train to train on all of them")
        if round_index < 0:
            raise ValueError(f"--round must be >= 0, got {round_index}")
        return self.shots(shots, round_index)

    def split_problems(self) -> list[str]:
        """Stems listed twice, within a split or across splits (a test image trained on)."""
        meta_path, seen, problems = self.root / "dataset.json", {}, []
        for split, stems in self.splits.items():
            for stem in stems:
                if stem in seen:
                    problems.append(f"{meta_path}: stem {stem!r} listed twice ({seen[stem]} and {split})")
                else:
                    seen[stem] = split
        return problems

    def require_consistent_splits(self) -> None:
        """Raise DataError naming every stem listed twice (see :meth:`split_problems`)."""
        problems = self.split_problems()
        if problems:
            raise DataError("; ".join(problems) + " (`pscl data check` lists every problem)")

    def shots(self, k: int, round_index: int) -> list[str]:
        """The ``k`` annotated train images of round ``round_index``.

        Deterministic from the dataset's train stems and the round alone, so every method of a
        comparison fine-tunes on the same images: in a fixed permutation of the sorted train stems
        (seeded by their hash), round r takes positions r, r + s, r + 2s, ... (s = ceil(n / k)), so the
        k images of round r hold the single image of round r, and rounds 0..s-1 never share an image.
        """
        stems = sorted(self.stems("train"))
        if k < 1:
            raise ValueError(f"shots must be >= 1, got {k}")
        if k >= len(stems):
            return stems
        digest = hashlib.sha256("\n".join(stems).encode()).digest()
        order = np.random.default_rng(int.from_bytes(digest[:8], "little")).permutation(len(stems))
        stride = -(-len(stems) // k)
        return [stems[order[(round_index + i * stride) % len(stems)]] for i in range(k)]


def load_dataset(path: str | Path) -> DatasetFolder:
    """Open a dataset folder, or a plain folder of images (classes None, split ``all``)."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    meta_path = root / "dataset.json"
    if not meta_path.exists():
        stems = [p.stem for p in list_images(root, unique_stems=True)]
        if not stems:
            raise DataError(f"{root}: no dataset.json and no images")
        return DatasetFolder(root, root.name, None, {"all": stems})
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{meta_path}: unreadable dataset.json ({exc})") from exc
    classes = meta.get("classes")
    if isinstance(classes, dict):  # index -> name mapping
        classes = [classes[k] for k in sorted(classes, key=int)]
    if not isinstance(classes, list) or len(classes) < 2:
        raise DataError(f"{meta_path}: 'classes' must list at least two class names")
    if not all(isinstance(c, str) and c.strip() for c in classes):
        raise DataError(f"{meta_path}: every class name must be a non-empty string, got {classes}")
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise DataError(f"{meta_path}: class names must differ; listed more than once: {', '.join(repeated)}")
    splits = meta.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise DataError(f"{meta_path}: 'splits' must map split names to lists of stems")
    for split, stems in splits.items():
        odd = [s for s in stems if not isinstance(s, str) or not s or "/" in s or "\\" in s]
        if odd:
            raise DataError(f"{meta_path}: split {split!r} lists {odd[0]!r}: stems are file names without "
                            "suffix or folder, written as strings")
    return DatasetFolder(root, str(meta.get("name", root.name)), list(classes),
                         {k: list(v) for k, v in splits.items()}, meta,
                         crop_bottom=meta.get("crop_bottom", "auto"))
