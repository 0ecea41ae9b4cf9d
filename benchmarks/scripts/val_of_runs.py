"""Score every run of some bench methods on the val split (runs selected without val masks have no val score),
and pair the methods round by round on val.

    python benchmarks/scripts/val_of_runs.py DATA BENCH OUT.md METHOD [METHOD ...]

Each run's evaluation lands in ``BENCH/runs/<method>/round<R>/eval_<dataset>_val.json`` (the bench's own run folders,
not committed); OUT.md gets the table.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from pscl.bench.layout import BenchFolder
from pscl.files import write_text
from pscl.inference.evaluate import evaluate
from pscl.provenance import provenance


def main() -> None:
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    data, bench, out, methods = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
    scores = {m: {} for m in methods}
    for method in methods:
        for run in sorted(r for r in BenchFolder(bench).run(method, "").glob("round*") if (r / "model.pt").exists()):
            scores[method][int(run.name[5:])] = evaluate(run, data, split="val")["dice_fg"]
    first = scores[methods[0]]
    lines = [f"# Val Dice (fg) of runs selected without val masks: {bench.name}", "",
             f"- command: `python benchmarks/scripts/val_of_runs.py {' '.join(sys.argv[1:])}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| method | rounds | val Dice (fg) | minus first, paired | better |", "|---|---|---|---|---|"]
    for method in methods:
        rounds = sorted(set(scores[method]) & set(first))
        diff = [scores[method][r] - first[r] for r in rounds]
        paired = "" if method == methods[0] else f"{np.mean(diff):+.4f} ± {np.std(diff, ddof=1):.4f}"
        better = "" if method == methods[0] else f"{sum(d > 0 for d in diff)} of {len(diff)}"
        lines.append(f"| {method} | {len(scores[method])} | {np.mean(list(scores[method].values())):.4f} | {paired} | {better} |")
    lines += ["", "Per round: " + "; ".join(f"{m}: " + ", ".join(f"{scores[m][r]:.4f}" for r in sorted(scores[m]))
                                            for m in methods)]
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
