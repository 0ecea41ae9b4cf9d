"""The bench's tables: ``results.json`` (every method's rounds and means) and ``report.md`` (the
paper's table, paired differences against scratch, the suggested pick, every round)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pscl.bench.layout import BenchFolder
from pscl.bench.spec import is_full, method_order
from pscl.bench.statistics import paired_difference
from pscl.files import write_text
from pscl.profiles import profile_settings
from pscl.provenance import provenance


def _results_by_method(out: Path) -> dict[str, tuple[list[dict], dict | None]]:
    """Every method's round results and suggested-pick result in ``OUT/results``, by the method spec
    each file records (folder names are the specs made portable)."""
    found = {}
    for folder in sorted(p for p in BenchFolder(out).results.glob("*") if p.is_dir()):
        rows = [json.loads(p.read_text()) for p in sorted(folder.glob("round*.json"))]
        suggested = json.loads((folder / "suggest.json").read_text()) if (folder / "suggest.json").exists() else None
        if rows:
            found[rows[0]["method"]] = (rows, suggested)
    return found


def collect(out: Path, name: str, classes: list[str], shots: int, profile: str, command: str,
            budget: dict | None = None) -> dict:
    """Aggregate the per-round files into results.json and report.md: every method with results in
    OUT, so that a later run of a few methods (e.g. ``--pick suggest``) keeps the others' rows.
    ``budget``: the profile's settings as recorded (a rebuild keeps them; default: the profile's now)."""
    found = _results_by_method(out)
    table = {}
    for method in sorted(found, key=method_order):
        rows, suggested = found[method]
        agg = {k: [r[k] for r in rows] for k in ("dice_fg", "acc", "miou", "dice_all")}
        table[method] = {"rounds": rows, **{f"{k}_mean": float(np.mean(v)) for k, v in agg.items()},
                         **{f"{k}_std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in agg.items()},
                         "per_class_dice_mean": {c: float(np.nanmean([r["per_class"][c]["dice"] for r in rows]))
                                                 for c in classes}}
        if suggested is not None:
            table[method]["suggested"] = suggested
    for t in table.values():
        if all(r.get("val_dice_fg") is not None for r in t["rounds"]):  # U-Nets selected on val (not the forest)
            t["val_dice_fg_mean"] = float(np.mean([r["val_dice_fg"] for r in t["rounds"]]))
    for method, t in table.items():
        if method != "scratch" and not is_full(method) and "scratch" in table:
            paired = paired_difference(t["rounds"], table["scratch"]["rounds"])
            if paired:
                t["vs_scratch"] = paired
            if "val_dice_fg_mean" in t and "val_dice_fg_mean" in table["scratch"]:
                t["val_vs_scratch"] = paired_difference(t["rounds"], table["scratch"]["rounds"], "val_dice_fg")
    summary = {"dataset": name, "shots": shots, "profile": profile,
               "profile_settings": budget or {stage: profile_settings(profile, stage) for stage in ("pretrain", "finetune")},
               "command": command, **provenance(), "methods": table}
    write_text(BenchFolder(out).results_json, json.dumps(summary, indent=1, default=float))
    write_text(BenchFolder(out).report, report(summary, classes))
    return summary


def _paired_section(summary: dict) -> list[str]:
    paired = {m: t["vs_scratch"] for m, t in summary["methods"].items() if "vs_scratch" in t}
    if not paired:
        return []
    lines = ["", "Paired against scratch (same annotated image each round; Dice (fg) of the method minus scratch's):",
             "", "| method | rounds | mean difference ± std | 95 % interval | rounds better than scratch |",
             "|---|---|---|---|---|"]
    for m, d in paired.items():
        interval = f"{d['ci95'][0]:+.4f} .. {d['ci95'][1]:+.4f}" if d["rounds"] > 1 else "–"
        lines.append(f"| {m} | {d['rounds']} | {d['mean']:+.4f} ± {d['std']:.4f} | {interval} | "
                     f"{d['wins']} of {d['rounds']} |")
    return lines


def _val_section(summary: dict) -> list[str]:
    """Val Dice (fg) of the selected checkpoints: the score to choose settings by (test only reports)."""
    rows = {m: t for m, t in summary["methods"].items() if "val_dice_fg_mean" in t}
    if not rows:
        return []
    lines = ["", "On val (Dice (fg) of the checkpoint each run selected; choose settings here, never on test):", "",
             "| method | rounds | val Dice (fg) | minus scratch, paired | rounds better than scratch |", "|---|---|---|---|---|"]
    for m, t in rows.items():
        d = t.get("val_vs_scratch")
        paired = f"{d['mean']:+.4f} ± {d['std']:.4f} | {d['wins']} of {d['rounds']}" if d else " | "
        lines.append(f"| {m} | {len(t['rounds'])} | {t['val_dice_fg_mean']:.4f} | {paired} |")
    return lines


def _suggested_section(summary: dict) -> list[str]:
    suggested = {m: t for m, t in summary["methods"].items() if "suggested" in t}
    if not suggested:
        return []
    lines = ["", "Fine-tuned on the image(s) `pscl suggest` picks, beside the random rounds:", "",
             "| method | suggested image(s) | Dice (fg) | random rounds: mean ± std | difference / std |",
             "|---|---|---|---|---|"]
    for m, t in suggested.items():
        sdice, std = t["suggested"]["dice_fg"], t["dice_fg_std"]
        ratio = f"{(sdice - t['dice_fg_mean']) / std:+.2f}" if std > 0 else "n/a"
        lines.append(f"| {m} | {', '.join(t['suggested']['annotated'])} | {sdice:.4f} | "
                     f"{t['dice_fg_mean']:.4f} ± {std:.4f} | {ratio} |")
    return lines + [""]


def report(summary: dict, classes: list[str]) -> str:
    """The table in the paper's form (Dice fg and ACC mean ± std), plus mIoU and per-class Dice."""
    commits = sorted({r["commit"] for t in summary["methods"].values() for r in t["rounds"]})
    lines = [f"# {summary['dataset']}: {summary['shots']} annotated image(s), profile `{summary['profile']}`", "",
             f"- command: `{summary['command']}`", f"- report written at commit: {summary['commit']}",
             f"- results produced at commit(s): {', '.join(commits)}",
             f"- machine: {summary['machine']}",
             f"- date: {summary['date']}", f"- budget: {summary['profile_settings']}", "",
             "| method | rounds | Dice (fg) | ACC | mIoU | " + " | ".join(classes) + " |",
             "|---|---|---|---|---|" + "---|" * len(classes)]
    for method, t in summary["methods"].items():
        per_class = " | ".join(f"{t['per_class_dice_mean'][c]:.3f}" for c in classes)
        lines.append(f"| {method} | {len(t['rounds'])} | {t['dice_fg_mean']:.4f} ± {t['dice_fg_std']:.4f} | "
                     f"{t['acc_mean']:.4f} ± {t['acc_std']:.4f} | {t['miou_mean']:.4f} | {per_class} |")
    lines += _paired_section(summary) + _val_section(summary) + [""] + _suggested_section(summary)
    lines += ["![Dice per round and predictions](figure.png)", "", "Per round (Dice fg; annotated images):", ""]
    for method, t in summary["methods"].items():
        for r in t["rounds"]:
            ann = ", ".join(r["annotated"]) if len(r["annotated"]) <= 3 else f"{len(r['annotated'])} images"
            val = f"; best val {r['val_dice_fg']:.4f}" if r.get("val_dice_fg") is not None else ""
            lines.append(f"- {method} round {r['round']}: {r['dice_fg']:.4f} ({ann}; fine-tune "
                         f"{r['wall_s']['finetune']:.0f} s{val})")
    return "\n".join(lines) + "\n"
