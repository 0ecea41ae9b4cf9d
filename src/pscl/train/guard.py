"""Self-training that checks itself: the semi-supervised phase is kept only if it did not make the held-out
annotation worse.

Without val masks (``select="last"``) a semi-supervised run holds a fifth of the annotation out of training
(:mod:`pscl.train.holdout`) and scores it at every validation. :class:`SemiGuard` keeps the weights of the
validation that ends the supervised-only phase (``checkpoints/pre-semi.ckpt``, with their held-out Dice) and
the held-out Dice of the last validation. At the end of the budget :func:`guard_decision` keeps the last model,
or, when self-training lowered the held-out Dice by more than ``margin``, rolls the run back: it trains on from
the pre-semi model without self-training, on the whole annotation (the held-out part included, as it has
nothing left to check), to the end of its budget (:func:`guarded_fit`). The decision is written
(``checkpoints/guard.json``) before anything moves, so a run killed at any point resumes to the straight one.
Only two models are compared (no maximum over many checkpoints, which favours noise), and both scores are
recorded in ``model.pt`` whatever the decision.

A decision two thirds into self-training, with the rest of the budget on the whole annotation, was tried and
measured worse: self-training's harm to the synthetic cross-sections often shows only in its last third
(``benchmarks/user-protocol/guard/README.md``).
"""
from __future__ import annotations

import math

from lightning.pytorch.callbacks import Callback

from pscl.run_folder import RunFolder
from pscl.train.trainer import fit

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


def read_decision(folder: RunFolder) -> dict | None:
    """The decision a guarded run wrote (``guard.json``), or None before it decided."""
    import json
    return json.loads(folder.guard_record.read_text()) if folder.guard_record.is_file() else None


def decide(folder: RunFolder, margin: float | None = None) -> dict:
    """Decide from the run's ``last.ckpt`` (the self-trained model at the end, whatever process trained it) and
    write ``{"pre", "end", "margin", "rolled_back"}`` to ``guard.json``."""
    import json

    import torch

    from pscl.files import write_text
    margin = MARGIN if margin is None else margin
    state = {}
    if folder.last_checkpoint.is_file():
        checkpoint = torch.load(folder.last_checkpoint, map_location="cpu", weights_only=False)
        state = checkpoint.get("callbacks", {}).get(SemiGuard.__qualname__, {})
    pre, end = state.get("pre"), state.get("end")
    rolled = guard_decision(pre, end, margin) and folder.pre_semi_checkpoint.is_file()
    record = {"pre": pre, "end": end, "margin": margin, "rolled_back": rolled}
    write_text(folder.guard_record, json.dumps(record))
    return record


def guarded_fit(folder: RunFolder, module, train, fallback, steps: int, every: int, monitor: str, run: dict,
                resuming: bool) -> dict:
    """Train a guarded semi-supervised ``module`` to ``steps`` on ``train`` (the annotation less the held-out part,
    and the unlabelled crops; ``run["val"]`` scores the held-out part as ``monitor``), resuming where a run left
    off, and return the guard's decision. ``fallback()`` gives, only after a roll-back, the same model without
    self-training and a loader of the whole annotation, which train on from ``pre-semi.ckpt``."""
    record = read_decision(folder)
    if record is None:
        fit(module, folder.path, train, steps, every, resume=resuming, callbacks=[SemiGuard(folder, monitor)], **run)
        record = decide(folder)
    if record["rolled_back"]:  # self-training's last.ckpt set aside (once), then on from the pre-semi model
        if folder.last_checkpoint.is_file() and not folder.semi_last_checkpoint.is_file():
            folder.last_checkpoint.replace(folder.semi_last_checkpoint)
        plain, whole = fallback()
        plain.strict_loading = False  # (the checkpoint also holds the teacher)
        fit(plain, folder.path, whole, steps, every, resume=True, start_from=folder.pre_semi_checkpoint,
            **{**run, "val": None})
    return record
