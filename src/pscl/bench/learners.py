"""What the bench trains, behind one interface: the U-Net (from scratch, on the whole split, or from
a pretraining) and the random-forest baseline. The protocol, the report and the figure call only
:class:`Learner`; neither knows which kind it holds.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from pscl.profiles import profile_settings
from pscl.run_folder import RunFolder


class Learner(Protocol):
    """Train on a draw of annotated images into a run folder, score it, segment with it."""

    def config(self, finetune_fields: dict, round_index: int, shots: int, profile: str, seed: int,
               stems: list[str] | None = None, progress: bool = False, init: Path | None = None):
        """The config this learner trains with on one draw (``stems`` None: the round's images)."""

    def train(self, data: Path, run: Path, config) -> None:
        """Train (or resume, or keep a finished run recorded with the same settings)."""

    def evaluate(self, run: Path, data: Path, split: str, **options) -> dict:
        """Scores on ``split`` (:func:`pscl.metrics.score_split`'s keys, plus ``config``); ``options``:
        evaluation settings (``tta``), whose scores are written beside the plain ones, not over them."""

    def selection(self, run: Path) -> dict:
        """How the model was chosen: ``selected`` and, where there is one, ``val_dice_fg``."""

    def model_file(self, run: Path) -> Path:
        """The file whose presence means the run holds a model."""

    def segment(self, run: Path, image: np.ndarray) -> np.ndarray:
        """uint8 labels of a normalised micrograph."""


class UNetLearner:
    """The U-Net, fine-tuned with the profile's budget (``all_train``: on the whole train split)."""

    def __init__(self, all_train: bool = False):
        self.all_train = all_train

    def config(self, finetune_fields, round_index, shots, profile, seed, stems=None, progress=False, init=None):
        from pscl.train.finetune import FinetuneConfig
        # a variant's ft.seed (scratch:ft.seed=1) overrides the bench seed: the same annotated image, another
        # initialisation and crop stream, which measures how much of a difference the seed alone makes
        settings = {"seed": seed, **profile_settings(profile, "finetune"), **finetune_fields}
        return FinetuneConfig(shots=shots, round=round_index, all_train=self.all_train, stems=stems,
                              progress=progress, init=str(init) if init else None, **settings)

    def train(self, data, run, config):
        from pscl.train.finetune import finetune
        RunFolder(run).check_settings(config)
        finetune(data, run, config, resume=True)

    def evaluate(self, run, data, split, **options):
        from pscl.inference.evaluate import evaluate
        out = Path(run) / ("eval-" + "-".join(f"{k}={v}" for k, v in sorted(options.items()))) if options else None
        return evaluate(run, data, split=split, out=out, **options)

    def selection(self, run):
        from pscl.checkpoints import read_model_file
        # the selection criterion: variants of a method are compared on it, never on test
        from pscl.train.finetune import selection_scores
        return {"selected": RunFolder(run).read_config()["select"], **selection_scores(read_model_file(run))}

    def model_file(self, run):
        return RunFolder(run).model_file

    def segment(self, run, image):
        from pscl.checkpoints import load_model
        from pscl.inference.predict import segment
        return segment(load_model(run)[0], image).labels


class ForestLearner:
    """The random forest on filter features (:mod:`pscl.train.forest`): seconds to train, so a run
    is always trained afresh."""

    def config(self, finetune_fields, round_index, shots, profile, seed, stems=None, progress=False, init=None):
        from pscl.train.forest import ForestConfig
        return ForestConfig(shots=shots, round=round_index, seed=seed, stems=stems)

    def train(self, data, run, config):
        from pscl.train.forest import train_forest
        train_forest(data, run, config, overwrite=True)

    def evaluate(self, run, data, split, **options):
        from pscl.train.forest import evaluate_forest
        return evaluate_forest(run, data, split=split)

    def selection(self, run):
        return {"selected": "n/a"}

    def model_file(self, run):
        return RunFolder(run).forest_file

    def segment(self, run, image):
        import pickle

        from pscl.train.forest import segment_forest
        return segment_forest(pickle.loads(self.model_file(run).read_bytes())["forest"], image)


def learner_for(method: str) -> Learner:
    """The learner of a parsed bench method name (``forest``, ``full``, or any U-Net method)."""
    return ForestLearner() if method == "forest" else UNetLearner(all_train=method == "full")
