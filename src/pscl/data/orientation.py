"""Which flips and quarter turns a micrograph's structure allows, decided from its annotation.

A plan view of a microstructure looks alike in every orientation: training crops and test-time
augmentation use all 8 flips and quarter turns. A cross-section does not: its layers are stacked
along one axis (resin, coating, substrate from top to bottom) and a quarter turn shows something no
micrograph of it will. ``orientation="auto"`` measures how much of the annotation's class layout the
rows (or the columns) explain: the share of each class's variance that lies between rows,
``R_y = sum_c var_y(share of c in row y) / sum_c p_c (1 - p_c)`` over the labelled pixels, and
``R_x`` alike, each less what rows (columns) would explain of labels without structure
(``(rows - 1) / labelled pixels``). Layers give ``R_y`` near 1 and ``R_x`` near 0; the plan views of MetalDAM, UHCS and
tbm give at most 0.29 on either axis (0.03 typically). The structure is taken as stratified along an
axis when that axis explains at least half of it and four times as much as the other.

Resolved geometries (:data:`GEOMETRIES`): ``free`` (all 8), ``fixed-y`` (layers stacked along y:
only the left-right mirror keeps them in order), ``fixed-x`` (along x: only the up-down mirror).
A transform is ``(flip, k)``: mirror left-right first when ``flip``, then ``k`` quarter turns
(``numpy.rot90``).
"""
from __future__ import annotations

import numpy as np

from pscl.data.io import IGNORE_INDEX

ORIENTATIONS = ("auto", "free", "fixed")
GEOMETRIES = ("free", "fixed-y", "fixed-x")
ALL_TRANSFORMS = tuple((flip, k) for flip in (False, True) for k in range(4))
_TRANSFORMS = {"free": ALL_TRANSFORMS, "fixed-y": ((False, 0), (True, 0)), "fixed-x": ((False, 0), (True, 2))}
STRATIFIED, DOMINANT = 0.5, 4.0


def stratification(masks: list[np.ndarray], num_classes: int) -> tuple[float, float]:
    """(R_y, R_x): the share of the class layout that rows, and columns, explain (module doc),
    pooled over ``masks`` weighted by their labelled pixels."""
    totals, weights = np.zeros(2), 0.0
    for mask in masks:
        labelled = mask != IGNORE_INDEX
        count = int(labelled.sum())
        if count == 0:
            continue
        for a, axis in enumerate((1, 0)):  # per row (sum over columns), per column
            n = labelled.sum(axis)
            keep = n > 0
            between = total = 0.0
            for c in range(num_classes):
                hits = ((mask == c) & labelled).sum(axis)[keep]
                p = hits.sum() / count
                if p == 0:
                    continue
                between += float((n[keep] * (hits / n[keep] - p) ** 2).sum() / count)
                total += p * (1 - p)
            # less what rows (columns) explain of a layout without structure: (groups - 1) / labelled
            # pixels (ANOVA's bias), which sparse labels (strokes, dots) would otherwise read as structure
            chance = (int(keep.sum()) - 1) / count
            totals[a] += count * max(0.0, (between / total if total > 0 else 0.0) - chance)
        weights += count
    return (float(totals[0] / weights), float(totals[1] / weights)) if weights else (0.0, 0.0)


def resolve_orientation(orientation: str, masks: list[np.ndarray], num_classes: int) -> str:
    """The geometry (:data:`GEOMETRIES`) an ``orientation`` setting gives for this annotation."""
    if orientation not in ORIENTATIONS:
        raise ValueError(f"--orientation must be one of {', '.join(ORIENTATIONS)}, got {orientation!r}")
    if orientation == "free":
        return "free"
    r_y, r_x = stratification(masks, num_classes)
    if orientation == "fixed":
        return "fixed-y" if r_y >= r_x else "fixed-x"
    if r_y >= STRATIFIED and r_y >= DOMINANT * r_x:
        return "fixed-y"
    if r_x >= STRATIFIED and r_x >= DOMINANT * r_y:
        return "fixed-x"
    return "free"


def transforms(geometry: str | None) -> tuple[tuple[bool, int], ...]:
    """The (flip, quarter turns) a geometry allows (None or "": all 8, as runs made before it existed)."""
    if not geometry:
        return ALL_TRANSFORMS
    if geometry not in _TRANSFORMS:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    return _TRANSFORMS[geometry]


def apply(array: np.ndarray, transform: tuple[bool, int], axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """``array`` mirrored (along ``axes[1]``) when ``flip``, then turned ``k`` quarter turns in ``axes``."""
    flip, k = transform
    if flip:
        array = np.flip(array, axes[1])
    return np.rot90(array, k, axes=axes)


def undo(array: np.ndarray, transform: tuple[bool, int], axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """The inverse of :func:`apply`."""
    flip, k = transform
    array = np.rot90(array, -k, axes=axes)
    return np.flip(array, axes[1]) if flip else array
