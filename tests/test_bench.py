"""`pscl bench` on the smoke profile: report structure, numbers equal to the evaluations, resume."""
import json

import numpy as np
import pytest

from pscl import FinetuneConfig, finetune
from pscl.bench import run_bench
from pscl.errors import DataError
from pscl.profiles import profile_settings


@pytest.fixture(scope="module")
def bench_out(synth_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    logs = []
    run_bench(synth_data, out, ["scratch", "forest", "simclr"], rounds=2, profile="smoke", log=logs.append,
              command="test")
    return out, logs


def test_results_match_the_evaluations_and_the_report(bench_out, synth_data):
    out, _ = bench_out
    results = json.loads((out / "results.json").read_text())
    assert set(results["methods"]) == {"scratch", "forest", "simclr"}
    assert results["profile_settings"]["finetune"]["steps"] == profile_settings("smoke", "finetune")["steps"]
    assert {"commit", "machine", "date", "command"} <= set(results)
    for method, table in results["methods"].items():
        rounds = table["rounds"]
        assert [r["round"] for r in rounds] == [0, 1]
        for r in rounds:
            saved = json.loads((out / "runs" / method / f"round{r['round']}" / "eval_synthetic_test.json").read_text())
            assert r["dice_fg"] == pytest.approx(saved["dice_fg"]) and r["acc"] == pytest.approx(saved["acc"])
        if method != "forest":  # the U-Nets are selected on val; the result says with which score
            from pscl.checkpoints import read_model_file
            assert [r["val_dice_fg"] for r in rounds] == [
                read_model_file(out / "runs" / method / f"round{r['round']}")["val_dice_fg"] for r in rounds]
            assert all(0 <= r["val_dice_fg"] <= 1 for r in rounds)
        assert table["dice_fg_mean"] == pytest.approx(np.mean([r["dice_fg"] for r in rounds]))
        assert table["dice_fg_std"] == pytest.approx(np.std([r["dice_fg"] for r in rounds], ddof=1))
    # every method fine-tunes on the same annotated image per round
    assert len({tuple(results["methods"][m]["rounds"][0]["annotated"]) for m in results["methods"]}) == 1
    assert results["methods"]["simclr"]["rounds"][0]["config"]["init"].endswith("pretrain/simclr")
    report = (out / "report.md").read_text()
    assert "| method | rounds | Dice (fg) | ACC | mIoU | matrix | lamellar | precipitate |" in report
    mean = results["methods"]["forest"]["dice_fg_mean"]
    assert f"| forest | 2 | {mean:.4f}" in report
    from PIL import Image
    with Image.open(out / "figure.png") as fig:  # box plots + one test image per method
        assert fig.width > 3 * fig.height / 2 and "](figure.png)" in report


def test_methods_are_compared_with_scratch_round_by_round(bench_out):
    out, _ = bench_out
    results = json.loads((out / "results.json").read_text())["methods"]
    scratch = [r["dice_fg"] for r in results["scratch"]["rounds"]]
    for method in ("simclr", "forest"):
        paired = results[method]["vs_scratch"]
        expected = [r["dice_fg"] - s for r, s in zip(results[method]["rounds"], scratch)]
        assert paired["differences"] == pytest.approx(expected)
        assert paired["wins"] == sum(d > 0 for d in expected) and paired["rounds"] == 2
        assert f"| {method} | 2 | {np.mean(expected):+.4f} ± {np.std(expected, ddof=1):.4f} |" in (out / "report.md").read_text()
    assert "vs_scratch" not in results["scratch"]
    # on val too, where settings are chosen; the forest has no val score and no val row
    val = [r["val_dice_fg"] - s["val_dice_fg"] for r, s in zip(results["simclr"]["rounds"], results["scratch"]["rounds"])]
    assert results["simclr"]["val_vs_scratch"]["differences"] == pytest.approx(val)
    assert results["simclr"]["val_dice_fg_mean"] == pytest.approx(np.mean([r["val_dice_fg"] for r in results["simclr"]["rounds"]]))
    assert "val_dice_fg_mean" not in results["forest"] and "val_vs_scratch" not in results["forest"]
    report = (out / "report.md").read_text()
    assert f"| simclr | 2 | {results['simclr']['val_dice_fg_mean']:.4f} | {np.mean(val):+.4f}" in report


def test_report_only_rebuilds_the_report_from_the_results(bench_out, synth_data):
    from pscl.bench import rebuild_report

    out, _ = bench_out
    before = json.loads((out / "results.json").read_text())
    (out / "report.md").unlink()
    (out / "figure.png").unlink()
    summary = rebuild_report(synth_data, out)
    assert summary["command"] == before["command"] and summary["methods"].keys() == before["methods"].keys()
    assert summary["methods"]["simclr"]["dice_fg_mean"] == before["methods"]["simclr"]["dice_fg_mean"]
    assert (out / "report.md").exists() and (out / "figure.png").exists()
    # the budget stays the one recorded, even where the profile has changed since
    recorded = {**before, "profile_settings": {"pretrain": {"steps": 7}, "finetune": {"steps": 9}}}
    (out / "results.json").write_text(json.dumps(recorded))
    rebuilt = rebuild_report(synth_data, out)
    assert rebuilt["profile_settings"] == recorded["profile_settings"]
    assert "- budget: {'pretrain': {'steps': 7}, 'finetune': {'steps': 9}}" in (out / "report.md").read_text()
    (out / "results.json").write_text(json.dumps(before))
    with pytest.raises(DataError, match="no results.json"):
        rebuild_report(synth_data, out / "nothing-here")


def test_paired_difference_by_hand():
    from pscl.bench import paired_difference

    method = [{"round": 0, "dice_fg": 0.5}, {"round": 1, "dice_fg": 0.6}, {"round": 3, "dice_fg": 0.9}]
    scratch = [{"round": 0, "dice_fg": 0.4}, {"round": 1, "dice_fg": 0.3}, {"round": 2, "dice_fg": 0.1}]
    d = paired_difference(method, scratch)  # rounds 0 and 1 only: differences 0.1 and 0.3
    assert d["rounds"] == 2 and d["wins"] == 2
    assert d["mean"] == pytest.approx(0.2) and d["std"] == pytest.approx(0.1 * np.sqrt(2))
    assert d["ci95"] == pytest.approx([0.2 - 12.7062 * 0.1, 0.2 + 12.7062 * 0.1], abs=1e-4)  # t(0.975, 1 dof)
    assert paired_difference(method[2:], scratch) is None


def test_rerun_skips_what_is_done_and_redoes_a_missing_round(bench_out, synth_data):
    out, _ = bench_out
    (out / "results" / "scratch" / "round1.json").unlink()
    logs = []
    run_bench(synth_data, out, ["scratch", "forest", "simclr"], rounds=2, profile="smoke", log=logs.append)
    assert sum("[skip]" in line for line in logs) == 5
    assert any("[run ] scratch round 1" in line for line in logs)
    assert (out / "results" / "scratch" / "round1.json").exists()


def test_cached_results_and_runs_made_with_other_settings_are_refused(bench_out, synth_data, tmp_path):
    out, _ = bench_out
    path = out / "results" / "scratch" / "round0.json"
    saved = path.read_text()
    result = json.loads(saved)
    path.write_text(json.dumps({**result, "config": {**result["config"], "jitter": 0.3}}))
    try:
        with pytest.raises(DataError, match=r"scratch/round0.json: made with other settings.*jitter 0.3 there, 0.1 now"):
            run_bench(synth_data, out, ["scratch"], rounds=1, profile="smoke", log=lambda *_: None)
    finally:
        path.write_text(saved)
    # a half-made pretraining of another budget is not resumed under this one
    pretraining = tmp_path / "pretrain" / "simclr"
    pretraining.mkdir(parents=True)
    (pretraining / "config.json").write_text(json.dumps({"method": "simclr", "steps": 7, "progress": True}))
    with pytest.raises(DataError, match=r"simclr/config.json: .*steps 7 there, 20 now"):
        run_bench(synth_data, tmp_path, ["simclr"], rounds=1, profile="smoke", log=lambda *_: None)
    assert not (tmp_path / "runs").exists()


def test_a_killed_finetune_resumes_from_its_checkpoint(synth_data, tmp_path):
    # "kill" a scratch run at step 20 of 40: its checkpoint is there, its result is not
    settings = profile_settings("smoke", "finetune")
    run = tmp_path / "runs" / "scratch" / "round0"
    finetune(synth_data, run, FinetuneConfig(**{**settings, "steps": 20}, progress=False))
    # what a run of the profile's steps leaves when killed at step 20: its config and that checkpoint
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "steps": settings["steps"]}))
    (run / "model.pt").unlink()  # a killed run has no model file yet
    run_bench(synth_data, tmp_path, ["scratch"], rounds=1, profile="smoke", log=lambda *_: None)
    result = json.loads((tmp_path / "results" / "scratch" / "round0.json").read_text())
    assert result["config"]["steps"] == settings["steps"]
    assert (tmp_path / "runs" / "scratch" / "round0" / "logs-resumed-1" / "metrics.csv").exists()


