"""Paired comparison of two methods over the rounds of a bench (the same annotated image each round)."""
from __future__ import annotations

import numpy as np


def paired_difference(rounds: list[dict], reference: list[dict], key: str = "dice_fg") -> dict | None:
    """``key`` of a method minus the reference's, round by round (the same annotated image).

    The annotated image moves Dice more than the method does, so the per-round difference is the
    fair comparison: its mean, sample std, a Student-t 95 % interval of the mean (none for one
    round) and how many rounds the method wins. None when the two share no round.
    """
    from scipy import stats

    by_round = {r["round"]: r[key] for r in reference}
    diffs = [r[key] - by_round[r["round"]] for r in rounds if r["round"] in by_round]
    if not diffs:
        return None
    n, mean = len(diffs), float(np.mean(diffs))
    std = float(np.std(diffs, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    return {"rounds": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half],
            "wins": int(sum(d > 0 for d in diffs)), "differences": [float(d) for d in diffs]}
