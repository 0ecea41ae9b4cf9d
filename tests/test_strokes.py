"""Strokes: simulated from full masks, a dataset folder of them, and every stage that reads them."""
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from pscl import FinetuneConfig, evaluate, finetune
from pscl.checkpoints import read_model_file
from pscl.cli import app
from pscl.data.crops import RandomCropDataset
from pscl.data.folders import load_dataset
from pscl.data.labels import check_dataset
from pscl.data.io import IGNORE_INDEX, read_mask
from pscl.data.strokes import stroke_dataset, stroke_mask
from pscl.errors import DataError

from conftest import TINY


def _full_mask() -> np.ndarray:
    """Three classes: two halves, small round particles (class 2) and a thin line (class 3)."""
    mask = np.zeros((240, 320), np.uint8)
    mask[:, 160:] = 1
    yy, xx = np.mgrid[:240, :320]
    for cy, cx in ((40, 40), (60, 220), (180, 90), (200, 260), (120, 140)):
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= 16] = 2  # 49 px particles
    mask[100:104, 20:300] = 3
    return mask


def test_strokes_label_every_class_inside_its_regions_up_to_the_budget():
    full = _full_mask()
    strokes = stroke_mask(full, 0.02, np.random.default_rng(0))
    labelled = strokes != IGNORE_INDEX
    assert np.array_equal(strokes[labelled], full[labelled])  # a stroke never crosses into another class
    assert set(np.unique(strokes[labelled])) == {0, 1, 2, 3}  # every class present is stroked
    assert 0.02 <= labelled.mean() <= 0.03  # the budget, passed by at most the last turn
    again = stroke_mask(full, 0.02, np.random.default_rng(0))
    other = stroke_mask(full, 0.02, np.random.default_rng(1))
    assert np.array_equal(strokes, again) and not np.array_equal(strokes, other)
    particles = strokes == 2  # dots inside the particles: several of them, each well inside
    assert 3 <= len(np.unique(np.round(np.argwhere(particles) / 20), axis=0)) and particles.sum() < 5 * 49
    with pytest.raises(ValueError, match="--budget"):
        stroke_mask(full, 0.0, np.random.default_rng(0))


def test_a_strokes_folder_keeps_val_and_test_and_records_the_protocol(synth_data, tmp_path):
    out = stroke_dataset(synth_data, tmp_path / "strokes", budget=0.05, seed=1)
    ds, source = load_dataset(out), load_dataset(synth_data)
    assert check_dataset(out) == []
    for stem in ds.stems("val") + ds.stems("test"):
        assert np.array_equal(read_mask(ds.mask_path(stem)), read_mask(source.mask_path(stem)))
    meta = json.loads((out / "dataset.json").read_text())["strokes"]
    assert (meta["budget"], meta["seed"]) == (0.05, 1) and set(meta["labelled_share"]) == set(ds.stems("train"))
    for stem in ds.stems("train"):
        mask, full = read_mask(ds.mask_path(stem)), read_mask(source.mask_path(stem))
        labelled = mask != IGNORE_INDEX
        assert 0.04 < labelled.mean() < 0.2 and np.array_equal(mask[labelled], full[labelled])
        assert sum(meta["labelled_share"][stem].values()) == pytest.approx(labelled.mean(), abs=1e-5)
    with pytest.raises(DataError, match="--overwrite"):
        stroke_dataset(synth_data, out)
    assert not list(tmp_path.glob(".strokes.*"))  # no half-written folder left
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir would make it, not the temp folder's 0700


def test_crops_of_a_stroked_image_always_hold_labels_and_dense_images_crop_as_before():
    rng = np.random.default_rng(0)
    image = rng.random((240, 320)).astype(np.float32)
    full = _full_mask()
    strokes = stroke_mask(full, 0.02, np.random.default_rng(0))
    sparse = RandomCropDataset([image], [strokes], 48, 100, seed=2)
    assert all((sparse[i][1] != IGNORE_INDEX).any() for i in range(100))
    uniform = RandomCropDataset([image], [strokes], 48, 100, seed=2, centre_on_labels=False)
    assert sum((uniform[i][1] != IGNORE_INDEX).any().item() for i in range(100)) < 100
    dense = RandomCropDataset([image], [full], 48, 20, seed=2)
    plain = RandomCropDataset([image], [full], 48, 20, seed=2, centre_on_labels=False)
    assert all(torch.equal(dense[i][0], plain[i][0]) and torch.equal(dense[i][1], plain[i][1]) for i in range(20))


def test_fine_tuning_on_strokes_of_several_images_learns_the_classes(synth_data, tmp_path):
    strokes = stroke_dataset(synth_data, tmp_path / "strokes", budget=0.03, seed=0)
    run = tmp_path / "run"
    finetune(strokes, run, FinetuneConfig(shots=3, steps=120, val_every=60, select="last",
                                          **{**TINY, "crop": 96, "batch_size": 6}))
    result = evaluate(run, synth_data, split="test")
    assert result["dice_fg"] > 0.5, result["per_class"]  # chance is about 0.2 here