def test_pick_suggest_fine_tunes_every_method_on_the_suggested_image(synth_data, tmp_path):
    out = tmp_path / "bench"
    summary = run_bench(synth_data, out, ["scratch", "pscl-simclr", "forest"], rounds=1, profile="smoke",
                        log=lambda *_: None, pick="suggest")
    chosen = json.loads((out / "suggest" / "suggestions.json").read_text())["chosen"]
    assert len(chosen) == 1
    for method in ("scratch", "pscl-simclr", "forest"):
        row = summary["methods"][method]["suggested"]
        assert row["annotated"] == chosen and row["round"] == "suggest"
    tag = "suggest-" + "+".join(chosen)
    guided = json.loads((out / "pretrain" / "pscl-simclr" / tag / "config.json").read_text())
    assert guided["annotated"] == chosen  # PSCL pretraining is guided by the suggested image too
    assert "Fine-tuned on the image(s) `pscl suggest` picks" in (out / "report.md").read_text()

    # a pick made with other suggest settings is stale: the pick is redone, so are the results
    # of another image (never resumed from that image's runs)
    cached = out / "suggest" / "suggestions.json"
    saved = json.loads(cached.read_text())
    cached.write_text(json.dumps({**saved, "chosen": ["stale"], "config": {**saved["config"], "examples": 99}}))
    result = out / "results" / "forest" / "suggest.json"
    result.write_text(json.dumps({**json.loads(result.read_text()), "annotated": ["stale"], "dice_fg": -1.0}))
    again = run_bench(synth_data, out, ["forest"], rounds=1, profile="smoke", log=lambda *_: None, pick="suggest")
    assert json.loads(cached.read_text())["chosen"] == chosen
    assert again["methods"]["forest"]["suggested"]["annotated"] == chosen
    assert again["methods"]["forest"]["suggested"]["dice_fg"] == summary["methods"]["forest"]["suggested"]["dice_fg"]


