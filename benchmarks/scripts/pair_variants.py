"""Pair each method with its own variant round by round (e.g. a fine-tuning rule), on val and test.

    python benchmarks/scripts/pair_variants.py OUT.md BENCH SUFFIX METHOD [METHOD ...]

Row per method: ``METHOD`` against ``METHOD + SUFFIX`` (``SUFFIX`` as the bench spells it, e.g.
``:ft.lr_contracting_init=0.001``) over the rounds both have, with the val and test means of each, the paired
difference, how many rounds the variant wins, and the per-class test Dice of both. The last row pools every
method's rounds: the evidence for one rule over all of them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from compare_benches import per_class, rounds_of
from pscl.bench.statistics import paired_difference
from pscl.files import write_text
from pscl.provenance import provenance


def main() -> None:
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    out, bench, suffix, methods = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    lines = [f"# {Path(bench).name}: each method against itself with `{suffix}`", "",
             f"- command: `python {' '.join(sys.argv)}`", *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| method | rounds | val: method -> variant | val paired | val better | test: method -> variant | "
             "test paired | test better | test per class: method / variant |", "|---|---|---|---|---|---|---|---|---|"]
    pooled = {"val_dice_fg": [], "dice_fg": []}
    for method in methods:
        base, variant = rounds_of(f"{bench}:{method}")[1], rounds_of(f"{bench}:{method}{suffix}")[1]
        keep = {r["round"] for r in base} & {r["round"] for r in variant}
        base, variant = (sorted((r for r in rs if r["round"] in keep), key=lambda r: r["round"]) for rs in (base, variant))
        cells = []
        for key in ("val_dice_fg", "dice_fg"):
            d = paired_difference(variant, base, key)
            pooled[key] += [v[key] - b[key] for v, b in zip(variant, base)]
            cells += [f"{np.mean([r[key] for r in base]):.4f} -> {np.mean([r[key] for r in variant]):.4f}",
                      f"{d['mean']:+.4f} ± {d['std']:.4f}", f"{d['wins']} of {d['rounds']}"]
        lines.append(f"| {method} | {len(keep)} | " + " | ".join(cells)
                     + f" | {per_class(base, keep)} / {per_class(variant, keep)} |")
    cells = [f"{np.mean(pooled[k]):+.4f}, better in {sum(x > 0 for x in pooled[k])} of {len(pooled[k])}"
             for k in ("val_dice_fg", "dice_fg")]
    lines.append(f"| all pooled (method-rounds) | {len(pooled['dice_fg'])} | | {cells[0]} | | | {cells[1]} | | |")
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
