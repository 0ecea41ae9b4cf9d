"""Replay the guard's decision from the held-out scores a guarded run logged, under three rules: the score at the
self-training start against the last one (the guard, :func:`pscl.train.guard.guard_decision`), the mean of the
last two validations before the start against the mean of the last two at the end (each a score of a few
held-out blocks, so one validation is noisy), and both together (roll back only when both fall by more than the
margin; tried at de23797, not adopted).

    python benchmarks/scripts/guard_rule.py OUT.md RUN_FOLDER [RUN_FOLDER ...]

RUN_FOLDER: a guarded fine-tuning run (``logs/metrics.csv`` with ``holdout_dice_fg``, ``config.json``). Only the
decision is replayed; what a changed decision ends at needs the run's ``semi-last.ckpt`` (roll-back -> keep) or
a resumed roll-back (keep -> roll-back).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from pscl.files import write_text
from pscl.provenance import provenance
from pscl.train.guard import MARGIN, guard_decision


def replay(run: Path) -> tuple[list[float], list[float], list[tuple[int, float]]] | None:
    """The held-out scores of a run's validations before the self-training start (that one included, logged a step
    earlier) and after it, and every (step, score)."""
    rows = list(csv.DictReader((run / "logs" / "metrics.csv").open()))
    scores = [(int(r["step"]), float(r["holdout_dice_fg"])) for r in rows if r.get("holdout_dice_fg")]
    config = json.loads((run / "config.json").read_text())
    start = config["steps"] // 2 if config.get("semi_start", -1) == -1 else config["semi_start"]
    before, after = [v for s, v in scores if s < start], [v for s, v in scores if s >= start]
    if len(before) < 2 or len(after) < 2:
        return None
    return before, after, scores


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    decision = lambda rolled: "roll back" if rolled else "keep"  # noqa: E731
    lines = ["# The guard's decision replayed under three rules", "",
             f"- command: `python benchmarks/scripts/guard_rule.py {' '.join(sys.argv[1:])}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             f"Held-out Dice (fg) fall from before self-training to the end; roll back above {MARGIN}.", "",
             "| run | last vs start | decision (the guard) | mean of two vs mean of two | decision | both | "
             "held-out Dice at each validation |",
             "|---|---|---|---|---|---|---|"]
    for arg in sys.argv[2:]:
        run = Path(arg)
        found = replay(run)
        if found is None:
            continue
        before, after, scores = found
        single, paired = before[-1] - after[-1], sum(before[-2:]) / 2 - sum(after[-2:]) / 2
        label = f"{run.parents[2].name}/{run.name}"
        guard = guard_decision(before[-1], after[-1], MARGIN)
        lines.append(f"| {label} | {single:+.3f} | {decision(guard)} | {paired:+.3f} | "
                     f"{decision(paired > MARGIN)} | {decision(guard and paired > MARGIN)} | "
                     f"{' '.join(f'{v:.2f}' for _, v in scores)} |")
    write_text(Path(sys.argv[1]), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
