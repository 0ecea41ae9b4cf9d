"""``OUT/figure.png`` of a bench: Dice (fg) per method over rounds as box plots, and one test image
with the ground truth and every method's prediction side by side (of the round most methods still
have models of: round 0 after an uninterrupted run; run folders are not committed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pscl.bench.learners import learner_for
from pscl.bench.layout import BenchFolder
from pscl.bench.spec import Method, is_full
from pscl.files import atomic_write


def _model(out: Path, spec: str, round_index: int):
    """(learner, run folder) of a method's round, and whether that run holds a model on this machine."""
    learner = learner_for(Method.parse(spec).name)
    run = BenchFolder(out).run(spec, f"round{round_index}")
    return learner, run, learner.model_file(run).exists()


def _has_model(out: Path, spec: str, round_index: int) -> bool:
    return _model(out, spec, round_index)[2]


def _prediction(out: Path, spec: str, round_index: int, image: np.ndarray) -> np.ndarray | None:
    learner, run, present = _model(out, spec, round_index)
    return learner.segment(run, image) if present else None


def _shown_round(out: Path, methods: list[str], rounds: int) -> int:
    """The round whose models are shown: the one most methods still have on disk (a bench resumed
    on another machine may lack the first rounds'), lowest first."""
    return max(range(rounds), key=lambda r: (sum(_has_model(out, m, r) for m in methods), -r))


def figure(out: str | Path, ds, summary: dict, stem: str | None = None) -> Path | None:
    """``OUT/figure.png``: box plots of Dice (fg) over rounds, and predictions on one test image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from pscl.inference.overlay import PALETTE

    out = Path(out)
    methods = list(summary["methods"])
    if not methods:
        return None
    stem = stem or ds.stems("test")[0]
    image, mask = ds.load_pair(stem)
    shown = _shown_round(out, methods, max(len(summary["methods"][m]["rounds"]) for m in methods))
    panels = [(m, _prediction(out, m, 0 if is_full(m) else shown, image)) for m in methods]
    panels = [(m, p) for m, p in panels if p is not None]
    columns = max(4, len(panels) + 2)
    fig = plt.figure(figsize=(2.4 * columns, 6.2))
    grid = fig.add_gridspec(2, columns, height_ratios=[1.1, 1])
    ax = fig.add_subplot(grid[0, :])
    values = [[r["dice_fg"] for r in summary["methods"][m]["rounds"]] for m in methods]
    ax.boxplot(values, showmeans=True)
    ax.set_xticks(range(1, len(methods) + 1), methods, fontsize=8)
    for i, v in enumerate(values, 1):
        ax.scatter(np.full(len(v), i), v, s=10, color="black", zorder=3)
    ax.set_ylabel("Dice (fg), test")
    ax.set_title(f"{summary['dataset']}: {summary['shots']} annotated image(s), rounds as points, "
                 f"profile {summary['profile']}", fontsize=9)
    cmap = ListedColormap(PALETTE[:max(len(ds.classes), 2)] / 255)
    truth = np.where(mask == 255, 0, mask)
    tiles = [("image", None), ("ground truth", truth)] + [(f"{m} (round {0 if m == 'full' else shown})", p)
                                                           for m, p in panels]
    for i, (title, labels) in enumerate(tiles):
        a = fig.add_subplot(grid[1, i])
        if labels is None:
            a.imshow(image, cmap="gray")
        else:
            a.imshow(labels, cmap=cmap, vmin=0, vmax=cmap.N - 1, interpolation="nearest")
        a.set_title(title, fontsize=8)
        a.axis("off")
    fig.suptitle(f"test image {stem}", fontsize=8, y=0.02)
    fig.tight_layout()
    path = atomic_write(BenchFolder(out).figure, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    return path
