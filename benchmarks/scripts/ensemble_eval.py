"""Test and val Dice (fg) of bench runs alone, as an ensemble (their probabilities averaged) and the one
best on val (choosing among seeds on val, as checkpoints are chosen).

    python benchmarks/scripts/ensemble_eval.py DATA BENCH_OUT OUT.md --members scratch,scratch:ft.seed=1,scratch:ft.seed=2
                                       [--rounds 0,1,2,3,4] [--name scratch-x3]

Members are bench method specs whose runs lie in BENCH_OUT/runs (rounds where any member is missing are
skipped). Writes OUT.md (per round and the means) and OUT.json, with provenance.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from pscl.bench.layout import BenchFolder
from pscl.checkpoints import load_model
from pscl.data import load_dataset
from pscl.files import write_text
from pscl.inference.predict import torch_tile_model
from pscl.inference.tiling import averaged, segment_tiled
from pscl.metrics import score_split
from pscl.provenance import provenance
from pscl.run_folder import RunFolder


def score(models: list, ds, split: str) -> dict:
    tile_model = averaged([torch_tile_model(m) for m in models])
    labels_of = lambda image: segment_tiled(tile_model, image, models[0].num_classes).labels  # noqa: E731
    return score_split(ds, split, labels_of)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("bench", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--members", required=True)
    parser.add_argument("--rounds", default="0,1,2,3,4")
    parser.add_argument("--name", default="ensemble")
    args = parser.parse_args()
    ds, members = load_dataset(args.data), args.members.split(",")
    rows = []
    for r in (int(v) for v in args.rounds.split(",")):
        runs = [BenchFolder(args.bench).run(m, f"round{r}") for m in members]
        if not all(RunFolder(run).model_file.exists() for run in runs):
            continue
        models = [load_model(run)[0] for run in runs]
        row = {"round": r}
        for split in ("val", "test"):
            alone = [score([m], ds, split)["dice_fg"] for m in models]
            row[split] = {"members": alone, "ensemble": score(models, ds, split)["dice_fg"]}
        rows.append(row)
        print(r, row, flush=True)
    lines = [f"# {args.name}: {', '.join(members)} alone and averaged", "",
             f"- command: `python {' '.join(sys.argv)}`", *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| round | " + " | ".join(f"{m} (test)" for m in members)
             + " | members' mean (test) | ensemble (test) | best on val (test) | members' mean (val) | ensemble (val) |",
             "|---|" + "---|" * (len(members) + 5)]
    for row in rows:
        row["test"]["best_on_val"] = row["test"]["members"][int(np.argmax(row["val"]["members"]))]
        lines.append(f"| {row['round']} | " + " | ".join(f"{v:.4f}" for v in row["test"]["members"])
                     + f" | {np.mean(row['test']['members']):.4f} | {row['test']['ensemble']:.4f} | "
                     f"{row['test']['best_on_val']:.4f} | {np.mean(row['val']['members']):.4f} | {row['val']['ensemble']:.4f} |")
    if rows:
        mean = lambda split, key: np.mean([np.mean(r[split][key]) for r in rows])  # noqa: E731
        lines.append(f"| mean | " + " | ".join(f"{np.mean([r['test']['members'][i] for r in rows]):.4f}"
                                              for i in range(len(members)))
                     + f" | {mean('test', 'members'):.4f} | {mean('test', 'ensemble'):.4f} | {mean('test', 'best_on_val'):.4f} | "
                     f"{mean('val', 'members'):.4f} | {mean('val', 'ensemble'):.4f} |")
    write_text(args.out, "\n".join(lines) + "\n")
    write_text(args.out.with_suffix(".json"), json.dumps({"command": " ".join(sys.argv), **provenance(),
                                                          "members": members, "rounds": rows}, indent=1))


if __name__ == "__main__":
    main()
