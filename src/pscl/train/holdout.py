"""Choosing a model with no labels beyond the annotation: part of it held out.

A user who annotated one micrograph (or stroked a few) has no val masks. ``select="holdout"`` cuts
the annotated images into square blocks (the crop's side), holds out about :data:`HOLDOUT_SHARE`
of the blocks, trains on the labels of the others and selects the checkpoint that segments the
held-out labels best. Blocks, not pixels, so that a held-out label is not the neighbour of a trained
one. Of many random draws of blocks, the one whose held-out share is closest to the target for
every class is kept, and a draw that holds out every labelled pixel of a class is never kept: each
class present is trained on.
"""
from __future__ import annotations

import numpy as np

from pscl.data.io import IGNORE_INDEX

HOLDOUT_SHARE = 0.2  # of the annotated blocks
_DRAWS = 256


def _block_counts(mask: np.ndarray, block: int, num_classes: int) -> np.ndarray:
    """(blocks, C) labelled pixels of each class in each ``block`` x ``block`` block (row-major)."""
    rows, cols = -(-mask.shape[0] // block), -(-mask.shape[1] // block)
    counts = np.zeros((rows * cols, num_classes), np.int64)
    for i in range(rows):
        for j in range(cols):
            cell = mask[i * block:(i + 1) * block, j * block:(j + 1) * block]
            counts[i * cols + j] = np.bincount(cell[cell != IGNORE_INDEX].ravel(), minlength=num_classes)[:num_classes]
    return counts


def holdout_split(masks: list[np.ndarray], block: int, num_classes: int, seed: int = 0,
                  share: float = HOLDOUT_SHARE) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(train masks, held-out masks): the annotated ``masks`` with the held-out blocks' labels set to
    255 (not labelled), and their complement. See the module doc for how blocks are chosen."""
    counts = [_block_counts(m, block, num_classes) for m in masks]
    labelled = np.concatenate(counts)  # (all blocks, C)
    candidates = np.flatnonzero(labelled.sum(1) > 0)
    if len(candidates) < 2:
        raise ValueError("holding out part of the annotation needs labels in at least two blocks of "
                         f"{block} px; annotate more, or select on val masks (--select val)")
    total = labelled.sum(0)
    present = total > 0
    rng = np.random.default_rng([seed, 7])
    take = max(1, round(share * len(candidates)))
    best, best_cost = None, np.inf
    for _ in range(_DRAWS):
        held = rng.choice(candidates, take, replace=False)
        held_share = labelled[held].sum(0)[present] / total[present]
        if (held_share >= 1).any():  # a class with nothing left to train on
            continue
        cost = np.abs(held_share - share).max()
        if cost < best_cost:
            best, best_cost = held, cost
    if best is None:
        raise ValueError("no way to hold out part of the annotation keeps every class in training; "
                         "annotate more, or select on val masks (--select val)")
    is_held = np.zeros(len(labelled), bool)
    is_held[best] = True
    train, holdout, start = [], [], 0
    for mask, c in zip(masks, counts):
        held_blocks = is_held[start:start + len(c)]
        start += len(c)
        cols = -(-mask.shape[1] // block)
        pixels = np.zeros(mask.shape, bool)
        for k in np.flatnonzero(held_blocks):
            i, j = divmod(int(k), cols)
            pixels[i * block:(i + 1) * block, j * block:(j + 1) * block] = True
        train.append(np.where(pixels, IGNORE_INDEX, mask).astype(np.uint8))
        holdout.append(np.where(pixels, mask, IGNORE_INDEX).astype(np.uint8))
    return train, holdout
