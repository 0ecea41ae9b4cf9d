"""Dice against annotation effort: a grid of bench results, annotation by row and method by column, each cell
paired round by round with the first cell (the reference: one full mask, scratch), with the labelled pixels of
each row counted in the masks the runs trained on.

    python benchmarks/scripts/effort_table.py OUT.md "ROW|COLUMN|DATA=BENCH:METHOD" [...]

DATA is the dataset folder the row's runs read (a stroked copy for strokes), BENCH:METHOD as in
``pair_rounds.py``. A cell: mean test Dice (fg) over its rounds; below the reference cell, the paired
difference (mean, rounds better); "(k rounds)" where a cell has fewer than the reference. The whole train split
is one run (round 0), shown without a pairing. A cell whose bench holds no results is shown as "not run".
"""
from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import numpy as np
from pair_rounds import results

from pscl.data.folders import load_dataset
from pscl.data.labels import labelled_pixels
from pscl.files import write_text
from pscl.provenance import provenance


@cache
def train_counts(data: Path) -> dict[str, int]:
    """Labelled pixels of each train mask of the dataset folder ``data`` (read once per folder)."""
    return {stem: int(n.sum()) for stem, (n, _) in labelled_pixels(load_dataset(data)).items()}


def mean_labelled(data: Path, found: dict[int, dict]) -> float:
    """Mean over rounds of the pixels labelled in the masks each round annotated."""
    counts = train_counts(data)
    return float(np.mean([sum(counts[stem] for stem in result["annotated"]) for result in found.values()]))


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    out, cells = Path(sys.argv[1]), []
    for arg in sys.argv[2:]:
        row, column, rest = arg.split("|", 2)
        data, _, entry = rest.partition("=")
        try:
            cells.append((row, column, Path(data), results(f"{row}, {column}={entry}")[1], entry))
        except SystemExit as missing:  # a cell not run (yet): shown as such
            print(f"not run: {missing}", file=sys.stderr)
    rows = list(dict.fromkeys(c[0] for c in cells))
    columns = list(dict.fromkeys(c[1] for c in cells))
    ref = cells[0][3]
    grid = {(row, column): (data, found) for row, column, data, found, _ in cells}
    lines = ["# Test Dice (fg) against annotation effort", "",
             f"- command: `python benchmarks/scripts/effort_table.py {' '.join(repr(a) for a in sys.argv[1:])}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| annotation | labelled pixels | " + " | ".join(columns) + " |",
             "|---|---|" + "---|" * len(columns)]
    for row in rows:
        pixels = next(mean_labelled(data, found) for (r, _), (data, found) in grid.items() if r == row)
        texts = []
        for column in columns:
            if (row, column) not in grid:
                texts.append("not run")
                continue
            found = grid[row, column][1]
            text = f"{np.mean([f['dice_fg'] for f in found.values()]):.3f}"
            common = [r for r in found if r in ref]
            if found is not ref and len(found) > 1 and common:
                diff = [found[r]["dice_fg"] - ref[r]["dice_fg"] for r in common]
                text += f" ({np.mean(diff):+.3f}, {sum(d > 0 for d in diff)} of {len(diff)})"
            elif found is not ref:
                text += " (1 run)"
            if 1 < len(found) < len(ref):
                text += f" ({len(found)} rounds)"
            texts.append(text)
        lines.append(f"| {row} | {pixels / 1e3:.0f} k | " + " | ".join(texts) + " |")
    lines += ["", "Cells: " + "; ".join(f"{r}, {c} = `{d}={e}`" for r, c, d, _, e in cells)]
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
