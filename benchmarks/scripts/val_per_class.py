"""Per-class val Dice of every fine-tuned model of a bench: what the bench's test table cannot show.

MetalDAM's test split holds 285 defect pixels in 4 small objects, its val split 54,007 in 12 (and
precipitates 7,546 vs 3,149): a model that finds the defects gains up to 0.25 Dice (fg) on val and
nothing on test. This scores each ``OUT/runs/<method>/round<R>`` model (the val-selected one) on
the val split, per class, and writes ``OUT/val-per-class.md``: per method the mean over its rounds.
The val split chose each model, so these numbers are optimistic for every method alike; they show
*which classes* a method finds, not an unbiased score. Evaluations are cached in the run folders
(``eval_<dataset>_val.json``), so a rerun only scores new runs.

A second table is the over-call check: per class, the pixels a method calls that class over the pixels that
truly are, pooled over its rounds, on val and (from the bench's cached test evaluations) on test. A rare class
with a ratio far above 1 is over-called (class weighting, Dice term and rare-class crops all push that way); far
below 1, missed.

Usage: python benchmarks/scripts/val_per_class.py DATA OUT
"""
import json
import sys
from pathlib import Path

import numpy as np

from pscl.api import evaluate
from pscl.data.folders import load_dataset
from pscl.files import write_text
from pscl.provenance import provenance
from pscl.run_folder import RunFolder


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    ds = load_dataset(data)
    rows: dict[str, list[dict]] = {}
    calls: dict[str, dict[str, np.ndarray]] = {}  # method -> split -> (2, C): called, true pixels
    for run in sorted(out.glob("runs/*/round*")):
        folder = RunFolder(run)
        if not folder.model_file.exists():
            continue
        cached = folder.eval_file(ds.name, "val")
        result = json.loads(cached.read_text()) if cached.exists() else evaluate(run, data, split="val")
        rows.setdefault(run.parent.name, []).append(
            {"round": run.name, "dice_fg": result["dice_fg"], **{c: v["dice"] for c, v in result["per_class"].items()}})
        test = folder.eval_file(ds.name, "test")
        for split, res in (("val", result), ("test", json.loads(test.read_text()) if test.exists() else None)):
            if res is not None and "confusion" in res:
                cm = np.asarray(res["confusion"], dtype=np.int64)
                per_split = calls.setdefault(run.parent.name, {})
                per_split[split] = per_split.get(split, 0) + np.stack([cm.sum(0), cm.sum(1)])
    meta = provenance()
    lines = [f"# Val per class: {out}\n\n- command: `python benchmarks/scripts/val_per_class.py {' '.join(sys.argv[1:])}`\n"
             f"- commit: {meta['commit']}\n- machine: {meta['machine']}\n- date: {meta['date']}\n"
             "- seeds: those of the bench's runs (seed 0)\n\n"
             "Mean over the rounds of each method; val Dice of the val-selected model (optimistic for every method).\n\n"
             f"| method | rounds | val Dice (fg) | {' | '.join(ds.classes)} |\n|---|---|---|" + "---|" * len(ds.classes) + "\n"]
    for method, runs in sorted(rows.items()):
        means = [np.mean([r[c] for r in runs]) for c in ds.classes]
        lines.append(f"| {method} | {len(runs)} | {np.mean([r['dice_fg'] for r in runs]):.3f} | "
                     + " | ".join(f"{m:.3f}" for m in means) + " |\n")
    lines.append("\n## Over-calls: pixels called the class / pixels of the class, pooled over the rounds (val; test)\n\n"
                 f"| method | {' | '.join(ds.classes)} |\n|---|" + "---|" * len(ds.classes) + "\n")
    for method, per_split in sorted(calls.items()):
        ratios = {split: cnt[0] / np.maximum(cnt[1], 1) for split, cnt in per_split.items()}
        cells = ["; ".join(f"{ratios[s][k]:.2f}" for s in ("val", "test") if s in ratios) for k in range(len(ds.classes))]
        lines.append(f"| {method} | " + " | ".join(cells) + " |\n")
    write_text(out / "val-per-class.md", "".join(lines))
    print("".join(lines))


if __name__ == "__main__":
    main()