def test_the_affinity_loss_trains_on_strokes_and_its_weight_is_checked(synth_data, tmp_path):
    strokes = stroke_dataset(synth_data, tmp_path / "strokes", budget=0.03, seed=0)
    weights = {}
    for affinity in (0.0, 1.0):
        run = tmp_path / f"run{affinity}"
        finetune(strokes, run, FinetuneConfig(shots=3, steps=4, val_every=4, select="last", affinity=affinity, **TINY))
        assert json.loads((run / "config.json").read_text())["affinity"] == affinity
        weights[affinity] = read_model_file(run)["state_dict"]
    assert any(not torch.equal(weights[0.0][k], weights[1.0][k]) for k in weights[0.0])  # it changes the training
    with pytest.raises(ValueError, match="affinity"):
        FinetuneConfig(affinity=-1.0)


def test_data_check_counts_labelled_pixels_and_names_a_class_no_stroke_covers(synth_data, tmp_path):
    out = stroke_dataset(synth_data, tmp_path / "strokes", budget=0.05, seed=0)
    ds = load_dataset(out)
    for stem in ds.stems("train"):  # nobody stroked the last class
        mask = read_mask(ds.mask_path(stem))
        mask[mask == ds.num_classes - 1] = IGNORE_INDEX
        from PIL import Image
        Image.fromarray(mask).save(ds.mask_path(stem))
    result = CliRunner().invoke(app, ["data", "check", str(out)])
    assert result.exit_code == 0, result.output
    assert "labelled pixels per class" in result.output and ds.stems("train")[0] in result.output
    assert f"class {ds.classes[-1]!r} is labelled in no train image" in result.output


def test_a_cell_on_a_stroke_is_pure_for_pscl_templates_and_dense_coverage_is_unchanged():
    from pscl.data.crops import pure_cells
    from pscl.data.views import cell_coverage
    dense = torch.zeros(1, 16, 16, dtype=torch.long)
    dense[0, :, 8:] = 1
    sparse = torch.full((1, 16, 16), IGNORE_INDEX, dtype=torch.long)
    sparse[0, 1, :] = 0  # a one-pixel stroke of class 0 across the top cells
    sparse[0, 12, 9:] = 1  # and one of class 1
    cov = cell_coverage(sparse, 2, 4)[0]  # 4 x 4 px cells
    assert torch.allclose(cov[0, 0], torch.ones(4)) and torch.allclose(cov[1, 3, 2:], torch.ones(2))
    assert cov[:, 1:3].sum() == 0  # cells with no labels cover nothing
    expected = torch.zeros(2, 4, 4)
    expected[0, :, :2], expected[1, :, 2:] = 1, 1
    assert torch.equal(cell_coverage(dense, 2, 4)[0], expected)
    assert pure_cells(sparse[0].numpy().astype(np.uint8), 2, 4, 0.75).tolist() == [4, 2]


def test_the_forest_and_the_probe_learn_from_the_stroked_pixels_alone(synth_data, tmp_path):
    """Both sample only labelled pixels (255 never becomes a class) and still find the classes."""
    import pickle

    from pscl.studies.probe import ProbeConfig, linear_probe
    from pscl.train.forest import ForestConfig, evaluate_forest, train_forest
    out = stroke_dataset(synth_data, tmp_path / "strokes", budget=0.05, seed=0)
    ds = load_dataset(out)
    stems = ds.annotated(2, 0)
    labelled = sum(int((read_mask(ds.mask_path(s)) != IGNORE_INDEX).sum()) for s in stems)
    summary = train_forest(out, tmp_path / "forest", ForestConfig(shots=2, trees=20, jobs=1))
    forest = pickle.loads((tmp_path / "forest" / "forest.pkl").read_bytes())["forest"]
    assert summary["annotated"] == stems and 0 < summary["pixels"] <= labelled
    assert set(forest.classes_.tolist()) == set(range(ds.num_classes))
    stroked, full = (evaluate_forest(tmp_path / "forest", out)["dice_fg"],
                     evaluate_forest(tmp_path / "forest", synth_data)["dice_fg"])
    assert stroked == full > 0.7  # test masks are untouched by strokes
    probe = linear_probe(out, None, ProbeConfig(shots=2, steps=20, crop=64, widths=TINY["widths"]), split="test")
    assert probe["annotated"] == stems and 0 <= probe["dice_fg"] <= 1


def test_self_training_learns_the_unstroked_parts_of_the_stroked_micrographs(synth_data, tmp_path):
    """The unlabelled stream holds every train micrograph beside unlabeled/, cropped uniformly, not on strokes."""
    from pscl.train.semi import unlabelled_crops
    out = stroke_dataset(synth_data, tmp_path / "strokes", budget=0.05, seed=0)
    ds = load_dataset(out)
    pool = unlabelled_crops(ds, FinetuneConfig(semi=True, **{**TINY, "crop": 16}))
    assert len(pool.images) == len(ds.unlabeled_paths()) + len(ds.stems("train")) == 8  # 4 and 4
    assert sum(bool((m != IGNORE_INDEX).any()) for m in pool.masks) == 4
    touching = np.mean([bool((pool[i][1] != IGNORE_INDEX).any()) for i in range(200)])
    assert touching < 0.4  # 0.25; crops centred on strokes would touch one in every crop of a train image: 0.5
