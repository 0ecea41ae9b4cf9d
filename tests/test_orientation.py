"""Flips and quarter turns only where the micrograph's structure allows them, decided from the annotation."""
import numpy as np
import pytest

from pscl.data.crops import RandomCropDataset
from pscl.data.orientation import ALL_TRANSFORMS, apply, resolve_orientation, stratification, transforms, undo
from pscl.data.synth import synth_micrograph
from pscl.data.synth_cross import synth_cross_section
from pscl.inference.tiling import with_tta


def _cross_masks(n=3, size=128):
    return [synth_cross_section(np.random.default_rng(s), size)[1] for s in range(n)]


def test_layers_are_found_along_their_axis_and_plan_views_stay_free():
    masks = _cross_masks()
    r_y, r_x = stratification(masks, 4)
    assert r_y > 0.8 and r_x < 0.05
    assert resolve_orientation("auto", masks, 4) == "fixed-y"
    assert resolve_orientation("auto", [np.rot90(m).copy() for m in masks], 4) == "fixed-x"
    plan = [synth_micrograph(np.random.default_rng(s), 128)[1] for s in range(3)]
    assert resolve_orientation("auto", plan, 3) == "free"
    assert resolve_orientation("free", masks, 4) == "free" and resolve_orientation("fixed", plan, 3) in ("fixed-y", "fixed-x")
    sparse = [np.where(np.random.default_rng(0).random(m.shape) < 0.02, m, 255).astype(np.uint8) for m in masks]
    assert resolve_orientation("auto", sparse, 4) == "fixed-y"  # strokes or dots are enough
    with pytest.raises(ValueError, match="--orientation must be one of auto, free, fixed"):
        resolve_orientation("upright", masks, 4)


def test_apply_and_undo_are_inverse_for_every_transform():
    x = np.arange(2 * 5 * 5).reshape(2, 5, 5)
    for t in ALL_TRANSFORMS:
        assert np.array_equal(undo(apply(x, t, axes=(1, 2)), t, axes=(1, 2)), x)
    assert len({apply(x[0], t).tobytes() for t in ALL_TRANSFORMS}) == 8


def test_crops_of_a_cross_section_keep_the_layers_in_order():
    image = np.linspace(0, 1, 96 * 96, dtype=np.float32).reshape(96, 96)
    mask = np.repeat(np.repeat(np.arange(3, dtype=np.uint8), 32)[:, None], 96, 1)  # classes 0, 1, 2 top to bottom
    fixed = RandomCropDataset([image], [mask], 64, 64, geometry="fixed-y", photometric=0.0)
    for i in range(64):
        crop = fixed[i][1].numpy()
        rows = [np.unique(r) for r in crop]
        assert all(len(r) == 1 for r in rows)  # every row one class: never turned on its side
        assert all(a[0] <= b[0] for a, b in zip(rows, rows[1:]))  # and never upside down
    free = RandomCropDataset([image], [mask], 64, 64, photometric=0.0)
    turned = sum(len(np.unique(free[i][1].numpy()[0])) > 1 for i in range(64))
    assert turned > 10  # all 8 transforms: a quarter of... half of the crops lie on their side
    unchanged = RandomCropDataset([image], [mask], 64, 64, geometry="free", photometric=0.0)
    assert all(np.array_equal(free[i][0].numpy(), unchanged[i][0].numpy()) for i in range(8))


def test_tta_averages_over_the_transforms_the_geometry_allows():
    calls = []

    def model(tiles):
        calls.append(tiles.copy())
        return np.stack([tiles, 1 - tiles], 1)  # (N, 2, H, W): equivariant, so TTA returns it unchanged
    tiles = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    out = with_tta(model, transforms("fixed-y"))(tiles)
    assert len(calls) == 2 and np.allclose(out[:, 0], tiles)
    assert np.array_equal(calls[1], tiles[:, :, ::-1])  # the left-right mirror only
    calls.clear()
    with_tta(model)(tiles)
    assert len(calls) == 8


def test_a_cross_section_run_records_its_geometry_and_predicts_with_it(tmp_path):
    from pscl import FinetuneConfig, evaluate, finetune, synthesize_dataset
    from pscl.checkpoints import read_model_file

    from conftest import TINY
    data = synthesize_dataset(tmp_path / "xs", n=6, seed=0, size=96, n_unlabeled=0, kind="cross-section")
    finetune(data, tmp_path / "run", FinetuneConfig(steps=4, val_every=2, **TINY))
    assert read_model_file(tmp_path / "run")["config"]["geometry"] == "fixed-y"
    result = evaluate(tmp_path / "run", data, split="test", tta=True)
    assert 0 <= result["dice_fg"] <= 1
