"""Every method of a bench paired against scratch averaged over its seeds, on test and on val.

    python benchmarks/scripts/seed_baseline.py BENCH_OUT      # writes BENCH_OUT/seed-baseline.md

On one annotated image the U-Net's random initialisation is shared by all rounds of a seed, so a lucky
(or unlucky) seed of scratch shifts every paired difference of the report alike. With the variants
``scratch:ft.seed=1``, ``scratch:ft.seed=2`` in the bench, this pairs each method, round by round, with
the mean of the scratch seeds instead of seed 0 alone.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from pscl.bench.statistics import paired_difference
from pscl.files import write_text
from pscl.provenance import provenance

SEEDS = ("scratch", "scratch:ft.seed=1", "scratch:ft.seed=2")


def table(methods: dict, key: str) -> list[str]:
    seeds = [m for m in SEEDS if m in methods]
    scored = {m: [r for r in t["rounds"] if r.get(key) is not None] for m, t in methods.items()}
    by = lambda m: {r["round"]: r[key] for r in scored[m]}  # noqa: E731
    rounds = sorted(set.intersection(*(set(by(m)) for m in seeds)))
    base = [{"round": k, key: float(np.mean([by(m)[k] for m in seeds]))} for k in rounds]
    lines = [f"### {key}: scratch averaged over {len(seeds)} seeds ({', '.join(seeds)}): "
             f"{np.mean([b[key] for b in base]):.4f}", "",
             "| method | rounds | mean | minus seed-averaged scratch, paired (± std) | rounds better |", "|---|---|---|---|---|"]
    for m in methods:
        d = paired_difference(scored[m], base, key)
        if d is None:
            continue
        mean = np.mean([r[key] for r in scored[m] if r["round"] in rounds])
        lines.append(f"| {m} | {d['rounds']} | {mean:.4f} | {d['mean']:+.4f} ± {d['std']:.4f} | {d['wins']} of {d['rounds']} |")
    return lines + [""]


def main() -> None:
    out = Path(sys.argv[1])
    methods = json.loads((out / "results.json").read_text())["methods"]
    lines = ["# Paired against scratch averaged over its seeds", "",
             f"- command: `python {' '.join(sys.argv)}`", *(f"- {k}: {v}" for k, v in provenance().items()), "",
             *table(methods, "dice_fg"), *table(methods, "val_dice_fg")]
    write_text(out / "seed-baseline.md", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
