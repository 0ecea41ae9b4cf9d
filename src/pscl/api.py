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

import pscl
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.annotation import init_dataset
from pscl.data.labels import check_dataset
from pscl.data.synth import synthesize_dataset
from pscl.inference.evaluate import evaluate
from pscl.train.finetune import FinetuneConfig, finetune, finetune_config
from pscl.methods import METHODS, PretrainConfig, pretrain_config
from pscl.inference.predict import predict, segment
from pscl.train.pretrain import pretrain
from pscl.studies.probe import ProbeConfig, linear_probe
from pscl.profiles import PROFILES


DEMO_SETTINGS = dict(widths=(16, 32, 64, 128), crop=128, batch_size=8, steps=300, val_every=100)
DEMO_PRETRAIN = dict(method="pscl-simclr", widths=(16, 32, 64, 128), crop=96, batch_size=8, steps=120,
                     checkpoint_every=40)


def demo(out: str | Path = "pscl-demo", seed: int = 0, progress: bool = True,
         log: Callable[[str], None] = print, settings: dict | None = None, pretraining: dict | None = None) -> dict:
    """Synthesise a dataset, pretrain with PSCL-SimCLR guided by 1 annotated image, fine-tune on
    that image, evaluate on test, segment the test images.

    Returns {"out", "test" (scores), "fractions", "seconds"}. ``settings`` overrides the
    fine-tuning budget, ``pretraining`` the pretraining one.
    """
    t0 = time.time()
    out = Path(out)
    data = out / "data"
    if not (data / "dataset.json").exists():
        log(f"synthesising a dataset in {data}")
        synthesize_dataset(data, n=12, seed=seed, size=256)
    pre_run, run = out / "pretrain-pscl", out / "run-1shot"
    pre = PretrainConfig(shots=1, round=0, seed=seed, progress=progress, **{**DEMO_PRETRAIN, **(pretraining or {})})
    log(f"pretraining with {pre.method} guided by 1 annotated image ({pre.steps} steps) into {pre_run}")
    pretrain(data, pre_run, pre)
    config = FinetuneConfig(shots=1, round=0, seed=seed, progress=progress, init=str(pre_run),
                            **{**DEMO_SETTINGS, **(settings or {})})
    log(f"fine-tuning on that image ({config.steps} steps) into {run}")
    finetune(data, run, config)
    log("evaluating on the test split")
    test = evaluate(run, data, split="test")
    log(f"segmenting the test images into {out / 'predictions'}")
    ds = load_dataset(data)
    fractions = predict(run, data / "images", out / "predictions")
    fractions = {k: v for k, v in fractions.items() if k in ds.splits["test"]}
    return {"out": str(out), "test": test, "fractions": fractions, "seconds": time.time() - t0}


# the names of the package's front door (one list, in pscl/__init__.py), less the version
__all__ = [name for name in pscl.__all__ if name != "__version__"]
