"""What "refit on everything if self-training is kept" would give, read from bench results already made.

A guarded run that keeps self-training has never trained on its held-out fifth. Refitting it would train a
semi-supervised run on the whole annotation with the same seed and budget and no check: that is the unguarded
run of the same round. So the refit design scores, per round, the guarded result where the guard rolled back
and the unguarded result where it kept self-training.

    python benchmarks/scripts/refit_estimate.py OUT.md SET=PLAIN_BENCH:UNGUARDED_BENCH:GUARD_BENCH[,GUARD_BENCH...] [...]

The plain bench holds ``scratch:ft.select=last``, the other two ``scratch+semi:...:ft.select=last`` (METHOD
below); several guard benches are read in turn for the rounds each holds. Paired with plain round by round.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from pair_rounds import rounds

from pscl.files import write_text
from pscl.provenance import provenance

PLAIN = "scratch:ft.select=last"
METHOD = "scratch+semi:ft.semi_align=true:ft.semi_align_mix=1.0:ft.select=last"


def paired(values: list[float], reference: list[float]) -> str:
    diff = np.array(values) - np.array(reference)
    return f"{np.mean(values):.3f} ({diff.mean():+.3f} ± {diff.std(ddof=1):.3f}, {int((diff > 0).sum())} of {len(diff)})"


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    lines = ["# Refit on everything after a kept guard, estimated from bench results", "",
             f"- command: `python benchmarks/scripts/refit_estimate.py {' '.join(sys.argv[1:])}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| set | rounds | plain | guarded (the default) | refit after a kept guard | unguarded | kept in rounds |",
             "|---|---|---|---|---|---|---|"]
    for arg in sys.argv[2:]:
        name, _, spec = arg.partition("=")
        plain_bench, unguarded_bench, guards = spec.split(":")
        plain, unguarded = rounds(plain_bench, PLAIN), rounds(unguarded_bench, METHOD)
        guarded = {}
        for bench in guards.split(","):
            guarded = {**rounds(bench, METHOD), **guarded}  # an earlier bench wins a round both hold
        common = sorted(set(plain) & set(unguarded) & set(guarded))
        kept = [r for r in common if not guarded[r]["semi_guard"]["rolled_back"]]
        ref = [plain[r]["dice_fg"] for r in common]
        refit = [(unguarded if r in kept else guarded)[r]["dice_fg"] for r in common]
        lines.append(f"| {name} | {len(common)} | {np.mean(ref):.3f} | "
                     f"{paired([guarded[r]['dice_fg'] for r in common], ref)} | {paired(refit, ref)} | "
                     f"{paired([unguarded[r]['dice_fg'] for r in common], ref)} | {', '.join(map(str, kept)) or 'none'} |")
    write_text(Path(sys.argv[1]), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
