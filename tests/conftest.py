"""Shared fixtures: a small synthetic dataset folder and a briefly trained run (session-scoped)."""
from __future__ import annotations

from pathlib import Path

import pytest

from pscl import FinetuneConfig, finetune, synthesize_dataset

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
TINY = dict(widths=(8, 16, 32, 64), crop=64, batch_size=4, progress=False, accelerator="cpu", precision="32-true")


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    return synthesize_dataset(tmp_path_factory.mktemp("data") / "syn", n=8, seed=3, size=160, n_unlabeled=4)


@pytest.fixture(scope="session")
def pscl_pretraining(synth_data, tmp_path_factory) -> Path:
    """60 PSCL-SimCLR steps on the synthetic set, guided by round 0's annotated image."""
    from pscl.methods import PretrainConfig
    from pscl.train.pretrain import pretrain

    run = tmp_path_factory.mktemp("pretrain") / "pscl"
    pretrain(synth_data, run, PretrainConfig(method="pscl-simclr", steps=60, batch_size=8, crop=64, checkpoint_every=60,
                                             widths=TINY["widths"], options={"top_k": 2}, progress=False,
                                             accelerator="cpu", precision="32-true"))
    return run


@pytest.fixture(scope="session")
def tiny_run(synth_data, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    finetune(synth_data, run, FinetuneConfig(steps=20, val_every=10, **TINY))
    return run


def shared_dataset(name: str) -> Path:
    path = SHARED_DATA / name
    if not (path / "dataset.json").exists():
        pytest.skip(f"real data {path} is absent (tests use synthetic data instead)")
    return path
