"""``pscl report PRED_DIR``: what a metallographer reports, from the output of ``pscl predict``.

Reads ``predictions.json`` and the masks, and writes into ``PRED_DIR/report`` (or ``out``):

* ``report.html``: one self-contained page (images inlined, no server, no network): overlays with a
  legend, the phase-fraction table per sample with 95 % CIs (:mod:`pscl.metallography.phases`), per-image
  fractions (beside the ground truth when ``truth`` masks are given), particle statistics and size
  histograms (:mod:`pscl.metallography.particles`), the model and the calibration used;
* ``report.json``: the same numbers; ``fractions.csv`` (per image and per sample);
  ``particles.csv`` (one row per object).

Samples: by default, the images of one source folder form one sample; ``groups`` maps image stems
to sample names to say otherwise.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
from pscl.data.calibration import Calibration
from pscl.data.io import normalize_intensity, read_image, read_mask
from pscl.errors import DataError
from pscl.files import write_text
from pscl.lock import folder_lock
from pscl.metrics import confusion_matrix, scores
from pscl.metallography.particles import measure_objects, objects_csv, summarise
from pscl.metallography.phases import area_fractions, sample_fractions
from pscl.inference.overlay import class_colours
from pscl.inference.predict import PREDICTIONS_FILE
from pscl.metallography.report_html import figure_uri, render

# an area fraction this far (absolute) from the probability-expected one flags an unsure phase
UNSURE_GAP = 0.05


def continuous_classes(classes: list[str], named: list[str] | None = None) -> set[str]:
    """Phases that form a connected background (a matrix): no number density is reported for
    them. ``named`` (``--continuous``), else every class whose name contains "matrix"."""
    if named:
        unknown = [c for c in named if c not in classes]
        if unknown:
            raise DataError(f"--continuous names classes the model does not have: {', '.join(unknown)} "
                            f"(it has {', '.join(classes)})")
        return set(named)
    return {c for c in classes if "matrix" in c.lower()}


def _raw_micrograph(info: dict) -> np.ndarray | None:
    """A field's micrograph as shown beside its overlay (uint8, data bar cut), None if unreadable."""
    try:
        image = read_image(info["source"])
    except (DataError, OSError):
        return None
    rows = info.get("data_bar_rows", 0)
    image = image[:-rows] if rows else image
    return (np.clip(normalize_intensity(image), 0, 1) * 255).astype(np.uint8)


