"""Pair methods of different bench folders (e.g. two budgets) round by round, on test and on val.

    python benchmarks/scripts/compare_benches.py OUT.md REF_BENCH:METHOD BENCH:METHOD [BENCH:METHOD ...]

The first entry is the reference; every entry is paired with it over the rounds both have (same dataset, same
annotated image per round: the folders must come from the same bench seed's draws, which the script checks).
Per class: mean test Dice over those rounds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from pscl.bench.statistics import paired_difference
from pscl.files import write_text
from pscl.provenance import provenance


def rounds_of(entry: str) -> tuple[str, list[dict]]:
    """(label, the round results) of ``BENCH:METHOD`` (the method as the bench spells it, ``:`` included)."""
    bench, _, method = entry.partition(":")
    methods = json.loads((Path(bench) / "results.json").read_text())["methods"]
    if method not in methods:
        raise SystemExit(f"{bench}: no method {method!r} (has {', '.join(methods)})")
    return f"{Path(bench).name}: {method}", methods[method]["rounds"]


def per_class(rounds: list[dict], keep: set[int]) -> str:
    names = list(rounds[0]["per_class"])
    means = [np.nanmean([r["per_class"][c]["dice"] for r in rounds if r["round"] in keep]) for c in names]
    return ", ".join(f"{m:.2f}" for m in means)


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    out, entries = Path(sys.argv[1]), [rounds_of(e) for e in sys.argv[2:]]
    (ref_label, ref), rest = entries[0], entries[1:]
    annotated = {r["round"]: r["annotated"] for r in ref}
    for label, rounds in rest:
        clash = [r["round"] for r in rounds if r["round"] in annotated and r["annotated"] != annotated[r["round"]]]
        if clash:
            raise SystemExit(f"{label}: rounds {clash} annotate other images than {ref_label}: not pairable")
    classes = ", ".join(ref[0]["per_class"])
    lines = [f"# Paired against {ref_label}", "", f"- command: `python {' '.join(sys.argv)}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             f"| entry | rounds | test Dice (fg) | minus reference, paired | better | val Dice (fg) | val minus reference "
             f"| per class, test ({classes}) |", "|---|---|---|---|---|---|---|---|"]
    for label, rounds in entries:
        keep = {r["round"] for r in rounds} & set(annotated)
        test = np.mean([r["dice_fg"] for r in rounds if r["round"] in keep])
        val = [r["val_dice_fg"] for r in rounds if r["round"] in keep and r.get("val_dice_fg") is not None]
        d = paired_difference(rounds, ref, "dice_fg") if label != ref_label else None
        with_val = lambda rs: [r for r in rs if r.get("val_dice_fg") is not None]  # noqa: E731 (older benches lack it)
        dv = paired_difference(with_val(rounds), with_val(ref), "val_dice_fg") if label != ref_label else None
        lines.append(f"| {label} | {len(keep)} | {test:.4f} | " + (f"{d['mean']:+.4f} ± {d['std']:.4f} | {d['wins']} of "
                     f"{d['rounds']}" if d else " | ") + f" | {np.mean(val) if val else float('nan'):.4f} | " + (f"{dv['mean']:+.4f}" if dv else "")
                     + f" | {per_class(rounds, keep)} |")
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