def test_ablation_variant_runs_as_its_own_method(synth_data, tmp_path):
    summary = run_bench(synth_data, tmp_path, ["pscl-simclr:a=0:ft.lr_contracting_init=0.001"], rounds=1,
                        profile="smoke", log=lambda *_: None)
    assert list(summary["methods"]) == ["pscl-simclr:a=0:ft.lr_contracting_init=0.001"]
    row = summary["methods"]["pscl-simclr:a=0:ft.lr_contracting_init=0.001"]["rounds"][0]
    assert row["config"]["lr_contracting_init"] == 0.001
    config = json.loads((tmp_path / "pretrain" / "pscl-simclr__a=0" / "round0" / "config.json").read_text())
    assert config["method"] == "pscl-simclr" and config["options"]["a"] == 0


def test_figure_shows_the_round_most_methods_have_models_of(tmp_path):
    from pscl.bench.figure import _shown_round

    assert _shown_round(tmp_path, ["scratch", "forest"], 3) == 0  # nothing on disk: round 0
    for method, r, name in [("scratch", 0, "model.pt"), ("scratch", 2, "model.pt"), ("forest", 2, "forest.pkl"),
                            ("forest", 1, "model.pt")]:  # a forest run is its forest.pkl
        (tmp_path / "runs" / method / f"round{r}").mkdir(parents=True)
        (tmp_path / "runs" / method / f"round{r}" / name).write_bytes(b"")
    assert _shown_round(tmp_path, ["scratch", "forest"], 3) == 2


