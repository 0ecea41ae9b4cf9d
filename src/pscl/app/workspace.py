"""The folder the page works on: its micrographs, classes and masks, and strokes drawn into the masks.

Every file the page reads or writes is found through :meth:`Workspace.micrograph` (a stem of the
listing, never a path from a request) or lies in the folder's ``masks/``, ``.pscl/`` (jobs, thumbnails)
or ``exports/``; an image or folder that resolves outside the folder (a symlink leading out) is not
listed. A stroke is rasterised into the image's mask in memory and the mask written at once (atomically,
:func:`pscl.data.annotation.save_mask`), so every stroke drawn is on disk when the next request comes;
undo and redo keep the changed rectangles of the last :data:`HISTORY` strokes per image.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from threading import RLock

import numpy as np
from PIL import Image

from pscl.data.annotation import COLOUR, init_dataset, save_mask, set_classes, sync_train_split
from pscl.data.folders import DatasetFolder, find_by_stem, load_dataset
from pscl.data.io import IGNORE_INDEX, is_image_file, read_mask
from pscl.errors import DataError
from pscl.inference.overlay import PALETTE

STATE = ".pscl"
HISTORY = 100
MAX_POINTS = 20000
MAX_RADIUS = 256


@dataclass
class Micrograph:
    stem: str
    path: Path
    width: int
    height: int


def _hex(rgb) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def _rgb(colour: str) -> list[int]:
    """[r, g, b] of a checked ``#rrggbb`` (:data:`pscl.data.annotation.COLOUR`)."""
    return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]


