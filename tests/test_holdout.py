"""Without val masks: blocks of the annotation held out of training, on which self-training checks itself."""
import json
import shutil

import numpy as np
import pytest

from pscl import FinetuneConfig, finetune
from pscl.checkpoints import read_model_file
from pscl.data.io import IGNORE_INDEX
from pscl.train.holdout import HOLDOUT_SHARE, holdout_split

from conftest import TINY


def _mask(seed: int, shape=(300, 420)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    mask[:, shape[1] // 2:] = 1
    for y, x in rng.integers(0, min(shape) - 12, size=(12, 2)):  # a rare class in small spots
        mask[y:y + 10, x:x + 10] = 2
    mask[:20, :20] = IGNORE_INDEX
    return mask


def test_held_out_blocks_split_the_labels_and_keep_every_class_in_training():
    masks = [_mask(0), _mask(1)]
    train, held = holdout_split(masks, 64, 3, seed=0)
    for mask, t, h in zip(masks, train, held):
        labelled = mask != IGNORE_INDEX
        assert not ((t != IGNORE_INDEX) & (h != IGNORE_INDEX)).any()  # disjoint
        assert np.array_equal((t != IGNORE_INDEX) | (h != IGNORE_INDEX), labelled)  # together: the annotation
        assert np.array_equal(np.where(t != IGNORE_INDEX, t, h)[labelled], mask[labelled])
    for c in range(3):
        kept = sum(int((t == c).sum()) for t in train)
        out = sum(int((h == c).sum()) for h in held)
        assert kept > 0 and abs(out / (kept + out) - HOLDOUT_SHARE) < 0.1, (c, kept, out)
    again = holdout_split(masks, 64, 3, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(train, again[0]))
    other = holdout_split(masks, 64, 3, seed=1)
    assert not all(np.array_equal(a, b) for a, b in zip(train, other[0]))


def test_an_annotation_in_one_block_cannot_be_split():
    mask = np.full((100, 100), IGNORE_INDEX, np.uint8)
    mask[10:20, 10:20] = 0
    mask[30:40, 30:40] = 1
    with pytest.raises(ValueError, match="at least two blocks"):
        holdout_split([mask], 64, 2)


def test_a_guarded_run_without_val_masks_scores_the_held_out_annotation(synth_data, tmp_path):
    data = tmp_path / "noval"
    shutil.copytree(synth_data, data)
    meta = json.loads((data / "dataset.json").read_text())
    meta["splits"]["val"] = []
    (data / "dataset.json").write_text(json.dumps(meta))
    run = tmp_path / "run"
    summary = finetune(data, run, FinetuneConfig(steps=20, val_every=10, select="last", semi=True, crop=64,
                                                 **{k: v for k, v in TINY.items() if k != "crop"}))
    payload = read_model_file(run)
    assert payload["selected"] in ("last", "last (self-training rolled back)") and payload.get("val_dice_fg") is None
    assert 0 <= payload["semi_guard"]["end"] <= 1 and summary["semi_guard"] == payload["semi_guard"]
    log = (run / "logs" / "metrics.csv").read_text().splitlines()[0]
    assert "holdout_dice_fg" in log and "val_dice_fg" not in log
    with pytest.raises(ValueError, match="select must be one of val, last"):
        FinetuneConfig(select="holdout")
    with pytest.raises(Exception, match="split 'val' is missing or empty"):
        finetune(data, tmp_path / "val", FinetuneConfig(steps=20, val_every=10, select="val", **TINY))


def test_the_cli_keeps_the_last_model_where_the_folder_has_no_val_split(synth_data, tmp_path):
    from typer.testing import CliRunner

    from pscl.cli import app
    data = tmp_path / "noval"
    shutil.copytree(synth_data, data)
    meta = json.loads((data / "dataset.json").read_text())
    del meta["splits"]["val"]
    (data / "dataset.json").write_text(json.dumps(meta))
    r = CliRunner().invoke(app, ["finetune", str(data), "--out", str(tmp_path / "run"), "--profile", "smoke",
                                 "--no-progress", "--accelerator", "cpu"])
    assert r.exit_code == 0, r.output
    assert "no val split" in r.output and read_model_file(tmp_path / "run")["config"]["select"] == "last"
