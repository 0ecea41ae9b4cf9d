"""pscl: segment metal microstructures after annotating as little as one micrograph.

Patch-sampled contrastive learning (PSCL, Sci. Rep. 2025) and baselines for U-Net pretraining,
few-label fine-tuning, evaluation and tiled prediction. See ``pscl.api`` for the Python API.
"""
from pscl.api import (METHODS, PretrainConfig, pretrain, pretrain_config, PROFILES, DatasetFolder, FinetuneConfig, check_dataset, demo, evaluate, finetune,
                      finetune_config, load_dataset, predict, segment, synthesize_dataset)

__version__ = "0.1.0"
__all__ = ["METHODS", "PretrainConfig", "pretrain", "pretrain_config", "PROFILES", "DatasetFolder", "FinetuneConfig", "check_dataset", "demo", "evaluate", "finetune",
           "finetune_config", "load_dataset", "predict", "segment", "synthesize_dataset", "__version__"]
