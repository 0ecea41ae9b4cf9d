"""A run survives everything: killed and resumed at any step it ends as the straight run did; one
process per folder; several processes from the CLI; Ctrl-C; outputs that cannot be written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import pscl.train.finetune as finetune_module
import pscl.train.guard as guard_module
import pscl.train.pretrain as pretrain_module
from pscl import FinetuneConfig, finetune
from pscl.checkpoints import read_model_file
from pscl.errors import DataError
from pscl.lock import LOCK_FILE, folder_lock

from conftest import TINY

FINETUNE = [finetune_module, guard_module]  # (a guarded run fits in pscl.train.guard)

PSCL = [sys.executable, "-m", "pscl.cli"]


class _Kill(Callback):
    """Raises at step ``step``: after that step's update, or when its validation starts."""

    def __init__(self, step: int, in_validation: bool):
        self.step, self.in_validation = step, in_validation

    def on_train_batch_end(self, trainer, *args):
        if not self.in_validation and trainer.global_step == self.step:
            raise RuntimeError("killed")

    def on_validation_start(self, trainer, *args):
        if self.in_validation and trainer.global_step == self.step:
            raise RuntimeError("killed")


def _run_killed(modules, monkeypatch, kills: list[tuple[int, bool]], run) -> None:
    """Call ``run()`` (resume=True) once per kill, each killed there, then once to the end (``fit`` patched in
    each of ``modules``, the modules that call it)."""
    fit = modules[0].fit
    for step, in_validation in kills:
        for module in modules:
            monkeypatch.setattr(module, "fit", lambda *a, callbacks=None, **kw: fit(
                *a, callbacks=[*(callbacks or []), _Kill(step, in_validation)], **kw))
        with pytest.raises(RuntimeError, match="killed"):
            run()
    for module in modules:
        monkeypatch.setattr(module, "fit", fit)
    run()


def _same_model(a: Path, b: Path) -> None:
    pa, pb = read_model_file(a), read_model_file(b)
    keys = ("selected", "val_dice_fg", "holdout_dice_fg", "semi_guard", "steps")
    assert {k: pa.get(k) for k in keys} == {k: pb.get(k) for k in keys}
    assert all(torch.allclose(pa["state_dict"][k].float(), pb["state_dict"][k].float(), atol=1e-5)
               for k in pa["state_dict"])


@pytest.mark.parametrize("draw", range(3))
def test_a_run_killed_at_random_steps_and_resumed_ends_as_the_straight_run(synth_data, tmp_path, monkeypatch, draw):
    """Property: 1-3 kills at random steps (some while validating), each followed by --resume, give
    the straight run's model.pt: the same weights, selected checkpoint, val score and step count (and for a
    guarded semi-supervised run, the same held-out scores before and after self-training and decision)."""
    rng = np.random.default_rng(draw)
    options = [dict(select="val"), dict(select="val", lr_schedule="poly"), dict(select="last", semi=True, semi_start=10)][draw]
    config = lambda: FinetuneConfig(steps=30, val_every=10, **options, **TINY)  # noqa: E731
    finetune(synth_data, tmp_path / "straight", config())
    kills = sorted((int(s), bool(v)) for s, v in zip(rng.choice(np.arange(1, 30), rng.integers(1, 4), replace=False),
                                                     rng.random(3) < 0.3))
    kills = [(s, v and s % 10 == 0) for s, v in kills]  # validation starts at steps 10, 20
    _run_killed(FINETUNE, monkeypatch, kills,
                lambda: finetune(synth_data, tmp_path / "resumed", config(), resume=True))
    _same_model(tmp_path / "straight", tmp_path / "resumed")
    assert not (tmp_path / "resumed" / LOCK_FILE).exists()


