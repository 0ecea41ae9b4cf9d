"""Scoring a run on a split: split-pooled confusion matrix -> Dice, IoU, accuracy (pscl.metrics)."""
from __future__ import annotations

import json
from pathlib import Path

from pscl.checkpoints import load_model
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.orientation import transforms
from pscl.errors import DataError
from pscl.files import check_writable, write_text
from pscl.metrics import score_split
from pscl.inference.predict import segment, uses_bf16
from pscl.run_folder import RunFolder, output_file


def evaluate(run: str | Path, data: str | Path | DatasetFolder, split: str = "test",
             out: str | Path | None = None, tile: int = 512, overlap: int = 128,
             device: str = "cpu", tta: bool = False, precision: str = "auto") -> dict:
    """Segment every image of ``split`` with the model of ``run`` and score it against the masks
    (``tta``: averaged over the 8 flips and quarter turns; ``precision``: ``auto``, ``32-true`` or
    ``bf16-mixed``, as in :func:`pscl.inference.predict.predict`).

    Writes the result as JSON to ``eval_<dataset>_<split>.json`` in the folder ``out`` (default: the
    run folder; an ``out`` ending in ``.json`` is the file itself).
    """
    bf16 = uses_bf16(precision, device)
    model, payload = load_model(run)
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    default = RunFolder(run).eval_file(ds.name, split)
    out = check_writable(default if out is None else output_file(out, default.name))  # before the work
    ds.require_consistent_splits()  # a test image also in train would be scored as if unseen
    if ds.classes is not None and ds.num_classes != model.num_classes:
        raise DataError(f"{ds.root}: {ds.num_classes} classes, but the model of {run} has {model.num_classes}")
    # TTA over the flips and quarter turns the run's geometry allows (pscl.data.orientation)
    turns = transforms((payload.get("config") or {}).get("geometry")) if tta else False
    labels_of = lambda image: segment(model, image, tile, overlap, device=device, bf16=bf16, tta=turns).labels  # noqa: E731
    result = {"run": str(run), **score_split(ds, split, labels_of), "tta": tta,
              "precision": "bf16-mixed" if bf16 else "32-true", "config": payload.get("config")}
    write_text(out, json.dumps(result, indent=1, default=float))
    result["out"] = str(out)
    return result
