"""The model file of a run (``RUN/model.pt``): U-Net weights, class names and the full config.

Lightning's own checkpoints (``RUN/checkpoints/*.ckpt``) serve resuming; ``model.pt`` is the
selected model that evaluate, predict and ``--init`` read, independent of Lightning.
"""
from __future__ import annotations

from pathlib import Path

import torch

from pscl.errors import DataError
from pscl.files import atomic_write
from pscl.nn import UNet
from pscl.run_folder import MODEL_FILE  # the run folder owns the name


def save_model(run: str | Path, model: UNet, config: dict, classes: list[str] | None, **extra) -> Path:
    """Write ``RUN/model.pt`` atomically."""
    payload = {"state_dict": model.state_dict(), "widths": list(model.widths), "norm": config.get("norm", "batch"),
               "num_classes": model.num_classes, "classes": classes, "config": config, **extra}
    return atomic_write(Path(run) / MODEL_FILE, lambda p: torch.save(payload, p))


def read_model_file(run: str | Path) -> dict:
    """The raw payload of ``RUN/model.pt`` (``run`` may also be the file itself)."""
    path = Path(run)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise DataError(f"{path}: no model file (train with `pscl finetune` or `pscl pretrain` first)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch's messages run to many lines: the first one says what happened
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(f"{path}: unreadable model file, truncated or not a pscl model ({first})") from None
    if not isinstance(payload, dict) or "state_dict" not in payload or "widths" not in payload:
        raise DataError(f"{path}: not a pscl model file (no U-Net weights in it)")
    return payload


def load_model(run: str | Path) -> tuple[UNet, dict]:
    """The U-Net of a run, in eval mode, and its payload (classes, config, ...)."""
    payload = read_model_file(run)
    model = UNet(payload["num_classes"], tuple(payload["widths"]), norm=payload.get("norm", "batch"))
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload


def load_backbone(model: UNet, run: str | Path, classes: list[str] | None = None) -> dict:
    """Copy the encoder and decoder weights of a run into ``model``; its classifier too where the run was
    fine-tuned for the same ``classes`` (a correction round goes on from the last model), else the
    classifier stays fresh."""
    payload = read_model_file(run)
    if tuple(payload["widths"]) != tuple(model.widths):
        raise DataError(f"{run}: widths {tuple(payload['widths'])} differ from the model's {model.widths}")
    same_classes = classes is not None and list(payload.get("classes") or []) == list(classes)
    state = {k: v for k, v in payload["state_dict"].items() if same_classes or not k.startswith("classifier.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise DataError(f"{run}: weights do not fit the U-Net (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return payload
