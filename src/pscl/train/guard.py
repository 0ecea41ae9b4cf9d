"""Self-training that checks itself: the semi-supervised phase is kept only if it did not make the held-out
annotation worse.

Without val masks (``select="last"``) a semi-supervised run holds a fifth of the annotation out of training
(:mod:`pscl.train.holdout`) and scores it at every validation. :class:`SemiGuard` keeps the weights of the
validation that ends the supervised-only phase (``checkpoints/pre-semi.ckpt``, with their held-out Dice) and
the held-out Dice of the last validation; :func:`guard_decision` then keeps the last model, or, when
self-training lowered the held-out Dice by more than ``margin``, the run rolls back to the pre-semi model and
trains on from it without self-training to the end of its budget (:func:`set_aside`; pscl.train.finetune), so it
ends as plain fine-tuning would. Only two models are compared (no maximum over many checkpoints, which favours
noise), and both scores are recorded in ``model.pt`` whatever the decision.
"""
from __future__ import annotations

import math

from lightning.pytorch.callbacks import Callback

from pscl.run_folder import RunFolder

# the held-out Dice (fg) self-training may cost before the run rolls back to its pre-semi model
MARGIN = 0.02


class SemiGuard(Callback):
    """Saves the model of the validation at the semi-supervised start step (``module.start``) as
    ``checkpoints/pre-semi.ckpt`` and keeps the monitored score there and at the latest validation; its
    state rides in every checkpoint, so a resumed run keeps both."""

    def __init__(self, folder: RunFolder, monitor: str):
        self.path, self.monitor = folder.pre_semi_checkpoint, monitor
        self.pre: float | None = None
        self.end: float | None = None

    def state_dict(self) -> dict:
        return {"pre": self.pre, "end": self.end}

    def load_state_dict(self, state: dict) -> None:
        self.pre, self.end = state.get("pre"), state.get("end")

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        score = float(trainer.callback_metrics[self.monitor])
        self.end = score
        if trainer.global_step == module.start:
            self.pre = score
            trainer.save_checkpoint(self.path)


def guard_decision(pre: float | None, end: float | None, margin: float) -> bool:
    """Whether to roll back to the pre-semi model: its held-out score beats the end's by more than ``margin``.
    Without both scores (no validation at the start step) the last model is kept."""
    if pre is None or end is None or not (math.isfinite(pre) and math.isfinite(end)):
        return False
    return pre - end > margin


def guard_record(folder: RunFolder, margin: float | None = None) -> dict:
    """After a guarded run's self-training phase: ``{"pre", "end", "margin", "rolled_back"}``, from the record of
    a roll-back already decided, else from the run's ``last.ckpt`` on disk (whatever process trained)."""
    import json

    import torch
    if folder.rollback_record.is_file():
        return json.loads(folder.rollback_record.read_text())
    margin = MARGIN if margin is None else margin
    state = {}
    if folder.last_checkpoint.is_file():
        checkpoint = torch.load(folder.last_checkpoint, map_location="cpu", weights_only=False)
        state = checkpoint.get("callbacks", {}).get(SemiGuard.__qualname__, {})
    pre, end = state.get("pre"), state.get("end")
    rolled = guard_decision(pre, end, margin) and folder.pre_semi_checkpoint.is_file()
    return {"pre": pre, "end": end, "margin": margin, "rolled_back": rolled}


def set_aside(folder: RunFolder, record: dict) -> None:
    """Roll back: the self-training phase's ``last.ckpt`` becomes ``semi-last.ckpt`` and the decision is written,
    so the run goes on from ``pre-semi.ckpt`` without self-training (and a resumed run knows it)."""
    import json

    from pscl.files import write_text
    if folder.last_checkpoint.is_file():
        folder.last_checkpoint.replace(folder.semi_last_checkpoint)
    write_text(folder.rollback_record, json.dumps(record))
