import json

import numpy as np
import pytest
import torch

from pscl import FinetuneConfig, evaluate, finetune
from pscl.checkpoints import load_model, read_model_file
from pscl.data import load_dataset
from pscl.profiles import profile_settings

from conftest import TINY


def test_one_shot_finetune_beats_chance(synth_data, tmp_path):
    run = tmp_path / "run"
    summary = finetune(synth_data, run, FinetuneConfig(steps=120, val_every=60, widths=(8, 16, 32, 64), crop=96,
                                                       batch_size=6, progress=False, accelerator="cpu"))
    assert summary["annotated"] == load_dataset(synth_data).shots(1, 0)
    result = evaluate(run, synth_data, split="test")
    # chance: predicting classes at random gives foreground Dice around 0.2 here
    assert result["dice_fg"] > 0.6, result["per_class"]
    assert result["acc"] > 0.8
    saved = json.loads((run / "eval_synthetic_test.json").read_text())
    assert saved["dice_fg"] == pytest.approx(result["dice_fg"])
    assert saved["config"]["annotated"] == summary["annotated"]


def test_run_folder_holds_config_log_and_model(tiny_run):
    assert json.loads((tiny_run / "config.json").read_text())["steps"] == 20
    assert (tiny_run / "logs" / "metrics.csv").exists()
    payload = read_model_file(tiny_run)
    assert payload["classes"] == ["matrix", "lamellar", "precipitate"]
    assert payload["config"]["widths"] == (8, 16, 32, 64) and payload["selected"] == "best.ckpt"


def test_resumed_run_equals_uninterrupted_run(synth_data, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    finetune(synth_data, straight, FinetuneConfig(steps=15, val_every=5, select="last", **TINY))
    finetune(synth_data, resumed, FinetuneConfig(steps=10, val_every=5, select="last", **TINY))  # "killed" at 10
    summary = finetune(synth_data, resumed, FinetuneConfig(steps=15, val_every=5, select="last", **TINY), resume=True)
    assert summary["steps"] == 15 and summary["selected"] == "last"
    a, b = read_model_file(straight)["state_dict"], read_model_file(resumed)["state_dict"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_init_loads_backbone_and_uses_one_learning_rate_unless_split(tiny_run, synth_data, tmp_path):
    from pscl.train.finetune import SegmentationModule
    from pscl.nn import UNet
    model, _ = load_model(tiny_run)
    config = FinetuneConfig(init=str(tiny_run), **TINY)
    net = UNet(3, config.widths)
    from pscl.checkpoints import load_backbone
    load_backbone(net, tiny_run)
    assert all(torch.equal(a, b) for a, b in zip(net.encoder.state_dict().values(), model.encoder.state_dict().values()))
    opt = SegmentationModule(net, config, torch.ones(3), ["a", "b", "c"]).configure_optimizers()
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3]  # the default: lr on the whole U-Net
    split = FinetuneConfig(init=str(tiny_run), lr_contracting_init=1e-4, **TINY)
    opt = SegmentationModule(net, split, torch.ones(3), ["a", "b", "c"]).configure_optimizers()
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-3]  # the paper's rule, which its profile keeps
    assert profile_settings("paper", "finetune")["lr_contracting_init"] == 1e-4
    assert "lr_contracting_init" not in profile_settings("cpu", "finetune")
    with pytest.raises(ValueError, match=r"lr_contracting_init must lie in \(0, inf\), got 0.0"):
        FinetuneConfig(lr_contracting_init=0.0)
    scratch = SegmentationModule(net, FinetuneConfig(**TINY), torch.ones(3), ["a", "b", "c"])
    assert [g["lr"] for g in scratch.configure_optimizers().param_groups] == [1e-3]


def test_nan_loss_raises_clear_error(synth_data, tmp_path):
    with pytest.raises(FloatingPointError, match="non-finite fine-tuning loss"):
        finetune(synth_data, tmp_path / "nan", FinetuneConfig(steps=20, val_every=20, lr=1e30, **TINY))


@pytest.mark.parametrize("option, value, message", [
    ("lr", float("nan"), "--lr must be a positive number"), ("lr", 0.0, "--lr must be a positive number"),
    ("lr", -1.0, "--lr must be a positive number"), ("accelerator", "mps", "--accelerator must be one of"),
    ("accelerator", "foo", "--accelerator must be one of"), ("accelerator", "tpu", "--accelerator must be one of"),
    ("devices", 0, "--devices must be"), ("devices", "two", "--devices must be")])
