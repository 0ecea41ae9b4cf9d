"""Every method of a bench paired against scratch averaged over its seeds, on test and on val.

    python benchmarks/seed_baseline.py BENCH_OUT      # writes BENCH_OUT/seed-baseline.md

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

from pscl.files import write_text
from pscl.provenance import provenance

SEEDS = ("scratch", "scratch:ft.seed=1", "scratch:ft.seed=2")


def table(methods: dict, key: str) -> list[str]:
    seeds = [m for m in SEEDS if m in methods]
    by = lambda m: {r["round"]: r.get(key) for r in methods[m]["rounds"]}  # noqa: E731
    rounds = sorted(set.intersection(*(set(by(m)) for m in seeds)))
    base = {k: float(np.mean([by(m)[k] for m in seeds])) for k in rounds}
    lines = [f"### {key}: scratch averaged over {len(seeds)} seeds ({', '.join(seeds)}): "
             f"{np.mean(list(base.values())):.4f}", "",
             "| method | rounds | mean | minus seed-averaged scratch, paired (± std) | rounds better |", "|---|---|---|---|---|"]
    for m in methods:
        d = by(m)
        common = [k for k in rounds if d.get(k) is not None]
        if not common:
            continue
        diff = [d[k] - base[k] for k in common]
        std = np.std(diff, ddof=1) if len(diff) > 1 else 0.0
        lines.append(f"| {m} | {len(common)} | {np.mean([d[k] for k in common]):.4f} | {np.mean(diff):+.4f} ± {std:.4f} "
                     f"| {sum(x > 0 for x in diff)} of {len(diff)} |")
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