def _histograms(objects, classes: list[str], unit: str, palette) -> str | None:
    """One figure: the ECD histogram of the inside objects of every class that has some."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [c for c in classes if any(o.cls == c and not o.touches_border for o in objects)]
    if not shown:
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.6), squeeze=False)
    for ax, name in zip(axes[0], shown):
        ecd = [o.ecd for o in objects if o.cls == name and not o.touches_border]
        colour = palette[classes.index(name)] / 255
        ax.hist(ecd, bins=min(30, max(5, len(ecd) // 3)), color=colour, edgecolor="black", linewidth=0.4)
        ax.set_title(f"{name} (n={len(ecd)})", fontsize=9)
        ax.set_xlabel(f"ECD [{unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("objects", fontsize=8)
    uri = figure_uri(fig)
    plt.close(fig)
    return uri


def _truth_mask(truth: Path, stem: str) -> Path | None:
    for folder in (truth, truth / "masks"):
        for suffix in (".png", ".tif", ".tiff"):
            if (folder / f"{stem}{suffix}").exists():
                return folder / f"{stem}{suffix}"
    return None


def make_report(pred_dir: str | Path, out: str | Path | None = None, groups: dict[str, str] | None = None,
                truth: str | Path | None = None, min_area_px: int = 5, continuous: list[str] | None = None) -> dict:
    """Write the report of a prediction folder (see module doc); return its numbers.
    ``continuous``: phases with no number density (default: those named like "matrix"). The ``out``
    folder is held by this process while the report is made (:func:`pscl.lock.folder_lock`)."""
    pred_dir = Path(pred_dir)
    meta_path = pred_dir / PREDICTIONS_FILE
    if not meta_path.exists():
        raise DataError(f"{pred_dir}: no {PREDICTIONS_FILE} (run `pscl predict ... --out {pred_dir}` first)")
    out = Path(out) if out else pred_dir / "report"
    with folder_lock(out):
        return _report(pred_dir, meta_path, out, groups, truth, min_area_px, continuous)


def _report(pred_dir: Path, meta_path: Path, out: Path, groups: dict[str, str] | None, truth, min_area_px: int,
            continuous: list[str] | None) -> dict:
    """:func:`make_report`'s work, holding the ``out`` folder."""
    meta = json.loads(meta_path.read_text())
    classes: list[str] = meta["classes"]
    continuous_set = continuous_classes(classes, continuous)
    truth = Path(truth) if truth else None
    images = meta["images"]
    if not images:
        raise DataError(f"{meta_path}: no images")
    if truth is not None:
        if not truth.is_dir():
            raise DataError(f"{truth}: --truth is not a folder of masks (or a dataset folder)")
        if not any(_truth_mask(truth, stem) for stem in images):
            raise DataError(f"{truth}: --truth holds no mask named like the predicted images "
                            f"(e.g. {next(iter(images))}.png)")
    unknown = sorted(set(groups or {}) - set(images))
    if unknown:
        raise DataError(f"--groups names images that are not in {pred_dir}: {', '.join(unknown)}")
    samples: dict[str, list[str]] = {}
    for stem, info in images.items():
        name = (groups or {}).get(stem) or Path(info["source"]).parent.name
        samples.setdefault(name, []).append(stem)

    per_image, all_objects, sample_rows = {}, [], {}
    for sample, stems in samples.items():
        calibrations = {json.dumps(images[s]["calibration"]["um_per_px"]) for s in stems}
        # one sample, one unit: mixed or missing calibration falls back to pixels for the whole sample
        uniform = len(calibrations) == 1 and images[stems[0]]["calibration"]["um_per_px"] is not None
        cal = Calibration(images[stems[0]]["calibration"]["um_per_px"], images[stems[0]]["calibration"]["source"]) \
            if uniform else Calibration(None, "none")
        objects, counts, field_area = [], {}, 0.0
        truth_confusion = np.zeros((len(classes),) * 2, dtype=np.int64)
        for stem in stems:
            mask_path = pred_dir / f"{stem}_mask.png"
            labels = read_mask(mask_path)
            row = {"sample": sample, "fractions": area_fractions(labels, len(classes)).tolist(),
                   "expected_fractions": images[stem].get("expected_fractions"),
                   "data_bar_rows": images[stem]["data_bar_rows"], "calibration": images[stem]["calibration"]}
            if truth is not None:
                found = _truth_mask(truth, stem)
                if found is not None:
                    true = read_mask(found)
                    if ((true >= len(classes)) & (true != 255)).any():
                        raise DataError(f"{found}: class index {int(true[true != 255].max())} out of range for "
                                        f"the model's {len(classes)} classes")
                    true = true[:labels.shape[0]] if true.shape[0] >= labels.shape[0] else true
                    if true.shape != labels.shape:
                        raise DataError(f"{found}: mask size {true.shape} differs from the prediction's {labels.shape}")
                    row["true_fractions"] = area_fractions(true, len(classes)).tolist()
                    truth_confusion += confusion_matrix(labels, true, len(classes))
            per_image[stem] = row
            objs, cnt = measure_objects(labels, classes, cal, stem, min_area_px)
            objects += objs
            for c, v in cnt.items():
                counts.setdefault(c, {"inside": 0, "border": 0, "specks": 0})
                for k in v:
                    counts[c][k] += v[k]
            field_area += labels.size
        fr = sample_fractions(np.array([per_image[s]["fractions"] for s in stems]),
                              np.array([per_image[s]["expected_fractions"] for s in stems])
                              if all(per_image[s]["expected_fractions"] for s in stems) else None)
        fractions = fr.to_dict(classes)
        sample_rows[sample] = {"images": stems, "calibration": cal.to_dict(), "fractions": fractions,
                               "particles": {c: {**p, "number_density": None} if c in continuous_set else p
                                             for c, p in summarise(objects, counts, field_area, cal).items()},
                               "histogram": _histograms(objects, classes, cal.length_unit,
                                                          class_colours(len(classes), meta.get("colours")))}
        with_truth = [s for s in stems if "true_fractions" in per_image[s]]
        if with_truth:  # compared on the same images: truth for some only is said, never mixed in
            sample_rows[sample]["true_fractions_mean"] = dict(zip(classes, np.mean(
                [per_image[s]["true_fractions"] for s in with_truth], 0).tolist()))
            sample_rows[sample]["predicted_on_truth_images"] = dict(zip(classes, np.mean(
                [per_image[s]["fractions"] for s in with_truth], 0).tolist()))
            sample_rows[sample]["truth_images"] = len(with_truth)
            agreement = scores(truth_confusion, classes)
            sample_rows[sample]["dice_vs_truth"] = {c: v["dice"] for c, v in agreement["per_class"].items()}
            sample_rows[sample]["dice_fg_vs_truth"] = agreement["dice_fg"]
        if "expected" in fractions:
            sample_rows[sample]["uncertain_classes"] = [
                c for c in classes if fractions["expected"][c] is not None
                and abs(fractions["mean"][c] - fractions["expected"][c]) > UNSURE_GAP]
        all_objects += objects

    from datetime import datetime, timezone

    from pscl import __version__
    created = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "pscl": __version__}
    result = {"prediction_folder": str(pred_dir), "classes": classes, "model": meta.get("model"), **created,
              "continuous_classes": sorted(continuous_set),
              "min_area_px": min_area_px, "samples": {k: {kk: vv for kk, vv in v.items() if kk != "histogram"}
                                                      for k, v in sample_rows.items()},
              "images": per_image}
    write_text(out / "report.json", json.dumps(result, indent=1, default=float))
    write_text(out / "fractions.csv", _fractions_csv(per_image, sample_rows, classes))
    write_text(out / "particles.csv", objects_csv(all_objects))
    raw = {stem: _raw_micrograph(images[stem]) for stem in per_image}
    write_text(out / "report.html", render(pred_dir, meta, classes, per_image, sample_rows, raw, created,
                                           continuous_set))
    result["out"] = str(out)
    return result


