"""Scoring a run on a split: split-pooled confusion matrix -> Dice, IoU, accuracy (pscl.metrics)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pscl.checkpoints import load_model
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.io import DataError, write_text
from pscl.metrics import confusion_matrix, scores
from pscl.nn import UNet
from pscl.predict import segment


def score_model(model: UNet, ds: DatasetFolder, split: str = "test", tile: int = 512, overlap: int = 128,
                device: str = "cpu", name: str = "the model") -> dict:
    """Segment every image of ``split`` with ``model`` and score it against the masks: the pooled
    scores of :func:`pscl.metrics.scores` plus ``per_image_dice_fg``."""
    if ds.classes is None:
        raise DataError(f"{ds.root}: evaluation needs a dataset folder with dataset.json and masks")
    if ds.num_classes != model.num_classes:
        raise DataError(f"{ds.root}: {ds.num_classes} classes, but {name} has {model.num_classes}")
    cm = np.zeros((ds.num_classes,) * 2, dtype=np.int64)
    per_image = {}
    for stem in ds.stems(split):
        image, mask = ds.load_pair(stem)
        seg = segment(model, image, tile=tile, overlap=overlap, device=device)
        image_cm = confusion_matrix(seg.labels, mask, ds.num_classes)
        per_image[stem] = scores(image_cm)["dice_fg"]
        cm += image_cm
    return {"dataset": str(ds.root), "split": split, **scores(cm, ds.classes), "per_image_dice_fg": per_image}


def evaluate(run: str | Path, data: str | Path | DatasetFolder, split: str = "test",
             out: str | Path | None = None, tile: int = 512, overlap: int = 128,
             device: str = "cpu") -> dict:
    """Segment every image of ``split`` with the model of ``run`` and score it against the masks.

    Writes the result as JSON to ``out`` (default ``RUN/eval_<dataset>_<split>.json``).
    """
    model, payload = load_model(run)
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    result = {"run": str(run), **score_model(model, ds, split, tile, overlap, device, name=f"the model of {run}"),
              "config": payload.get("config")}
    out = Path(out) if out else Path(run) / f"eval_{ds.name}_{split}.json"
    write_text(out, json.dumps(result, indent=1, default=float))
    result["out"] = str(out)
    return result
