"""The run folder's reuse rules and the mistakes a user makes with --out, --resume and the data:
each refused with a message naming the file or option, exit status != 0, nothing half-written."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pscl import FinetuneConfig, evaluate, finetune
from pscl.cli import app
from pscl.data import load_dataset
from pscl.errors import DataError
from pscl.run_folder import RunFolder

from conftest import TINY

STEPS = dict(steps=6, val_every=3, **TINY)


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def _edited(synth_data, tmp_path, edit) -> "Path":
    """A copy of the synthetic dataset with its dataset.json changed by ``edit(meta)``."""
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    meta = json.loads((data / "dataset.json").read_text())
    edit(meta)
    (data / "dataset.json").write_text(json.dumps(meta))
    return data


def _snapshot(folder):
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished(synth_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    finetune(synth_data, run, FinetuneConfig(**STEPS))
    return run


def test_a_finished_run_is_not_overwritten_without_being_asked(synth_data, finished):
    before = _snapshot(finished)
    with pytest.raises(DataError, match=r"run: holds a finished run; pass --overwrite"):
        finetune(synth_data, finished, FinetuneConfig(**{**STEPS, "lr": 3e-3}))
    assert _snapshot(finished) == before  # config, logs and checkpoints untouched, no best-v1.ckpt
    r = invoke("finetune", synth_data, "--out", finished, "--profile", "smoke", "--no-progress")
    assert r.exit_code == 1 and "--overwrite" in r.output


def test_resume_returns_a_finished_run_even_when_moved(synth_data, finished, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(finished, moved)  # its checkpoints still name the old folder
    before = _snapshot(moved)
    summary = finetune(synth_data, moved, FinetuneConfig(**STEPS), resume=True)
    assert summary["run"] == str(moved) and summary["selected"] == "best.ckpt"
    assert _snapshot(moved) == before


def test_resume_with_other_settings_is_refused_before_anything_is_written(synth_data, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    config_text = (run / "config.json").read_text()
    with pytest.raises(DataError, match=r"config.json: made with other settings .*lr 0.001 there, 0.003 now"):
        finetune(synth_data, run, FinetuneConfig(**{**STEPS, "lr": 3e-3}), resume=True)
    assert (run / "config.json").read_text() == config_text


def test_an_unfinished_run_needs_resume_or_overwrite(synth_data, finished, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "model.pt").unlink()  # killed before the end
    with pytest.raises(DataError, match="holds an unfinished run \\(--resume continues it\\)"):
        finetune(synth_data, run, FinetuneConfig(**STEPS))
    (run / "eval_old.json").write_text("{}")
    (run / "notes.txt").write_text("mine")
    finetune(synth_data, run, FinetuneConfig(**{**STEPS, "lr": 3e-3}), overwrite=True)
    assert json.loads((run / "config.json").read_text())["lr"] == 3e-3
    assert not (run / "eval_old.json").exists() and (run / "notes.txt").read_text() == "mine"
    assert not list(run.glob("logs-resumed-*")) and not list((run / "checkpoints").glob("*-v1.ckpt"))


def test_out_that_is_a_file_is_refused(synth_data, tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(DataError, match="--out is a file"):
        finetune(synth_data, out, FinetuneConfig(**STEPS))
    assert RunFolder(tmp_path / "nothing").prepare() is False


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["splits"]["test"].append(m["splits"]["train"][0]), r"listed twice \(train and test\)"),
    (lambda m: m["splits"]["train"].append(m["splits"]["train"][0]), r"listed twice \(train and train\)"),
])
def test_finetune_and_evaluate_refuse_what_data_check_refuses(synth_data, finished, tmp_path, edit, message):
    data = _edited(synth_data, tmp_path, edit)
    assert invoke("data", "check", data).exit_code == 1
    with pytest.raises(DataError, match=message):
        finetune(data, tmp_path / "run", FinetuneConfig(**STEPS))
    assert not (tmp_path / "run").exists()
    with pytest.raises(DataError, match=message):
        evaluate(finished, data, split="test", out=tmp_path / "e.json")
    assert not (tmp_path / "e.json").exists()


def test_an_empty_val_split_needs_select_last(synth_data, tmp_path):
    data = _edited(synth_data, tmp_path, lambda m: m["splits"].update(val=[]))
    with pytest.raises(DataError, match="split 'val' is missing or empty.*--select last"):
        finetune(data, tmp_path / "run", FinetuneConfig(**STEPS))
    assert not (tmp_path / "run").exists()
    assert finetune(data, tmp_path / "last", FinetuneConfig(**STEPS, select="last"))["selected"] == "last"


def test_shots_and_round_out_of_range_are_refused(synth_data, tmp_path):
    n = len(load_dataset(synth_data).stems("train"))
    r = invoke("finetune", synth_data, "--out", tmp_path / "a", "--shots", n + 1, "--profile", "smoke")
    assert r.exit_code == 1 and f"--shots {n + 1} exceeds the {n} train images" in r.output
    r = invoke("finetune", synth_data, "--out", tmp_path / "b", "--round", -1, "--profile", "smoke")
    assert r.exit_code == 1 and "--round must be >= 0" in r.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_bad_val_mask_is_found_before_the_config_is_written(synth_data, tmp_path):
    data = _edited(synth_data, tmp_path, lambda m: None)
    stem = json.loads((data / "dataset.json").read_text())["splits"]["val"][0]
    mask = np.array(Image.open(data / "masks" / f"{stem}.png"))
    mask[0, 0] = 7
    Image.fromarray(mask).save(data / "masks" / f"{stem}.png")
    with pytest.raises(DataError, match=f"{stem}.png: class index 7 out of range"):
        finetune(data, tmp_path / "run", FinetuneConfig(**STEPS))
    assert not (tmp_path / "run").exists()


def test_a_one_pixel_image_is_refused_everywhere(synth_data, tmp_path):
    data = _edited(synth_data, tmp_path, lambda m: None)
    stem = json.loads((data / "dataset.json").read_text())["splits"]["train"][0]
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(data / "images" / f"{stem}.png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(data / "masks" / f"{stem}.png")
    r = invoke("data", "check", data)
    assert r.exit_code == 1 and "too small to segment" in r.output
    with pytest.raises(DataError, match=f"{stem}.png: image of 1x1 px is too small"):
        finetune(data, tmp_path / "run", FinetuneConfig(**STEPS, all_train=True))


def test_widths_that_contradict_init_are_refused(synth_data, finished, tmp_path):
    r = invoke("finetune", synth_data, "--out", tmp_path / "run", "--init", finished, "--widths", "4,8,16,32",
               "--profile", "smoke")
    assert r.exit_code == 1 and "--widths 4,8,16,32 differs from the widths of --init" in r.output
    assert not (tmp_path / "run").exists()


def test_evaluate_out_is_a_folder_as_everywhere(synth_data, finished, tmp_path):
    r = invoke("evaluate", finished, synth_data, "--out", tmp_path / "scores")
    assert r.exit_code == 0 and (tmp_path / "scores" / "eval_synthetic_test.json").exists()
    r = invoke("evaluate", finished, synth_data, "--out", tmp_path / "named.json")
    assert r.exit_code == 0 and (tmp_path / "named.json").exists()


def test_every_stage_takes_a_run_folder_where_it_takes_its_path(synth_data, tmp_path):
    from pscl.train.forest import ForestConfig, evaluate_forest, train_forest

    folder = RunFolder(tmp_path / "unet")
    summary = finetune(synth_data, folder, FinetuneConfig(steps=2, val_every=2, **TINY))
    assert summary["run"] == str(tmp_path / "unet") and folder.finished
    assert evaluate(folder, synth_data, split="test")["run"] == str(tmp_path / "unet")
    assert folder.eval_file("synthetic", "test").exists()
    forest = RunFolder(tmp_path / "forest")
    train_forest(synth_data, forest, ForestConfig(trees=5))
    assert forest.forest_file.exists() and evaluate_forest(forest, synth_data)["run"] == str(tmp_path / "forest")


def test_a_record_without_a_setting_whose_default_changed_compares_as_its_old_value(tmp_path):
    from pscl.run_folder import check_recorded
    old = {k: v for k, v in json.loads(json.dumps(FinetuneConfig(photometric=0.0).__dict__, default=list)).items()
           if k not in ("photometric", "precision")}  # a run made before the setting existed (it had no strong augmentation)
    check_recorded(tmp_path / "config.json", old, FinetuneConfig(photometric=0.0))
    with pytest.raises(DataError, match="photometric 0.0 there, 0.8 now"):
        check_recorded(tmp_path / "config.json", old, FinetuneConfig())
