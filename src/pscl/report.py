"""``pscl report PRED_DIR``: what a metallographer reports, from the output of ``pscl predict``.

Reads ``predictions.json`` and the masks, and writes into ``PRED_DIR/report`` (or ``out``):

* ``report.html``: one self-contained page (images inlined, no server, no network): overlays with a
  legend, the phase-fraction table per sample with 95 % CIs (:mod:`pscl.phases`), per-image
  fractions (beside the ground truth when ``truth`` masks are given), particle statistics and size
  histograms (:mod:`pscl.particles`), the model and the calibration used;
* ``report.json``: the same numbers; ``fractions.csv`` (per image and per sample);
  ``particles.csv`` (one row per object).

Samples: by default, the images of one source folder form one sample; ``groups`` maps image stems
to sample names to say otherwise.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from pscl.calibration import Calibration
from pscl.data.io import DataError, read_mask, write_text
from pscl.particles import measure_objects, objects_csv, summarise
from pscl.phases import area_fractions, sample_fractions
from pscl.predict import PALETTE, PREDICTIONS_FILE


def _png_data_uri(array_or_path, max_width: int = 900) -> str:
    image = Image.open(array_or_path) if isinstance(array_or_path, (str, Path)) else Image.fromarray(array_or_path)
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _histograms(objects, classes: list[str], unit: str) -> str | None:
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
        colour = PALETTE[classes.index(name) % len(PALETTE)] / 255
        ax.hist(ecd, bins=min(30, max(5, len(ecd) // 3)), color=colour, edgecolor="black", linewidth=0.4)
        ax.set_title(f"{name} (n={len(ecd)})", fontsize=9)
        ax.set_xlabel(f"ECD [{unit}]", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("objects", fontsize=8)
    uri = _figure_uri(fig)
    plt.close(fig)
    return uri


def _fmt(v, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def _truth_mask(truth: Path, stem: str) -> Path | None:
    for folder in (truth, truth / "masks"):
        for suffix in (".png", ".tif", ".tiff"):
            if (folder / f"{stem}{suffix}").exists():
                return folder / f"{stem}{suffix}"
    return None


def make_report(pred_dir: str | Path, out: str | Path | None = None, groups: dict[str, str] | None = None,
                truth: str | Path | None = None, min_area_px: int = 5) -> dict:
    """Write the report of a prediction folder (see module doc); return its numbers."""
    pred_dir = Path(pred_dir)
    meta_path = pred_dir / PREDICTIONS_FILE
    if not meta_path.exists():
        raise DataError(f"{pred_dir}: no {PREDICTIONS_FILE} (run `pscl predict ... --out {pred_dir}` first)")
    meta = json.loads(meta_path.read_text())
    classes: list[str] = meta["classes"]
    out = Path(out) if out else pred_dir / "report"
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
        sample_rows[sample] = {"images": stems, "calibration": cal.to_dict(), "fractions": fr.to_dict(classes),
                               "particles": summarise(objects, counts, field_area, cal),
                               "histogram": _histograms(objects, classes, cal.length_unit)}
        with_truth = [s for s in stems if "true_fractions" in per_image[s]]
        if with_truth:  # compared on the same images: truth for some only is said, never mixed in
            sample_rows[sample]["true_fractions_mean"] = dict(zip(classes, np.mean(
                [per_image[s]["true_fractions"] for s in with_truth], 0).tolist()))
            sample_rows[sample]["predicted_on_truth_images"] = dict(zip(classes, np.mean(
                [per_image[s]["fractions"] for s in with_truth], 0).tolist()))
            sample_rows[sample]["truth_images"] = len(with_truth)
        all_objects += objects

    result = {"prediction_folder": str(pred_dir), "classes": classes, "model": meta.get("model"),
              "min_area_px": min_area_px, "samples": {k: {kk: vv for kk, vv in v.items() if kk != "histogram"}
                                                      for k, v in sample_rows.items()},
              "images": per_image}
    write_text(out / "report.json", json.dumps(result, indent=1, default=float))
    write_text(out / "fractions.csv", _fractions_csv(per_image, sample_rows, classes))
    write_text(out / "particles.csv", objects_csv(all_objects))
    write_text(out / "report.html", _html(pred_dir, meta, classes, per_image, sample_rows))
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
        groups[Path(row[0].strip()).stem] = row[1].strip()
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


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}.swatch{display:inline-block;width:1em;
height:1em;margin:0 4px 0 12px;vertical-align:middle;border:1px solid #444}figure{display:inline-block;margin:8px}
figcaption{font-size:small;text-align:center}.note{color:#555;font-size:small}"""


