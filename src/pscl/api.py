"""The Python API; the CLI is a thin layer over these functions.

>>> import pscl
>>> pscl.synthesize_dataset("syn", n=12)                      # doctest: +SKIP
>>> pscl.finetune("syn", "run", pscl.finetune_config("quick"))  # doctest: +SKIP
>>> pscl.evaluate("run", "syn", split="test")["dice_fg"]        # doctest: +SKIP
>>> pscl.predict("run", "micrographs/", "segmented/")          # doctest: +SKIP
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from pscl.data.folders import DatasetFolder, check_dataset, load_dataset
from pscl.data.synth import synthesize_dataset
from pscl.evaluate import evaluate
from pscl.finetune import FinetuneConfig, finetune
from pscl.methods import METHODS, PretrainConfig
from pscl.predict import predict, segment
from pscl.pretrain import pretrain
from pscl.profiles import PROFILES, profile_settings


def finetune_config(profile: str | None = None, **overrides) -> FinetuneConfig:
    """A FinetuneConfig from a named profile's budget, with explicit overrides on top."""
    return FinetuneConfig(**{**profile_settings(profile, "finetune"), **overrides})


def pretrain_config(profile: str | None = None, **overrides) -> PretrainConfig:
    """A PretrainConfig from a named profile's budget, with explicit overrides on top."""
    return PretrainConfig(**{**profile_settings(profile, "pretrain"), **overrides})


DEMO_SETTINGS = dict(widths=(16, 32, 64, 128), crop=128, batch_size=8, steps=300, val_every=100)


def demo(out: str | Path = "pscl-demo", seed: int = 0, progress: bool = True,
         log: Callable[[str], None] = print, settings: dict | None = None) -> dict:
    """Synthesise a dataset, train from 1 annotated image, evaluate on test, predict the test images.

    Returns {"out", "test" (scores), "fractions", "seconds"}. ``settings`` overrides the budget.
    """
    t0 = time.time()
    out = Path(out)
    data = out / "data"
    if not (data / "dataset.json").exists():
        log(f"synthesising a dataset in {data}")
        synthesize_dataset(data, n=12, seed=seed, size=256)
    run = out / "run-1shot"
    config = FinetuneConfig(shots=1, round=0, seed=seed, progress=progress, **{**DEMO_SETTINGS, **(settings or {})})
    log(f"training from 1 annotated image ({config.steps} steps) into {run}")
    finetune(data, run, config)
    log("evaluating on the test split")
    test = evaluate(run, data, split="test")
    log(f"segmenting the test images into {out / 'predictions'}")
    ds = load_dataset(data)
    fractions = predict(run, data / "images", out / "predictions")
    fractions = {k: v for k, v in fractions.items() if k in ds.splits["test"]}
    return {"out": str(out), "test": test, "fractions": fractions, "seconds": time.time() - t0}


__all__ = ["METHODS", "PretrainConfig", "pretrain", "pretrain_config", "DatasetFolder", "FinetuneConfig", "PROFILES", "check_dataset", "demo", "evaluate", "finetune",
           "finetune_config", "load_dataset", "predict", "segment", "synthesize_dataset"]
