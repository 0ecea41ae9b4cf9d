"""Named training budgets. Every method of a comparison uses the same profile, and the profile is
written into every result. Budgets are in optimiser steps, not epochs, so they do not depend on
how many images a dataset has.

* ``smoke``: seconds on a CPU; for tests only (the numbers mean nothing).
* ``quick``: a 2-core CPU; U-Net widths 16/32/64/128 (half the paper's); fine-tuning 400 steps of
  8 crops of 128 px; pretraining 200 steps of 16 crops of 96 px. Sized so that the whole MetalDAM
  comparison (9 methods, 1 shot, 5 rounds: 14 pretrainings, 36 fine-tunings) fits 2.5 h on 2 cores.
* ``cpu``: ``quick``'s sizes at the budgets where the MetalDAM curves flatten (``benchmarks/fine-tuning/convergence-metaldam*``,
  ``benchmarks/pretraining/pretrain-budget-metaldam``): fine-tuning 1500 steps with poly lr (one annotated image: val Dice (fg)
  0.25 at 400-750 steps, 0.34-0.39 from 1000 on), pretraining 800 steps (PSCL-SimCLR's linear probe: 0.205, 0.270,
  0.312 at 200, 800, 3200 steps). About 5-6 min a fine-tuning and 10-12 min a PSCL pretraining on one Zen 5 core
  (4, 5.5 and 1.8 for a label-free pretraining on one core of an AMX Xeon, 2026-12-04):
  the whole MetalDAM comparison (36 fine-tunings, 10 PSCL and 4 label-free pretrainings) is ~5.3 core-hours, ~2.7 h
  as two single-core processes (``pscl bench run --only-rounds``).
* ``paper``: the paper's network (widths 32..256), 376 px crops and fine-tuning lr rule, for a GPU.
"""
from __future__ import annotations

PROFILES: dict[str, dict[str, dict]] = {
    "smoke": {"finetune": dict(widths=(8, 16, 32, 64), crop=64, batch_size=4, steps=40, val_every=20),
              "pretrain": dict(widths=(8, 16, 32, 64), crop=64, batch_size=8, steps=20, checkpoint_every=10)},
    "quick": {"finetune": dict(widths=(16, 32, 64, 128), crop=128, batch_size=8, steps=400, val_every=100),
              "pretrain": dict(widths=(16, 32, 64, 128), crop=96, batch_size=16, steps=200, checkpoint_every=50),
              # PSCL-MoCo's top_k 30 is GPU work: 600 cells per image at scale 2
              "method_options": {"pscl-moco": {"top_k": 4}}},
    "cpu": {"finetune": dict(widths=(16, 32, 64, 128), crop=128, batch_size=8, steps=1500, val_every=250,
                             lr_schedule="poly"),
            "pretrain": dict(widths=(16, 32, 64, 128), crop=96, batch_size=16, steps=800, checkpoint_every=200),
            "method_options": {"pscl-moco": {"top_k": 4}}},
    # the paper's rule from a pretraining: lr 1e-4 on the contracting path (the other profiles: lr everywhere)
    "paper": {"finetune": dict(widths=(32, 64, 128, 256), crop=376, batch_size=8, steps=4000, val_every=250,
                               lr_contracting_init=1e-4),
              "pretrain": dict(widths=(32, 64, 128, 256), crop=376, batch_size=16, steps=20000, checkpoint_every=500)},
}


def profile_settings(name: str | None, stage: str) -> dict:
    """The settings of ``stage`` ('finetune', 'pretrain', ...) in profile ``name`` ({} for None)."""
    if name is None:
        return {}
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return dict(PROFILES[name].get(stage, {}))


def method_options(name: str | None, method: str) -> dict:
    """Method options a profile sets (e.g. a smaller PSCL top_k on CPU)."""
    return dict(profile_settings(name, "method_options").get(method, {}))
