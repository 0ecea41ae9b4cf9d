"""Strokes simulated from full masks, as a person draws them: the measurement of annotation effort.

A person annotating with a brush draws a few strokes per class along the middle of its regions and a dot
on each small object, and labels nothing else. :func:`stroke_mask` does that from a full mask, reproducibly:

- a stroke follows the inner skeleton of a class region (its medial axis), for up to ``length`` px from a
  random skeleton pixel, and is ``width`` px wide, kept inside the region;
- an object smaller than ``small`` px (a precipitate, a crack, a defect) gets a dot (a disk of the brush's
  width at its most interior pixel), clipped to the object;
- every class present in the image is stroked at least once; then classes take turns (so a class of few
  pixels is stroked as often as the matrix), each turn a stroke on one of the class's regions chosen with
  probability proportional to the square root of its area (or dots on up to 12 small objects, about a
  stroke's pixels), until the stroked pixels reach ``budget`` x the
  image's pixels (the last stroke may pass it by its own size);
- everything else is 255 (not labelled).

:func:`stroke_dataset` writes a copy of a dataset folder whose train masks are strokes (val and test masks
untouched) and records the protocol and the labelled share of every class in its ``dataset.json``.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.morphology import disk, skeletonize

from pscl.data.folders import load_dataset
from pscl.data.io import IGNORE_INDEX, read_mask
from pscl.errors import DataError
from pscl.files import publish_folder, write_png

SMALL = 200  # px: an object below this area gets a dot, not a stroke
DOTS_PER_TURN = 12  # a class of small objects gets up to this many dots per turn (about one stroke's pixels)


def _stroke(region: np.ndarray, skeleton: np.ndarray, rng: np.random.Generator, length: int,
            brush: np.ndarray) -> np.ndarray:
    """One stroke (bool mask) inside ``region``: skeleton pixels within ``length`` steps of a random skeleton
    pixel (a breadth-first walk along the skeleton), painted with ``brush``."""
    points = np.argwhere(skeleton)
    if not len(points) or region.sum() < SMALL:
        distance = ndimage.distance_transform_edt(region)
        path = np.zeros_like(region)
        path[np.unravel_index(int(np.argmax(distance)), region.shape)] = True
    else:
        start = tuple(points[int(rng.integers(len(points)))])
        path = np.zeros_like(region)
        path[start] = True
        frontier = [start]
        for _ in range(length):
            grown = []
            for y, x in frontier:
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if (0 <= ny < region.shape[0] and 0 <= nx < region.shape[1] and skeleton[ny, nx]
                                and not path[ny, nx]):
                            path[ny, nx] = True
                            grown.append((ny, nx))
            if not grown:
                break
            frontier = grown[:2]  # a stroke is a line: follow at most two branches
    return ndimage.binary_dilation(path, structure=brush) & region


def stroke_mask(mask: np.ndarray, budget: float, rng: np.random.Generator, width: int = 3,
                length: int | None = None, small: int = SMALL) -> np.ndarray:
    """The strokes a person would draw on a full class-index mask (255 = not labelled): see the module doc."""
    if not 0 < budget <= 1:
        raise ValueError(f"--budget must lie in (0, 1] (a share of each image's pixels), got {budget}")
    length = length or max(20, min(mask.shape) // 8)
    brush = disk(max(0, width // 2)).astype(bool)
    out = np.full(mask.shape, IGNORE_INDEX, np.uint8)
    regions = {}  # class -> [(region mask, skeleton, area)]
    for c in (int(c) for c in np.unique(mask) if c != IGNORE_INDEX):
        labels, count = ndimage.label(mask == c, structure=np.ones((3, 3)))
        items = []
        for k, box in enumerate(ndimage.find_objects(labels), start=1):
            region = labels[box] == k
            inner = ndimage.binary_erosion(region, structure=brush) if region.sum() >= small else region
            items.append((box, region, skeletonize(inner if inner.any() else region), int(region.sum())))
        regions[c] = items
    goal, used, turn = budget * mask.size, 0, 0
    classes = sorted(regions)
    while classes and (turn < len(classes) or used < goal):
        c = classes[turn % len(classes)]
        turn += 1
        items = regions[c]
        weights = np.sqrt([area for *_, area in items])
        drawn = 0
        for _ in range(DOTS_PER_TURN):  # a turn is one stroke, or dots on several small objects
            box, region, skeleton, _ = items[int(rng.choice(len(items), p=weights / weights.sum()))]
            stroke = _stroke(region, skeleton, rng, length, brush)
            view = out[box]
            new = stroke & (view == IGNORE_INDEX)
            view[new] = c
            drawn += int(new.sum())
            if drawn >= length * width // 2:
                break
        used += drawn
        if turn > 10000:  # every region stroked many times over: the budget exceeds what strokes can cover
            break
    return out


def labelled_shares(mask: np.ndarray, classes: list[str]) -> dict[str, float]:
    """The share of the image's pixels labelled as each class."""
    counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=len(classes))[:len(classes)]
    return {name: round(float(n) / mask.size, 6) for name, n in zip(classes, counts)}


def stroke_dataset(data: str | Path, out: str | Path, budget: float = 0.02, seed: int = 0, width: int = 3,
                   overwrite: bool = False) -> Path:
    """Copy dataset folder ``data`` to ``out`` with every train mask replaced by simulated strokes
    (:func:`stroke_mask`, one random stream per image from ``seed`` and its stem). The folder appears complete
    or not at all."""
    ds = load_dataset(data)
    if ds.classes is None:
        raise DataError(f"{ds.root}: strokes are drawn from the masks of a dataset folder (dataset.json, masks/)")
    if not 0 < budget <= 1:
        raise ValueError(f"--budget must lie in (0, 1] (a share of each image's pixels), got {budget}")
    if width < 1:
        raise ValueError(f"--width must be >= 1 px, got {width}")
    out = Path(out)
    if out.resolve() == ds.root.resolve():
        raise DataError(f"{out}: the strokes need a folder of their own (it is DATA itself)")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out}: exists and is not empty (pass --overwrite to replace it, or choose another --out)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        meta = json.loads((ds.root / "dataset.json").read_text())
        shares = {}
        train = set(ds.stems("train"))
        for sub in ("images", "masks", "unlabeled"):
            if (ds.root / sub).is_dir():
                shutil.copytree(ds.root / sub, tmp / sub)
        for stem in sorted(train):
            mask = read_mask(ds.mask_path(stem))
            digest = int.from_bytes(stem.encode()[:8].ljust(8, b"\0"), "little")
            strokes = stroke_mask(mask, budget, np.random.default_rng([seed, digest]), width=width)
            target = tmp / "masks" / f"{stem}.png"
            for old in (tmp / "masks").glob(f"{stem}.*"):
                old.unlink()
            write_png(target, strokes)
            shares[stem] = labelled_shares(strokes, ds.classes)
        meta["strokes"] = {"source": str(ds.root), "budget": budget, "seed": seed, "width": width,
                           "protocol": "pscl.data.strokes: strokes along the inner skeleton of class regions, a dot "
                                       "per small object, every class present stroked, classes in turn up to the "
                                       "budget; val and test masks untouched",
                           "labelled_share": shares}
        meta["name"] = f"{meta['name']}-strokes"
        (tmp / "dataset.json").write_text(json.dumps(meta, indent=1))
        if out.exists():
            shutil.rmtree(out)
        publish_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
