"""The command line end to end on synthetic data, through the installed console script's app."""
import json
import shutil

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from pscl.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_cli_end_to_end(tmp_path):
    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    r = invoke("data", "synth", "--out", data, "--n", 6, "--seed", 1, "--size", 128, "--unlabeled", 2)
    assert r.exit_code == 0, r.output
    assert invoke("data", "check", data).exit_code == 0
    r = invoke("finetune", data, "--out", run, "--profile", "smoke", "--steps", 20, "--no-progress",
               "--accelerator", "cpu")
    assert r.exit_code == 0, r.output
    assert json.loads((run / "config.json").read_text())["widths"] == [8, 16, 32, 64]
    r = invoke("evaluate", run, data, "--split", "test")
    assert r.exit_code == 0, r.output
    assert "dice_fg" in r.output and (run / "eval_synthetic_test.json").exists()
    r = invoke("predict", run, data / "images", "--out", pred, "--tile", 64, "--overlap", 16)
    assert r.exit_code == 0, r.output
    assert (pred / "phase_fractions.csv").exists() and len(list(pred.glob("*_mask.png"))) == 6


def test_data_check_fails_with_every_problem(synth_data, tmp_path):
    broken = tmp_path / "b"
    shutil.copytree(synth_data, broken)
    stems = json.loads((broken / "dataset.json").read_text())["splits"]["train"]
    Image.fromarray(np.full((5, 5), 9, np.uint8)).save(broken / "masks" / f"{stems[0]}.png")
    (broken / "images" / f"{stems[1]}.png").write_bytes(b"x")
    r = invoke("data", "check", broken)
    assert r.exit_code == 1
    assert r.output.count("problem:") == 2 and f"{stems[1]}.png" in r.output


def test_bad_input_exits_nonzero_with_message(tmp_path):
    r = invoke("evaluate", tmp_path / "norun", tmp_path)
    assert r.exit_code == 1 and "no model file" in r.output
    r = invoke("finetune", tmp_path, "--out", tmp_path / "x", "--profile", "nope")
    assert r.exit_code == 1 and "unknown profile 'nope'" in r.output


def test_demo_pipeline_with_tiny_budget(tmp_path):
    from pscl import demo
    tiny = dict(widths=(8, 16, 32, 64), accelerator="cpu")
    summary = demo(tmp_path, progress=False, log=lambda *_: None,
                   settings=dict(steps=10, val_every=5, crop=64, batch_size=4, **tiny),
                   pretraining=dict(steps=4, checkpoint_every=2, crop=64, batch_size=4, options={"top_k": 2}, **tiny))
    assert 0.0 <= summary["test"]["dice_fg"] <= 1.0
    assert (tmp_path / "pretrain-pscl" / "model.pt").exists()
    assert (tmp_path / "predictions" / "phase_fractions.csv").exists()
    assert len(summary["fractions"]) == 3  # the test split


def test_finetune_options_for_one_image_reach_the_saved_config(synth_data, tmp_path):
    import json
    result = invoke("finetune", synth_data, "--profile", "smoke", "--steps", "2", "--val-every", "2", "--semi",
                    "--semi-threshold", "0.8", "--photometric", "0.3", "--no-semi-align", "--no-progress",
                    "--out", tmp_path / "run")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["semi"], config["semi_threshold"], config["photometric"], config["semi_align"]) == (True, 0.8, 0.3, False)
    assert config["precision"] in ("32-true", "bf16-mixed")  # 'auto' resolved to what ran


def test_version_and_short_help():
    from pscl import __version__
    r = invoke("--version")
    assert r.exit_code == 0 and __version__ in r.output
    r = invoke("finetune", "-h")
    assert r.exit_code == 0 and "--overwrite" in r.output and "--resume" in r.output


def test_gpu_without_a_gpu_is_one_clear_line_and_no_folder(synth_data, tmp_path):
    import pytest
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    r = invoke("finetune", synth_data, "--out", tmp_path / "run", "--accelerator", "gpu", "--profile", "smoke")
    assert r.exit_code == 1 and "--accelerator gpu: no CUDA GPU is visible" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_ctrl_c_says_how_to_continue(synth_data, tmp_path, monkeypatch):
    import pscl.api

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(pscl.api, "finetune", interrupted)
    r = invoke("finetune", synth_data, "--out", tmp_path / "run", "--profile", "smoke")
    assert r.exit_code == 130 and "interrupted" in r.output and "--resume" in r.output


def test_export_to_a_folder_is_refused(tiny_run, tmp_path):
    r = invoke("export", tiny_run, "--onnx", tmp_path)
    assert r.exit_code == 1 and "--onnx is a folder" in r.output


def test_every_finetune_option_is_the_config_field_of_its_name_with_its_default():
    """One source of truth: the command's options that set the config are its fields by name, their
    defaults are None (the profile's or the config's) or the config's own; every field a user sets has one."""
    import inspect
    from dataclasses import MISSING, fields

    from pscl.cli.train import finetune
    from pscl.train.finetune import FinetuneConfig
    config_fields = {f.name: f for f in fields(FinetuneConfig)}
    parameters = inspect.signature(finetune).parameters
    run_options = {"data", "out", "profile", "resume", "overwrite"}  # where and how, not what the run computes
    FINETUNE_OPTIONS = set(parameters) - run_options
    assert FINETUNE_OPTIONS <= set(config_fields), FINETUNE_OPTIONS - set(config_fields)
    recorded_only = {"geometry", "dataset", "annotated"}  # filled in by the run
    api_only = {"stems", "semi_rampup", "semi_batch", "norm"}  # the Python API's (explicit images, semi batch
    # shape, the U-Net's norm: none measured better than batch norm)
    assert set(config_fields) == set(FINETUNE_OPTIONS) | recorded_only | api_only
    for name in FINETUNE_OPTIONS:
        default = getattr(parameters[name].default, "default", parameters[name].default)  # typer.Option's
        own = config_fields[name].default
        own = own if own is not MISSING else config_fields[name].default_factory()
        assert default is None or default == own or (name == "devices" and default == str(own)), (name, default, own)
