"""Where to stroke next, once a model exists: the micrographs, and the places in them, the model is least sure of.

A fine-tuned run segments every micrograph no split lists as annotated, writing per pixel how unsure it is
(:class:`pscl.inference.tiling.Segmentation`: 1 - the top class probability, scaled so that 255 is an even
spread over the classes). Micrographs are ranked by their mean unsureness; in each, the :data:`WINDOW`-pixel
square with the highest mean is where a stroke teaches the model most of what it lacks. A label-free rule
(no val masks), used by `pscl suggest --run` and by the page's "Stroke next".
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from pscl.data.folders import load_dataset
from pscl.data.io import read_mask
from pscl.errors import DataError
from pscl.files import write_text

WINDOW = 128


def most_unsure_window(unsure: np.ndarray, window: int = WINDOW) -> tuple[int, int, float]:
    """(x, y, mean) of the ``window`` x ``window`` square (clipped to the image) of highest mean unsureness,
    on a grid of half-window steps."""
    h, w = unsure.shape
    size_y, size_x = min(window, h), min(window, w)
    integral = np.pad(unsure.astype(np.float64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    ys = np.unique(np.r_[np.arange(0, h - size_y + 1, max(1, size_y // 2)), h - size_y])
    xs = np.unique(np.r_[np.arange(0, w - size_x + 1, max(1, size_x // 2)), w - size_x])
    y, x = np.meshgrid(ys, xs, indexing="ij")
    sums = integral[y + size_y, x + size_x] - integral[y, x + size_x] - integral[y + size_y, x] + integral[y, x]
    i = np.unravel_index(np.argmax(sums), sums.shape)
    return int(x[i]), int(y[i]), float(sums[i] / (size_y * size_x) / 255)


def unsure_ranking(predictions: Path, stems: list[str]) -> list[dict]:
    """Every stem of ``stems`` with an ``<stem>_unsure.png`` in ``predictions``, most unsure first:
    {image, mean_unsure, x, y, window_unsure}."""
    rows = []
    for stem in stems:
        path = predictions / f"{stem}_unsure.png"
        if path.is_file():
            unsure = read_mask(path)  # (8-bit, one channel: read as masks are)
            x, y, peak = most_unsure_window(unsure)
            rows.append({"image": stem, "mean_unsure": round(float(unsure.mean()) / 255, 4), "x": x, "y": y,
                         "window": WINDOW, "window_unsure": round(peak, 4)})
    return sorted(rows, key=lambda r: -r["mean_unsure"])


def stroke_next(run: str | Path, data: str | Path, out: str | Path) -> list[dict]:
    """Segment the micrographs of ``data`` no split lists with ``run``'s model into ``out`` (masks, overlays,
    unsure maps) and write ``stroke_next.csv``/``.json``: the ranking of :func:`unsure_ranking`."""
    from pscl.inference.predict import predict
    ds = load_dataset(data)
    paths = ds.unlabeled_paths() if ds.labelled else [ds.image_path(s) for s in ds.splits["all"]]
    if not paths:
        raise DataError(f"{ds.root}: every micrograph is annotated; add micrographs to stroke next")
    out = Path(out)
    predict(run, paths, out, unsure=True)
    ranking = unsure_ranking(out, [p.stem for p in paths])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image", "mean_unsure", "x", "y", "window", "window_unsure"])
    writer.writeheader()
    writer.writerows(ranking)
    write_text(out / "stroke_next.csv", buf.getvalue())
    write_text(out / "stroke_next.json", json.dumps({"run": str(run), "dataset": str(ds.root), "ranking": ranking},
                                                    indent=1))
    return ranking


__all__ = ["WINDOW", "most_unsure_window", "stroke_next", "unsure_ranking"]