def test_a_rolled_back_run_killed_before_and_after_the_decision_resumes_to_the_straight_one(synth_data, tmp_path,
                                                                                           monkeypatch):
    import pscl.train.guard as guard
    monkeypatch.setattr(guard, "MARGIN", -1.0)  # every guarded run rolls back
    config = lambda: FinetuneConfig(steps=12, val_every=4, semi=True, select="last", semi_start=4, **TINY)  # noqa: E731
    finetune(synth_data, tmp_path / "straight", config())
    # killed during self-training, then during the plain continuation after the roll-back
    _run_killed(FINETUNE, monkeypatch, [(6, False), (10, False)],
                lambda: finetune(synth_data, tmp_path / "resumed", config(), resume=True))
    _same_model(tmp_path / "straight", tmp_path / "resumed")
    assert read_model_file(tmp_path / "resumed")["semi_guard"]["rolled_back"]


def test_a_killed_guided_pretraining_resumes_to_the_straight_one(synth_data, tmp_path, monkeypatch):
    from pscl.methods import PretrainConfig
    from pscl.train.pretrain import pretrain
    config = lambda: PretrainConfig(method="pscl-simclr", steps=12, batch_size=4, crop=64, checkpoint_every=4,  # noqa: E731
                                    widths=TINY["widths"], options={"top_k": 2}, progress=False, accelerator="cpu",
                                    precision="32-true")
    pretrain(synth_data, tmp_path / "straight", config())
    _run_killed([pretrain_module], monkeypatch, [(6, False), (9, False)],
                lambda: pretrain(synth_data, tmp_path / "resumed", config(), resume=True))
    a, b = read_model_file(tmp_path / "straight"), read_model_file(tmp_path / "resumed")
    assert all(torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-5) for k in a["state_dict"])


def test_resume_never_shortens_a_run_nor_rewrites_its_record(synth_data, tmp_path):
    run = tmp_path / "run"
    finetune(synth_data, run, FinetuneConfig(steps=20, val_every=5, **TINY))
    before = {name: (run / name).read_bytes() for name in ("config.json", "model.pt")}
    with pytest.raises(DataError, match="started for 20 steps.*cannot shorten it to 10"):
        finetune(synth_data, run, FinetuneConfig(steps=10, val_every=5, **TINY), resume=True)
    assert before == {name: (run / name).read_bytes() for name in ("config.json", "model.pt")}


def test_a_folder_in_use_is_refused_naming_the_process(synth_data, tiny_run, tmp_path):
    from pscl.inference.predict import predict
    from pscl.metallography.report import make_report
    from pscl.methods import PretrainConfig
    from pscl.train.pretrain import pretrain

    busy = tmp_path / "busy"
    with folder_lock(busy):
        pid = f"process {os.getpid()}"
        with pytest.raises(DataError, match=pid):
            finetune(synth_data, busy, FinetuneConfig(steps=4, val_every=2, **TINY))
        with pytest.raises(DataError, match=pid):
            pretrain(synth_data, busy, PretrainConfig(steps=2, batch_size=4, crop=64, widths=TINY["widths"],
                                                      progress=False, accelerator="cpu"))
        with pytest.raises(DataError, match=pid):
            predict(tiny_run, synth_data / "images", busy)
        predict(tiny_run, synth_data / "images", tmp_path / "pred", tile=64, overlap=16)
        with pytest.raises(DataError, match=pid):
            make_report(tmp_path / "pred", busy)
        assert sorted(p.name for p in busy.iterdir()) == [LOCK_FILE]  # nothing written beside the lock
    assert not busy.exists()  # the lock's own folder goes when it held nothing