def _html(pred_dir: Path, meta: dict, classes: list[str], per_image: dict, samples: dict) -> str:
    e = html.escape
    legend = "".join(f'<span class="swatch" style="background:rgb{tuple(int(v) for v in PALETTE[i % len(PALETTE)])}">'
                     f"</span>{e(c)}" for i, c in enumerate(classes))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>pscl report: {e(pred_dir.name)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>Microstructure report: {e(str(pred_dir))}</h1>",
             f"<p>Model: <code>{e(json.dumps(meta.get('model', {}).get('run') or meta.get('model', {}).get('onnx')))}</code>; "
             f"tiles {meta.get('tile')} px, overlap {meta.get('overlap')} px.</p>", f"<p>Legend: {legend}</p>"]
    for name, s in samples.items():
        cal = s["calibration"]
        cal_text = (f"{cal['um_per_px']:.6g} µm/px (from {e(cal['source'])})" if cal["um_per_px"]
                    else "unknown: sizes in pixels")
        fr = s["fractions"]
        parts.append(f"<h2>Sample {e(name)}</h2><p>{fr['fields']} field(s); calibration: {cal_text}.</p>")
        head = "<tr><th>class</th><th>area fraction (mean)</th><th>95 % CI ±</th><th>rel. accuracy %</th>"
        head += "<th>expected (probabilities)</th>" if "expected" in fr else ""
        if "true_fractions_mean" in s:
            k = s["truth_images"]
            head += (f"<th>ground truth (mean)</th>" if k == fr["fields"] else
                     f"<th>predicted on the {k} of {fr['fields']} images with truth</th>"
                     f"<th>ground truth (those {k})</th>")
        rows = []
        for c in classes:
            cells = [fr["mean"][c], fr["ci95"][c], fr["relative_accuracy_percent"][c]]
            line = f"<tr><td>{e(c)}</td>" + "".join(f"<td>{_fmt(v, 2 if i == 2 else 4)}</td>" for i, v in enumerate(cells))
            line += f"<td>{_fmt(fr['expected'][c])}</td>" if "expected" in fr else ""
            if "true_fractions_mean" in s:
                line += "" if s["truth_images"] == fr["fields"] else f"<td>{_fmt(s['predicted_on_truth_images'][c])}</td>"
                line += f"<td>{_fmt(s['true_fractions_mean'][c])}</td>"
            rows.append(line + "</tr>")
        parts.append(f"<table class='fractions'>{head}</tr>{''.join(rows)}</table>")
        if fr["fields"] == 1:
            parts.append("<p class='note'>One field: no field-to-field variation, so no confidence interval. "
                         "Measure several fields per sample (ASTM E562).</p>")
        parts.append("<h3>Particles and grains (objects cut by the border counted apart, not sized)</h3>")
        ph = ("<tr><th>class</th><th>inside</th><th>border</th><th>specks</th><th>number density</th>"
              "<th>ECD mean</th><th>ECD median</th><th>ECD p10–p90</th><th>aspect ratio median</th></tr>")
        prow = []
        for c, p in s["particles"].items():
            ecd, ar = p["ecd"], p["aspect_ratio"]
            prow.append(f"<tr><td>{e(c)}</td><td>{p['inside']}</td><td>{p['border']}</td><td>{p['specks']}</td>"
                        f"<td>{p['number_density']:.4g} {e(p['number_density_unit'])}</td>"
                        f"<td>{_fmt(ecd.get('mean'), 3)} {e(p['length_unit'])}</td><td>{_fmt(ecd.get('median'), 3)}</td>"
                        f"<td>{_fmt(ecd.get('p10'), 3)}–{_fmt(ecd.get('p90'), 3)}</td><td>{_fmt(ar.get('median'), 2)}</td></tr>")
        parts.append(f"<table class='particles'>{ph}{''.join(prow)}</table>")
        if s.get("histogram"):
            parts.append(f"<figure><img class='histogram' alt='ECD histograms {e(name)}' src='{s['histogram']}'>"
                         f"<figcaption>Equivalent circle diameter of the objects inside the fields</figcaption></figure>")
        parts.append("<h3>Fields</h3><table class='images'><tr><th>image</th>"
                     + "".join(f"<th>{e(c)}</th>" for c in classes) + "<th>data bar rows cut</th></tr>")
        for stem in s["images"]:
            row = per_image[stem]
            truth = row.get("true_fractions")
            cells = "".join(f"<td>{v:.4f}" + (f" <span class='note'>(truth {t:.4f})</span>" if truth else "") + "</td>"
                            for v, t in zip(row["fractions"], truth or row["fractions"]))
            parts.append(f"<tr><td>{e(stem)}</td>{cells}<td>{row['data_bar_rows']}</td></tr>")
        parts.append("</table>")
        for stem in s["images"]:
            overlay = pred_dir / f"{stem}_overlay.png"
            if overlay.exists():
                parts.append(f"<figure><img class='overlay' alt='{e(stem)}' src='{_png_data_uri(overlay, 420)}'>"
                             f"<figcaption>{e(stem)}</figcaption></figure>")
    # lets a headless browser (and the tests) confirm that every inlined image decodes
    parts.append("<script>window.addEventListener('load',()=>{const i=[...document.images];"
                 "document.body.dataset.imagesDecoded=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
                 "document.body.dataset.imagesTotal=i.length;});</script></body></html>")
    return "\n".join(parts)