def stroke_footprint(points: np.ndarray, radius: float, shape: tuple[int, int]):
    """(y0, x0, hit) of a brush of ``radius`` px dragged through ``points`` ((N, 2) as x, y in pixel
    units, pixel (i, j) covering [j, j+1) x [i, i+1)): ``hit`` marks the pixels whose centre lies within
    ``radius`` of the polyline, in the rectangle starting at (y0, x0); None where it misses the image."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    r = max(float(radius), 0.5)
    y0 = max(int(np.floor(pts[:, 1].min() - r)), 0)
    x0 = max(int(np.floor(pts[:, 0].min() - r)), 0)
    y1 = min(int(np.ceil(pts[:, 1].max() + r)) + 1, shape[0])
    x1 = min(int(np.ceil(pts[:, 0].max() + r)) + 1, shape[1])
    if y1 <= y0 or x1 <= x0:
        return None
    hit = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    segments = zip(pts, pts[1:]) if len(pts) > 1 else [(pts[0], pts[0])]
    for a, b in segments:  # each segment within its own small rectangle
        sy0 = max(int(np.floor(min(a[1], b[1]) - r)), y0)
        sx0 = max(int(np.floor(min(a[0], b[0]) - r)), x0)
        sy1 = min(int(np.ceil(max(a[1], b[1]) + r)) + 1, y1)
        sx1 = min(int(np.ceil(max(a[0], b[0]) + r)) + 1, x1)
        if sy1 <= sy0 or sx1 <= sx0:
            continue
        yy, xx = np.mgrid[sy0:sy1, sx0:sx1]
        px, py = xx + 0.5 - a[0], yy + 0.5 - a[1]
        d = b - a
        length2 = float(d @ d)
        t = np.clip((px * d[0] + py * d[1]) / length2, 0, 1) if length2 > 0 else 0.0
        hit[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] |= (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 <= r * r
    return y0, x0, hit


class Workspace:
    """One folder of micrographs (a dataset folder, or a plain folder until its classes are named)."""

    def __init__(self, folder: str | Path):
        self.root = Path(folder).resolve()
        if not self.root.is_dir():
            raise DataError(f"{folder}: not a folder")
        for sub in ("masks", STATE, "exports"):
            if (self.root / sub).exists() and not self.inside(self.root / sub):
                raise DataError(f"{self.root / sub}: leads outside {self.root}; pscl app will not write there")
        self.lock = RLock()
        self.masks: dict[str, np.ndarray] = {}
        self.undo_stack: dict[str, list] = {}
        self.redo_stack: dict[str, list] = {}
        self.version: dict[str, int] = {}
        self.refresh()
        if self.dataset is not None:
            sync_train_split(self.root)  # repairs a split left behind by a crash between two writes

    # -- the folder -----------------------------------------------------------------------------
    def inside(self, path: Path) -> bool:
        """Whether ``path`` (symlinks followed) lies in the folder."""
        try:
            return Path(path).resolve().is_relative_to(self.root)
        except OSError:
            return False

    @property
    def state(self) -> Path:
        return self.root / STATE

    def refresh(self) -> None:
        """Re-read dataset.json and the micrographs (those of the image folder, then of unlabeled/)."""
        with self.lock:
            self.dataset: DatasetFolder | None = load_dataset(self.root) if (self.root / "dataset.json").exists() else None
            folders = [self.root / "images" if (self.root / "images").is_dir() else self.root, self.root / "unlabeled"]
            found: dict[str, Micrograph] = {}
            for folder in folders:
                if not folder.is_dir() or not self.inside(folder):
                    continue
                for path in sorted(folder.iterdir()):
                    if path.stem in found or path.name.startswith(".") or not is_image_file(path) or not self.inside(path):
                        continue
                    try:
                        with Image.open(path) as image:
                            width, height = image.size
                    except Exception:  # noqa: BLE001 (an unreadable file is not listed; data check names it)
                        continue
                    found[path.stem] = Micrograph(path.stem, path, width, height)
            self.micrographs = found

    def micrograph(self, stem: str) -> Micrograph:
        found = self.micrographs.get(stem)
        if found is None:
            raise KeyError(stem)
        return found

    @property
    def classes(self) -> list[str]:
        return list(self.dataset.classes) if self.dataset is not None else []

    @property
    def colours(self) -> list[str]:
        given = (self.dataset.meta.get("colours") if self.dataset is not None else None) or []
        valid = lambda i: i < len(given) and COLOUR.fullmatch(str(given[i]))  # noqa: E731
        return [given[i] if valid(i) else _hex(PALETTE[i % len(PALETTE)]) for i in range(len(self.classes))]

    def colour_values(self) -> list[list[int]]:
        """The class colours as RGB triples."""
        return [_rgb(c) for c in self.colours]

    def split_of(self, stem: str) -> str | None:
        if self.dataset is None:
            return None
        return next((split for split, stems in self.dataset.splits.items() if stem in stems), None)

    # -- classes ----------------------------------------------------------------------------------
    def init(self, classes: list[str]) -> None:
        with self.lock:
            init_dataset(self.root, classes)
            self.refresh()

    def set_classes(self, classes: list[str], colours: list[str]) -> None:
        """Rename, add and recolour classes (``colours`` as #rrggbb, one per class)."""
        with self.lock:
            if self.dataset is None:
                raise DataError(f"{self.root}: name the classes first")
            set_classes(self.root, classes, colours)
            self.refresh()

    # -- masks and strokes ------------------------------------------------------------------------
    def mask(self, stem: str) -> np.ndarray:
        """The mask of ``stem`` as on disk (all 255 where there is none)."""
        with self.lock:
            if stem not in self.masks:
                item = self.micrograph(stem)
                path = find_by_stem(self.root / "masks", stem)
                mask = read_mask(path) if path is not None and self.inside(path) else None
                if mask is None:
                    mask = np.full((item.height, item.width), IGNORE_INDEX, dtype=np.uint8)
                elif mask.shape != (item.height, item.width):
                    raise DataError(f"{path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from its image's "
                                    f"{item.width}x{item.height}; fix or remove the mask")
                if len(self.masks) >= 8:
                    self.masks.pop(next(iter(self.masks)))
                self.masks[stem] = mask
            return self.masks[stem]

    def labelled_counts(self, stem: str) -> list[int]:
        mask = self.mask(stem)
        return np.bincount(mask.ravel(), minlength=256)[:len(self.classes)].tolist()

    def stroke(self, stem: str, label: int, radius: float, points: list) -> dict:
        """Paint ``label`` (a class index, or 255 to erase) along ``points`` and save the mask."""
        with self.lock:
            if self.dataset is None:
                raise DataError(f"{self.root}: name the classes first")
            if not (0 <= label < len(self.classes) or label == IGNORE_INDEX):
                raise DataError(f"class {label} does not exist (0..{len(self.classes) - 1}, or 255 to erase)")
            if not 0 < radius <= MAX_RADIUS or not 0 < len(points) <= MAX_POINTS:
                raise DataError(f"a stroke has 1..{MAX_POINTS} points and a radius in (0, {MAX_RADIUS}]")
            pts = np.asarray(points, dtype=np.float64)
            if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
                raise DataError("stroke points are [x, y] pairs of numbers")
            mask = self.mask(stem)
            found = stroke_footprint(pts, radius, mask.shape)
            if found is None:
                return self.status(stem)
            y0, x0, hit = found
            window = mask[y0:y0 + hit.shape[0], x0:x0 + hit.shape[1]]
            before = window.copy()
            window[hit] = label
            self._record(stem, (y0, x0, before, window.copy()))
            return self.status(stem)

    def _record(self, stem: str, change) -> None:
        stack = self.undo_stack.setdefault(stem, [])
        stack.append(change)
        del stack[:-HISTORY]
        self.redo_stack[stem] = []
        self._save(stem)

    def undo(self, stem: str) -> dict:
        return self._step(stem, self.undo_stack, self.redo_stack, 2)

    def redo(self, stem: str) -> dict:
        return self._step(stem, self.redo_stack, self.undo_stack, 3)

    def _step(self, stem: str, source: dict, target: dict, which: int) -> dict:
        with self.lock:
            self.micrograph(stem)
            if source.get(stem):
                change = source[stem].pop()
                y0, x0, patch = change[0], change[1], change[which]
                self.mask(stem)[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
                target.setdefault(stem, []).append(change)
                self._save(stem)
            return self.status(stem)

    def _save(self, stem: str) -> None:
        save_mask(self.root, stem, self.mask(stem))
        self.version[stem] = self.version.get(stem, 0) + 1
        self.dataset = load_dataset(self.root)

    def status(self, stem: str) -> dict:
        return {"stem": stem, "version": self.version.get(stem, 0), "labelled": self.labelled_counts(stem),
                "split": self.split_of(stem), "undo": len(self.undo_stack.get(stem, [])),
                "redo": len(self.redo_stack.get(stem, []))}


__all__ = ["Micrograph", "STATE", "Workspace", "stroke_footprint"]