def test_two_commands_started_together_on_one_folder_leave_one_consistent_run(synth_data, tmp_path):
    out = tmp_path / "race"
    procs = [subprocess.Popen([*PSCL, "finetune", str(synth_data), "--profile", "smoke", "--round", str(r), "--out",
                               str(out), "--no-progress", "--accelerator", "cpu"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    results = [(p.wait(300), p.stdout.read(), p.stderr.read()) for p in procs]
    winners = [r for r, (code, _, _) in enumerate(results) if code == 0]
    assert len(winners) == 1, results
    loser = results[1 - winners[0]]
    # (the holder named, or "another process" while it has not yet written who it is)
    refusals = ("in use by process", "in use by another process", "holds a finished run", "another process took it just now")
    assert loser[0] == 1 and any(r in loser[2] for r in refusals), loser
    config = json.loads((out / "config.json").read_text())
    assert config["round"] == winners[0] and read_model_file(out)["config"]["round"] == winners[0]
    assert len(list(out.glob("logs*"))) == 1


@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_devices_2_trains_in_two_cpu_processes_from_the_cli(synth_data, tmp_path, command):
    out = tmp_path / command
    r = subprocess.run([*PSCL, command, str(synth_data), "--profile", "smoke", "--devices", "2", "--accelerator", "cpu",
                        "--out", str(out), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["steps"] == (40 if command == "finetune" else 20)
    payload = read_model_file(out)
    assert payload["config"]["devices"] == 2
    if command == "finetune":
        assert payload["selected"] == "best.ckpt" and 0 <= payload["val_dice_fg"] <= 1
    assert "Warning" not in r.stderr and "warn(" not in r.stderr  # Lightning's warnings stay out of the output
    assert not (out / LOCK_FILE).exists()


def test_ctrl_c_during_training_says_how_to_continue_and_exits_130(synth_data, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([*PSCL, "finetune", str(synth_data), "--profile", "smoke", "--steps", "100000",
                             "--val-every", "5", "--out", str(out), "--no-progress", "--accelerator", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(120)
    err = proc.stderr.read()
    assert code == 130, err[-3000:]
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert not (out / LOCK_FILE).exists() and (out / "checkpoints" / "last.ckpt").exists()
    assert not (out / "model.pt").exists()


def test_two_bench_processes_with_disjoint_rounds_share_one_folder_and_its_pretraining(synth_data, tmp_path):
    """`--only-rounds 0` and `--only-rounds 1` started together: both finish, the label-free pretraining
    both need is made once (one waits for the other), and the report holds both rounds."""
    out = tmp_path / "bench"
    procs = [subprocess.Popen([*PSCL, "bench", "run", str(synth_data), "--out", str(out), "--methods", "simclr",
                               "--rounds", "2", "--profile", "smoke", "--only-rounds", str(r)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    results = [(p.wait(600), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0, 0], results
    assert sorted(p.name for p in (out / "results").rglob("round*.json")) == ["round0.json", "round1.json"]
    pretrainings = [p for p in (out / "pretrain").rglob("model.pt")]
    assert len(pretrainings) == 1 and not list((out / "pretrain").rglob("logs-resumed-*"))
    assert not list(out.rglob(LOCK_FILE))


def test_an_out_folder_another_process_makes_during_the_check_is_taken_not_called_a_file(tmp_path, monkeypatch):
    from pscl.files import ensure_folder
    out, real_is_dir = tmp_path / "race", Path.is_dir

    def is_dir(self):  # the first look finds nothing; another process makes the folder right after it
        if self == out and not out.exists():
            out.mkdir()
            return False
        return real_is_dir(self)
    monkeypatch.setattr(Path, "is_dir", is_dir)
    ensure_folder(out)
    assert real_is_dir(out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="--out is a file, not a folder"):
        ensure_folder(tmp_path / "file")


class _SwallowedCtrlC(Callback):
    """At step 3, a Ctrl-C whose KeyboardInterrupt is lost (as when it lands in a finaliser)."""

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == 3:
            try:
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)
            except KeyboardInterrupt:
                pass


def test_a_ctrl_c_whose_keyboard_interrupt_is_lost_still_stops_the_run(synth_data, tmp_path, monkeypatch):
    fit = finetune_module.fit
    monkeypatch.setattr(finetune_module, "fit", lambda *a, callbacks=None, **kw: fit(
        *a, callbacks=[*(callbacks or []), _SwallowedCtrlC()], **kw))
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        finetune(synth_data, tmp_path / "run", FinetuneConfig(steps=40, val_every=5, select="last", **TINY))
    assert signal.getsignal(signal.SIGINT) is handler  # the caller's handler is back
    assert not (tmp_path / "run" / "model.pt").exists()  # stopped at step 4, not trained to 40
