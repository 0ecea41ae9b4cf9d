"""Pair bench results round by round against a reference, whatever images each round annotated (e.g. one full
mask against the same round's strokes on 4 micrographs), with the labelled pixels each used.

    python benchmarks/scripts/pair_rounds.py OUT.md LABEL=BENCH:METHOD [LABEL=BENCH:METHOD ...]

The first entry is the reference. Per entry: test Dice (fg) per round, the mean, the paired difference to the
reference (mean ± std over the rounds both have, rounds better), per-class mean Dice, and for guarded
self-training the rounds it rolled back.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from pscl.bench.layout import BenchFolder
from pscl.files import write_text
from pscl.provenance import provenance


def rounds(bench: str, method: str) -> dict[int, dict]:
    """The results of ``method`` in the bench folder ``bench``, by round (empty if it holds none)."""
    found = {}
    for path in BenchFolder(bench).results.glob("*/round*.json"):
        result = json.loads(path.read_text())
        if result["method"] == method:
            found[int(result["round"])] = result
    return found


def results(entry: str) -> tuple[str, dict[int, dict]]:
    label, _, rest = entry.partition("=")
    bench, _, method = rest.partition(":")
    found = rounds(bench, method)
    if not found:
        raise SystemExit(f"{bench}: no results of {method!r}")
    return label, found


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, entries = Path(sys.argv[1]), [results(e) for e in sys.argv[2:]]
    ref_label, ref = entries[0]
    classes = list(next(iter(ref.values()))["per_class"])
    lines = [f"# Paired by round against {ref_label}", "",
             f"- command: `python benchmarks/scripts/pair_rounds.py {' '.join(sys.argv[1:])}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| | rounds | test Dice (fg) | minus reference, paired | better | " + " | ".join(classes) + " | per round |",
             "|---|---|---|---|---|" + "---|" * len(classes) + "---|"]
    for label, found in entries:
        rounds = sorted(found)
        mean = np.mean([found[r]["dice_fg"] for r in rounds])
        common = [r for r in rounds if r in ref]
        diff = [found[r]["dice_fg"] - ref[r]["dice_fg"] for r in common]
        paired = "" if label == ref_label else (f"{np.mean(diff):+.3f} ± {np.std(diff, ddof=1) if len(diff) > 1 else 0:.3f}")
        better = "" if label == ref_label else f"{sum(d > 0 for d in diff)} of {len(diff)}"
        per_class = [np.mean([found[r]["per_class"][c]["dice"] for r in rounds]) for c in classes]
        guard = {r: found[r]["semi_guard"]["rolled_back"] for r in rounds if found[r].get("semi_guard")}
        per_round = ", ".join(f"{found[r]['dice_fg']:.3f}" + ("R" if guard.get(r) else "") for r in rounds)
        lines.append(f"| {label} | {len(rounds)} | {mean:.3f} | {paired} | {better} | "
                     + " | ".join(f"{v:.2f}" for v in per_class) + f" | {per_round} |")
    lines += ["", "R: guarded self-training rolled back in that round. Entries: "
              + "; ".join(f"{label} = `{e.partition('=')[2]}`" for (label, _), e in zip(entries, sys.argv[2:]))]
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
