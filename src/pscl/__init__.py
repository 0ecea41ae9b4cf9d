"""pscl: segment metal microstructures after annotating as little as one micrograph.

Patch-sampled contrastive learning (PSCL, Sci. Rep. 2025) and baselines for U-Net pretraining,
few-label fine-tuning, evaluation and tiled prediction. See ``pscl.api`` for the Python API.

The names below load lazily, so that torch-free parts (ONNX prediction, statistics, reports)
can be imported without importing torch.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["METHODS", "PretrainConfig", "pretrain", "pretrain_config", "PROFILES", "DatasetFolder",
           "FinetuneConfig", "check_dataset", "demo", "init_dataset", "evaluate", "finetune", "finetune_config",
           "linear_probe", "load_dataset", "ProbeConfig", "predict", "segment", "synthesize_dataset", "__version__"]


def __getattr__(name: str):
    """The API's names, from :mod:`pscl.api` on first use (no name here shadows a submodule)."""
    if name in __all__:
        return getattr(importlib.import_module("pscl.api"), name)
    raise AttributeError(f"module 'pscl' has no attribute {name!r}")