def test_bad_runtime_options_are_refused_before_anything_is_written(synth_data, tmp_path, option, value, message):
    from pscl.methods import PretrainConfig
    with pytest.raises(ValueError, match=message):
        finetune(synth_data, tmp_path / "run", FinetuneConfig(steps=5, val_every=5, **{**TINY, option: value}))
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**{option: value})
    assert not (tmp_path / "run").exists()


def test_photometric_crops_change_the_pixels_not_the_labels_and_are_reproducible():
    from pscl.data.crops import RandomCropDataset
    mask = np.zeros((100, 100), np.uint8)
    mask[:, 50:] = 1
    image = np.random.default_rng(0).random((100, 100)).astype(np.float32)
    plain, strong, again = (RandomCropDataset([image], [mask], 48, 20, seed=1, photometric=p) for p in (0.0, 1.0, 1.0))
    for i in range(20):
        assert torch.equal(plain[i][1], strong[i][1])  # same crop, same geometry: the labels are untouched
        assert torch.equal(strong[i][0], again[i][0])  # drawn from the crop's own seed
    changed = [(plain[i][0] - strong[i][0]).abs().mean().item() for i in range(20)]
    assert min(changed) > 1e-3, changed  # with p = 1 every effect applies to every crop
    with pytest.raises(ValueError, match="photometric"):
        FinetuneConfig(photometric=1.5)


def test_poly_schedule_decays_every_learning_rate_to_zero():
    from pscl.train.finetune import SegmentationModule
    from pscl.nn import UNet
    config = FinetuneConfig(steps=10, lr_schedule="poly", init="x", lr_contracting_init=1e-4, **TINY)
    setup = SegmentationModule(UNet(3, TINY["widths"]), config, torch.ones(3), ["a", "b", "c"]).configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    seen = []
    for _ in range(10):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    assert seen[0] == [1e-4, 1e-3]
    assert seen[5] == pytest.approx([1e-4 * 0.5 ** 0.9, 1e-3 * 0.5 ** 0.9])
    assert [g["lr"] for g in optimizer.param_groups] == [0.0, 0.0]
    with pytest.raises(ValueError, match="lr_schedule must be one of constant, poly"):
        FinetuneConfig(lr_schedule="cosine")


def test_seeds_keep_the_member_best_on_val_and_members_are_plain_runs(synth_data, tmp_path):
    config = dict(steps=10, val_every=5, **TINY)
    summary = finetune(synth_data, tmp_path / "two", FinetuneConfig(seeds=2, seed=3, **config))
    plain = {s: finetune(synth_data, tmp_path / f"plain{s}", FinetuneConfig(seed=s, **config)) for s in (3, 4)}
    payload = read_model_file(tmp_path / "two")
    vals = {int(s): v for s, v in payload["seed_val_dice_fg"].items()}
    assert vals == pytest.approx({s: plain[s]["val_dice_fg"] for s in (3, 4)})
    best = max(vals, key=vals.get)
    assert summary["val_dice_fg"] == pytest.approx(vals[best]) and summary["selected"].startswith(f"seed{best}/")
    kept, member = payload["state_dict"], read_model_file(tmp_path / f"plain{best}")["state_dict"]
    assert all(torch.allclose(kept[k].float(), member[k].float(), atol=1e-6) for k in kept)
    assert payload["config"]["seeds"] == 2 and payload["config"]["annotated"] == summary["annotated"]
    again = finetune(synth_data, tmp_path / "two", FinetuneConfig(seeds=2, seed=3, **config), resume=True)
    assert again == summary  # finished: nothing redone
    member = tmp_path / "two" / "seed3" / "model.pt"
    before = member.stat().st_mtime_ns
    assert finetune(synth_data, tmp_path / "two", FinetuneConfig(seeds=2, seed=3, **config), overwrite=True) == summary
    assert member.stat().st_mtime_ns != before  # --overwrite redoes the members too
    with pytest.raises(ValueError, match="select='val'"):
        finetune(synth_data, tmp_path / "last", FinetuneConfig(seeds=2, select="last", **config))
    assert not (tmp_path / "last").exists()


@pytest.mark.parametrize("option, message", [
    (dict(dice_weight=1.5), r"dice_weight must lie in \[0, 1\], got 1.5"),
    (dict(semi_threshold=0.0), r"semi_threshold must lie in \(0, 1\], got 0.0"),
    (dict(semi_threshold=0.7, semi_floor=0.8), r"semi_floor must lie in \[0, 0.7\], got 0.8"),
    (dict(steps=10, semi_start=10), r"semi_start must lie in \[0, steps\) or be -1"),
])
def test_each_bad_option_is_named_with_its_bounds(option, message):
    with pytest.raises(ValueError, match=message):
        FinetuneConfig(**option)