def test_the_report_names_a_method_by_the_spec_its_results_record(bench_out, synth_data, tmp_path):
    """Folders are specs made portable; the report is built from the spec each result records."""
    import shutil

    from pscl.bench import rebuild_report

    out, _ = bench_out
    copy = tmp_path / "copy"
    shutil.copytree(out / "results", copy / "results")
    shutil.copy(out / "results.json", copy / "results.json")
    moved = copy / "results" / "simclr__ft.jitter=0.3"  # as a variant's folder is named
    (copy / "results" / "simclr").rename(moved)
    for f in moved.glob("round*.json"):
        f.write_text(json.dumps({**json.loads(f.read_text()), "method": "simclr:ft.jitter=0.3"}))
    rebuilt = rebuild_report(synth_data, copy)
    assert "simclr:ft.jitter=0.3" in rebuilt["methods"] and "simclr__ft.jitter=0.3" not in rebuilt["methods"]
    assert "| simclr:ft.jitter=0.3 | 2 |" in (copy / "report.md").read_text()


def test_bench_commands_run_rebuild_and_refuse_bad_methods(synth_data, tmp_path):
    from typer.testing import CliRunner

    from pscl.cli import app

    out = tmp_path / "cli"
    run = CliRunner().invoke(app, ["bench", "run", str(synth_data), "--out", str(out), "--methods", "forest",
                                   "--rounds", "1", "--profile", "smoke"])
    assert run.exit_code == 0, run.output
    report = (out / "report.md").read_text()
    assert "| forest | 1 |" in report
    (out / "report.md").unlink()
    again = CliRunner().invoke(app, ["bench", "run", str(synth_data), "--out", str(out), "--report-only"])
    tables = lambda text: [line for line in text.splitlines()  # noqa: E731  (what rebuilding must not change)
                           if not line.startswith(("- report written", "- date", "- machine"))]
    assert again.exit_code == 0 and tables((out / "report.md").read_text()) == tables(report)
    bad = CliRunner().invoke(app, ["bench", "run", str(synth_data), "--out", str(tmp_path / "x"), "--methods", "nope"])
    assert bad.exit_code == 1 and "unknown method 'nope'" in bad.output and not (tmp_path / "x").exists()
    speed = CliRunner().invoke(app, ["bench", "speed", "--out", str(tmp_path / "s"), "--methods", "scratch"])
    assert speed.exit_code == 1 and "unknown pretraining method" in speed.output and not (tmp_path / "s").exists()


def test_a_tta_variant_scores_the_plain_model_with_tta(synth_data, tmp_path):
    summary = run_bench(synth_data, tmp_path, ["scratch", "scratch:eval.tta=true"], rounds=1, profile="smoke",
                        log=lambda *_: None)
    plain, tta = (summary["methods"][m]["rounds"][0] for m in ("scratch", "scratch:eval.tta=true"))
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["scratch"]  # one model, trained once
    assert tta["evaluation"] == {"tta": True} and plain["evaluation"] == {}
    saved = json.loads((tmp_path / "runs" / "scratch" / "round0" / "eval_synthetic_test.json").read_text())
    with_tta = json.loads((tmp_path / "runs" / "scratch" / "round0" / "eval-tta=True" / "eval_synthetic_test.json").read_text())
    assert saved["tta"] is False and with_tta["tta"] is True
    assert plain["dice_fg"] == pytest.approx(saved["dice_fg"]) and tta["dice_fg"] == pytest.approx(with_tta["dice_fg"])


