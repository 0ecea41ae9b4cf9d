"""Bad input at the command line: one clear line naming the file or option, exit 1, nothing written;
and the help and messages a new user reads."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pscl.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _refused(r, *needles) -> None:
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "error:" in r.output, r.output
    for needle in needles:
        assert needle in r.output, r.output


def _unwritable_places(tmp_path: Path) -> dict[str, Path]:
    """Outputs that cannot be written: under a file, through a symlink loop, in a folder that refuses files."""
    (tmp_path / "afile").write_text("x")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    places = {"under a file": tmp_path / "afile" / "out", "symlink loop": loop / "out"}
    if not os.access("/sys", os.W_OK) or not _writable("/sys"):
        places["refusing folder"] = Path("/sys/pscl-test-out")
    return places


def _writable(folder: str) -> bool:
    try:
        Path(folder, ".pscl-probe").write_text("")
    except OSError:
        return False
    Path(folder, ".pscl-probe").unlink()
    return True


SMOKE = ("--profile", "smoke", "--no-progress", "--accelerator", "cpu")


def test_outputs_that_cannot_be_written_are_refused_before_any_work(synth_data, tiny_run, tmp_path):
    pred = tmp_path / "pred"
    assert invoke("predict", tiny_run, synth_data / "images", "--out", pred, "--tile", 64, "--overlap", 16).exit_code == 0
    for what, out in _unwritable_places(tmp_path).items():
        commands = {
            "finetune": ("finetune", synth_data, "--out", out, *SMOKE),
            "pretrain": ("pretrain", synth_data, "--out", out, *SMOKE),
            "predict": ("predict", tiny_run, synth_data / "images", "--out", out),
            "report": ("report", pred, "--out", out),
            "evaluate": ("evaluate", tiny_run, synth_data, "--out", out / "e.json"),
            "export": ("export", tiny_run, "--onnx", out / "m.onnx"),
            "data synth": ("data", "synth", "--out", out, "--n", 3),
            "bench run": ("bench", "run", synth_data, "--out", out, "--methods", "forest", "--profile", "smoke"),
            "probe": ("probe", synth_data, "--steps", 2, "--out", out / "p.json"),
            "suggest": ("suggest", synth_data, "--out", out),
        }
        for name, args in commands.items():
            r = invoke(*args)
            _refused(r, "cannot be written" if name not in ("data synth",) else "error:")
            assert str(out).split("/")[-2] in r.output, (what, name, r.output)


@pytest.mark.parametrize("mask_value, image_value, message", [
    (255, None, "no pixel is labelled"), (None, 0.5, "the image is constant")])
def test_annotations_that_teach_nothing_are_refused(synth_data, tmp_path, mask_value, image_value, message):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    from pscl.data import load_dataset
    stem = load_dataset(data).shots(1, 0)[0]
    if mask_value is not None:
        shape = np.array(Image.open(data / "masks" / f"{stem}.png")).shape
        Image.fromarray(np.full(shape, mask_value, np.uint8)).save(data / "masks" / f"{stem}.png")
    else:
        shape = np.array(Image.open(data / "images" / f"{stem}.png")).shape
        Image.fromarray(np.full(shape, 128, np.uint8)).save(data / "images" / f"{stem}.png")
    r = invoke("data", "check", data)
    assert r.exit_code == 1 and message in r.output and stem in r.output
    _refused(invoke("finetune", data, "--out", tmp_path / "run", *SMOKE), message, stem)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, message", [
    (lambda meta: meta.update(classes=["a", "b", "a"]), "class names must differ; listed more than once: a"),
    (lambda meta: meta["splits"]["train"].append(7), "stems are file names"),
    (lambda meta: meta.update(classes=["a", 2, "c"]), "every class name must be a non-empty string")])
def test_a_bad_dataset_json_is_refused_by_check_and_training(synth_data, tmp_path, change, message):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    meta = json.loads((data / "dataset.json").read_text())
    change(meta)
    (data / "dataset.json").write_text(json.dumps(meta))
    r = invoke("data", "check", data)
    assert r.exit_code == 1 and message in r.output
    _refused(invoke("finetune", data, "--out", tmp_path / "run", *SMOKE), message)


def test_steps_below_val_every_is_refused_with_what_to_do(synth_data, tmp_path):
    _refused(invoke("finetune", synth_data, "--out", tmp_path / "run", *SMOKE, "--steps", 10),
             "--steps 10 is below --val-every 20", "--select last")
    assert not (tmp_path / "run").exists()
    assert invoke("finetune", synth_data, "--out", tmp_path / "run", *SMOKE, "--steps", 10, "--select", "last").exit_code == 0


def test_predict_refuses_two_images_with_one_stem_and_names_what_it_skips(tiny_run, synth_data, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    image = np.array(Image.open(next((synth_data / "images").iterdir())))
    Image.fromarray(image).save(src / "a.png")
    Image.fromarray(image).save(src / "a.tif")
    _refused(invoke("predict", tiny_run, src, "--out", tmp_path / "o1"), "a.png", "a.tif", "share the stem 'a'")
    assert not (tmp_path / "o1").exists()
    (src / "a.tif").unlink()
    (src / "sub").mkdir()
    (src / "loop.png").symlink_to(src / "loop.png")
    r = invoke("predict", tiny_run, src, "--out", tmp_path / "o2", "--tile", 64, "--overlap", 16)
    assert r.exit_code == 0, r.output
    assert "note:" in r.output and "loop.png (a symlink that loops" in r.output and "sub/ (a subfolder" in r.output


def test_report_refuses_an_image_in_two_groups(tiny_run, synth_data, tmp_path):
    pred = tmp_path / "pred"
    invoke("predict", tiny_run, synth_data / "images", "--out", pred, "--tile", 64, "--overlap", 16)
    stem = sorted(p.name[:-len("_mask.png")] for p in pred.glob("*_mask.png"))[0]
    groups = tmp_path / "groups.csv"
    groups.write_text(f"image,sample\n{stem},A\n{stem},B\n")
    _refused(invoke("report", pred, "--groups", groups), f"lists image '{stem}' again (first in sample 'A')")
    assert not (pred / "report").exists()


def test_report_with_truth_prints_the_dice(tiny_run, synth_data, tmp_path):
    pred = tmp_path / "pred"
    invoke("predict", tiny_run, synth_data / "images", "--out", pred, "--tile", 64, "--overlap", 16)
    r = invoke("report", pred, "--truth", synth_data)
    assert r.exit_code == 0, r.output
    assert "Dice (fg) against --truth" in r.output and "per class:" in r.output


def test_a_truncated_model_file_is_one_short_line(tiny_run, synth_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes((tiny_run / "model.pt").read_bytes()[:5000])
    r = invoke("evaluate", run, synth_data)
    _refused(r, "model.pt: unreadable model file, truncated or not a pscl model")
    assert len(r.output.strip().splitlines()) <= 2 and len(r.output) < 400


def test_a_palette_mask_is_read_as_class_indices(tmp_path):
    from pscl.data.io import read_mask
    indices = np.array([[0, 1, 2], [2, 1, 255]], np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0, 0, 255] * 253)
    image.save(tmp_path / "m.png")
    assert np.array_equal(read_mask(tmp_path / "m.png"), indices)


def test_help_shows_profile_values_choices_and_plain_usage():
    r = invoke("finetune", "--help")
    text = " ".join(r.output.replace("│", " ").split())
    assert "finetune [OPTIONS] DATA Train" in text and "{" not in r.output.split("Usage:")[1].splitlines()[0]
    assert "smoke 40, quick 400, cpu 1500, paper 4000" in text  # --steps from each profile
    for words in ("how many annotated train images", "random seed", "auto (a CUDA GPU if there is one",
                  "how many devices"):
        assert words in text, words
    assert "<bool>" not in invoke("--help").output
    r = invoke("predict", "--help")
    assert "predict [OPTIONS] RUN [SOURCE]" in " ".join(r.output.split())
    assert "folder for the masks" in " ".join(r.output.replace("│", " ").split())


def test_data_synth_names_the_overwrite_option(tmp_path):
    out = tmp_path / "syn"
    out.mkdir()
    (out / "x").write_text("")
    _refused(invoke("data", "synth", "--out", out, "--n", 3), "--overwrite")
