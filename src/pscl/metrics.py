"""Segmentation metrics from a confusion matrix accumulated over a whole split.

Dice as the paper reports it: per class, pooled over all pixels of the split,
Dice_c = 2 TP_c / (2 TP_c + FP_c + FN_c); ``dice_fg`` is the mean over the foreground classes
1..C-1, ``dice_all`` over all classes. A class absent from both the ground truth and the
prediction has an undefined Dice/IoU (NaN) and is left out of the means. Pixels labelled 255 are
ignored.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from pscl.data.io import IGNORE_INDEX
from pscl.errors import DataError


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = ground truth, columns = prediction; 255 in target ignored."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    valid = target != IGNORE_INDEX
    t = target[valid].astype(np.int64)
    p = pred[valid].astype(np.int64)
    if t.size and (t.max() >= num_classes or p.max() >= num_classes):
        raise ValueError(f"class index out of range 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def _nanmean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def scores(confusion: np.ndarray, class_names: list[str] | None = None) -> dict:
    """Per-class Dice and IoU, and dice_fg, dice_all, miou, acc from a (C, C) confusion matrix."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    fp, fn = cm.sum(0) - tp, cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
    total = cm.sum()
    names = class_names or [str(i) for i in range(len(tp))]
    return {
        "dice_fg": _nanmean(dice[1:]),
        "dice_all": _nanmean(dice),
        "miou": _nanmean(iou),
        "acc": float(tp.sum() / total) if total else float("nan"),
        "per_class": {n: {"dice": float(d), "iou": float(i), "pixels": int(cm.sum(1)[k])}
                      for k, (n, d, i) in enumerate(zip(names, dice, iou))},
        "confusion": cm.astype(np.int64).tolist(),
    }


def miou_over_present_classes(confusion: np.ndarray) -> float:
    """Mean IoU over the classes the ground truth holds (rows with pixels); NaN when it holds none."""
    return _miou_over_present(scores(confusion)["per_class"])


def _miou_over_present(per_class: dict) -> float:
    ious = [c["iou"] for c in per_class.values() if c["pixels"] > 0]
    return float(np.mean(ious)) if ious else float("nan")


def score_split(ds, split: str, labels_of: Callable[[np.ndarray], np.ndarray]) -> dict:
    """Label every image of ``split`` of a dataset folder with ``labels_of`` (normalised image ->
    (H, W) class indices) and score it against the masks: the split-pooled :func:`scores` plus
    ``per_image_dice_fg`` and ``miou_per_image``. Any segmenter fits: a U-Net, a random forest, a probe.

    ``miou_per_image`` is the convention of many segmentation papers, not the paper's: per image the mean IoU
    over the classes its mask holds (false alarms of a class the image lacks are not counted), then the mean
    over images. On MetalDAM it is 0.62 where the pooled ``miou`` is 0.39 for one model
    (``benchmarks/fine-tuning/metric-conventions-metaldam``); use it only to compare with figures computed that way."""
    if ds.classes is None:
        raise DataError(f"{ds.root}: evaluation needs a dataset folder with dataset.json and masks")
    cm = np.zeros((ds.num_classes,) * 2, dtype=np.int64)
    per_image, image_mious = {}, []
    for stem in ds.stems(split):
        image, mask = ds.load_pair(stem)
        image_cm = confusion_matrix(labels_of(image), mask, ds.num_classes)
        image_scores = scores(image_cm)
        per_image[stem] = image_scores["dice_fg"]
        image_mious.append(_miou_over_present(image_scores["per_class"]))
        cm += image_cm
    return {"dataset": str(ds.root), "split": split, **scores(cm, ds.classes), "per_image_dice_fg": per_image,
            "miou_per_image": _nanmean(np.array(image_mious))}