def read_groups(path: str | Path) -> dict[str, str]:
    """A CSV of ``image,sample`` rows (image stems; a header row is allowed) as {stem: sample}."""
    path = Path(path)
    try:
        rows = [r for r in csv.reader(path.read_text().splitlines()) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise DataError(f"{path}: unreadable groups file ({exc})") from exc
    groups = {}
    for n, row in enumerate(rows, 1):
        if len(row) < 2:
            raise DataError(f"{path}: line {n} must be 'image,sample', got {row}")
        if n == 1 and [c.strip().lower() for c in row[:2]] == ["image", "sample"]:
            continue
        stem = Path(row[0].strip()).stem
        if stem in groups:
            raise DataError(f"{path}: line {n} lists image {stem!r} again (first in sample {groups[stem]!r}); "
                            "each image belongs to one sample")
        groups[stem] = row[1].strip()
    return groups


def _fractions_csv(per_image: dict, samples: dict, classes: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["row", "sample", "statistic", *classes])
    for stem, row in per_image.items():
        w.writerow([stem, row["sample"], "fraction", *(f"{v:.6f}" for v in row["fractions"])])
        if "true_fractions" in row:
            w.writerow([stem, row["sample"], "true_fraction", *(f"{v:.6f}" for v in row["true_fractions"])])
    for name, s in samples.items():
        for stat in ("mean", "ci95", "relative_accuracy_percent", "expected"):
            if stat in s["fractions"]:
                w.writerow([f"sample:{name}", name, stat,
                            *("" if s["fractions"][stat][c] is None else f"{s['fractions'][stat][c]:.6f}" for c in classes)])
    return buf.getvalue()