def test_only_rounds_runs_just_those_rounds_and_refuses_others(synth_data, tmp_path):
    out = tmp_path / "split"
    run_bench(synth_data, out, ["forest"], rounds=3, profile="smoke", log=lambda _: None, only_rounds=[2])
    assert sorted(p.name for p in (out / "results" / "forest").glob("*.json")) == ["round2.json"]
    run_bench(synth_data, out, ["forest"], rounds=3, profile="smoke", log=lambda _: None, only_rounds=[0, 1])
    assert sorted(p.name for p in (out / "results" / "forest").glob("*.json")) == [f"round{r}.json" for r in range(3)]
    assert "| forest | 3 |" in (out / "report.md").read_text()
    with pytest.raises(ValueError, match="only_rounds"):
        run_bench(synth_data, tmp_path / "bad", ["forest"], rounds=2, profile="smoke", only_rounds=[2])
    assert not (tmp_path / "bad").exists()


def test_a_seed_variant_fine_tunes_the_same_image_with_another_seed():
    from pscl.bench.protocol import method_config
    plain, other = method_config("scratch", 2, 1, "smoke", 0), method_config("scratch:ft.seed=5", 2, 1, "smoke", 0)
    assert (plain.seed, other.seed) == (0, 5) and (plain.round, plain.shots) == (other.round, other.shots)


def test_a_pretraining_seed_variant_pretrains_apart_and_fine_tunes_with_the_bench_seed(tmp_path):
    from pscl.bench.layout import BenchFolder
    from pscl.bench.protocol import method_config, pretraining_config
    plain, other = (pretraining_config(spec, "smoke", 3) for spec in ("pscl-simclr", "pscl-simclr:seed=1"))
    assert (plain.seed, other.seed) == (3, 1) and plain.steps == other.steps
    assert pretraining_config("scratch", "smoke", 3) is None
    assert BenchFolder(tmp_path).pretraining("pscl-simclr", "round0") != BenchFolder(tmp_path).pretraining("pscl-simclr:seed=1", "round0")
    assert method_config("pscl-simclr:seed=1", 2, 1, "smoke", 3).seed == 3


def test_a_full_variant_is_trained_once_and_not_paired_with_scratch(synth_data, tmp_path):
    from pscl.bench.spec import is_full
    assert is_full("full") and is_full("full:ft.steps=3000") and not is_full("scratch") and not is_full("forest")
    out = tmp_path / "bench"
    summary = run_bench(synth_data, out, ["full:ft.steps=20"], rounds=2, profile="smoke", log=lambda _: None)
    assert sorted(p.name for p in (out / "results" / "full__ft.steps=20").glob("*.json")) == ["round0.json"]
    assert "vs_scratch" not in summary["methods"]["full:ft.steps=20"]


def _tables(report: str) -> list[str]:
    """A report's first table (the test scores; reports made by older code have fewer sections after it)."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_every_committed_bench_folder_rebuilds_to_its_committed_tables(tmp_path):
    """The benchmarks/ layout and the method language may change; the committed results still give the
    committed tables (the real sets they were made on must be beside the repository)."""
    import shutil
    from pathlib import Path

    from pscl.bench.protocol import _as_written
    from pscl.bench.tables import collect
    from pscl.data.folders import load_dataset
    from conftest import SHARED_DATA
    folders = sorted(p.parent for p in (Path(__file__).parents[1] / "benchmarks").rglob("results.json")
                     if (p.parent / "report.md").exists())
    assert len(folders) > 20
    rebuilt = 0
    for folder in folders:
        recorded = json.loads((folder / "results.json").read_text())
        data = SHARED_DATA / recorded["dataset"].lower()
        if not (data / "dataset.json").exists():
            continue  # a synthetic set, or the real data is absent
        copy = tmp_path / "-".join(folder.relative_to(folder.parents[1]).parts)
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.png"))
        ds = load_dataset(data)
        collect(copy, ds.name, ds.classes, recorded["shots"], recorded["profile"], recorded["command"],
                _as_written(recorded.get("profile_settings")))
        assert _tables((copy / "report.md").read_text()) == _tables((folder / "report.md").read_text()), folder
        rebuilt += 1
    if not rebuilt:
        pytest.skip(f"the real sets the committed benches used are absent from {SHARED_DATA}")
