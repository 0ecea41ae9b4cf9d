"""The page of ``pscl report``: one self-contained HTML file (images inlined, no network) that a
metallographer can hand on. Numbers come from :func:`pscl.metallography.report.make_report`; this module only
renders them: header (date, pscl version, the model and what it was trained on), per sample the
phase fractions in % with 95 % CIs, warnings, Dice against the truth, particles with units, and
each field's raw micrograph beside its overlay, with a scale bar where the calibration is known.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pscl.inference.overlay import class_colours

THUMB = 420  # px: width of each field's pictures

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}.swatch{display:inline-block;width:1em;
height:1em;margin:0 4px 0 12px;vertical-align:middle;border:1px solid #444}figure{display:inline-block;margin:8px}
figcaption{font-size:small;text-align:center}.note{color:#555;font-size:small}
.warning{background:#fff3cd;border:1px solid #e0c060;padding:4px 8px}.field{display:flex;flex-wrap:wrap}"""


def png_data_uri(image: Image.Image | np.ndarray | str | Path, max_width: int = 900) -> str:
    """A PNG data URI of an image (array, PIL image or file), shrunk to ``max_width``."""
    if isinstance(image, (str, Path)):
        image = Image.open(image)
    elif isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def figure_uri(fig) -> str:
    """A PNG data URI of a matplotlib figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def scale_bar_length(width_um: float) -> float:
    """A round bar length (1, 2 or 5 x 10^k µm) of at most a quarter of the field width."""
    target = width_um / 4
    exponent = np.floor(np.log10(target))
    for mantissa in (5, 2, 1):
        if mantissa * 10 ** exponent <= target:
            return float(mantissa * 10 ** exponent)
    return float(10 ** exponent)


def with_scale_bar(image: Image.Image, um_per_px: float) -> tuple[Image.Image, float]:
    """``image`` (at full resolution) with a white, black-edged scale bar in its lower left corner,
    and the bar's length in µm."""
    length = scale_bar_length(image.width * um_per_px)
    bar_px = length / um_per_px
    image = image.convert("RGB")
    draw = ImageDraw.Draw(image)
    thick, margin = max(3, image.height // 80), max(6, image.width // 40)
    y1 = image.height - margin
    draw.rectangle([margin - 1, y1 - thick - 1, margin + bar_px + 1, y1 + 1], fill=(0, 0, 0))
    draw.rectangle([margin, y1 - thick, margin + bar_px, y1], fill=(255, 255, 255))
    return image, length


def _fmt(v, digits: int = 4) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{digits}f}"


def _size(distribution: dict, key: str, unit: str) -> str:
    v = distribution.get(key)
    return "–" if v is None else f"{v:.3f} {unit}".rstrip()


def _pct(v, digits: int = 2) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{100 * v:.{digits}f}"


def _model_summary(meta: dict, created: dict) -> str:
    e = html.escape
    model = meta.get("model") or {}
    config = model.get("config") or {}
    where = model.get("run") or model.get("onnx") or "?"
    trained = (f"trained on {len(config.get('annotated') or [])} annotated image(s) of "
               f"<code>{e(str(config.get('dataset', '?')))}</code> ({e(', '.join(config.get('annotated') or []))}), "
               f"{config.get('steps', '?')} steps, U-Net widths {e(str(config.get('widths', '?')))}"
               + (f", from pretraining <code>{e(str(config['init']))}</code>" if config.get("init") else ""))
    val = model.get("val_dice_fg")
    return (f"<p>Made {e(created['date'])} by pscl {e(created['pscl'])}. Model <code>{e(str(where))}</code>: "
            f"{trained}; val Dice (fg) {_fmt(val, 3) if val is not None else 'not recorded'}; "
            f"prediction in {e(str(model.get('precision', '?')))}, tiles {meta.get('tile')} px, overlap "
            f"{meta.get('overlap')} px{', TTA' if meta.get('tta') else ''}.</p>")


def _fractions_table(s: dict, classes: list[str]) -> list[str]:
    e = html.escape
    fr = s["fractions"]
    head = "<tr><th>class</th><th>area fraction (%)</th><th>95 % CI ± (%)</th><th>rel. accuracy (%)</th>"
    head += "<th>expected from probabilities (%)</th>" if "expected" in fr else ""
    if "true_fractions_mean" in s:
        k = s["truth_images"]
        head += ("<th>ground truth (%)</th>" if k == fr["fields"] else
                 f"<th>predicted on the {k} of {fr['fields']} images with truth (%)</th><th>ground truth, those {k} (%)</th>")
        head += "<th>Dice vs truth</th>"
    rows = []
    for c in classes:
        line = (f"<tr><td>{e(c)}</td><td>{_pct(fr['mean'][c])}</td><td>{_pct(fr['ci95'][c])}</td>"
                f"<td>{_fmt(fr['relative_accuracy_percent'][c], 1)}</td>")
        line += f"<td>{_pct(fr['expected'][c])}</td>" if "expected" in fr else ""
        if "true_fractions_mean" in s:
            line += "" if s["truth_images"] == fr["fields"] else f"<td>{_pct(s['predicted_on_truth_images'][c])}</td>"
            line += f"<td>{_pct(s['true_fractions_mean'][c])}</td><td>{_fmt(s['dice_vs_truth'][c], 3)}</td>"
        rows.append(line + "</tr>")
    out = [f"<table class='fractions'>{head}</tr>{''.join(rows)}</table>"]
    if "dice_vs_truth" in s:
        out.append(f"<p>Dice (fg) against the truth, pooled over the {s['truth_images']} field(s) with truth: "
                   f"<b>{_fmt(s['dice_fg_vs_truth'], 3)}</b>.</p>")
    for c in s.get("uncertain_classes", []):
        out.append(f"<p class='warning'>{e(c)}: the area fraction ({_pct(fr['mean'][c])} %) and the fraction the "
                   f"model's probabilities expect ({_pct(fr['expected'][c])} %) disagree strongly: the model is unsure "
                   "where this phase ends. Check the overlays before using this number.</p>")
    if fr["fields"] == 1:
        out.append("<p class='note'>One field: no field-to-field variation, so no confidence interval. "
                   "Measure several fields per sample (ASTM E562).</p>")
    return out


def _particles_table(s: dict, continuous: set[str]) -> list[str]:
    e = html.escape
    ph = ("<tr><th>class</th><th>inside</th><th>border</th><th>specks</th><th>number density</th>"
          "<th>ECD mean</th><th>ECD median</th><th>ECD p10–p90</th><th>aspect ratio median (–)</th></tr>")
    rows = []
    for c, p in s["particles"].items():
        ecd, ar, unit = p["ecd"], p["aspect_ratio"], e(p["length_unit"])
        density = ("– <span class='note'>(continuous phase)</span>" if c in continuous
                   else f"{p['number_density']:.4g} {e(p['number_density_unit'])}")
        rows.append(f"<tr><td>{e(c)}</td><td>{p['inside']}</td><td>{p['border']}</td><td>{p['specks']}</td>"
                    f"<td>{density}</td><td>{_size(ecd, 'mean', unit)}</td><td>{_size(ecd, 'median', unit)}</td>"
                    f"<td>{_size(ecd, 'p10', '')}–{_size(ecd, 'p90', unit)}</td>"
                    f"<td>{_fmt(ar.get('median'), 2)}</td></tr>")
    return ["<h3>Particles and grains (objects cut by the border counted apart, not sized)</h3>",
            f"<table class='particles'>{ph}{''.join(rows)}</table>"]


def _field_figures(pred_dir: Path, stem: str, row: dict, raw: np.ndarray | None) -> str:
    e = html.escape
    um = row["calibration"].get("um_per_px")
    pictures = []
    overlay = pred_dir / f"{stem}_overlay.png"
    for label, image in (("micrograph", None if raw is None else Image.fromarray(raw)),
                         ("segmentation", Image.open(overlay) if overlay.exists() else None)):
        if image is None:
            continue
        caption = f"{e(stem)}: {label}"
        if um:
            image, length = with_scale_bar(image, um)
            caption += f"; scale bar {length:g} µm"
        pictures.append(f"<figure><img class='{'raw' if label == 'micrograph' else 'overlay'}' alt='{caption}' "
                        f"src='{png_data_uri(image, THUMB)}'><figcaption>{caption}</figcaption></figure>")
    return f"<div class='field'>{''.join(pictures)}</div>"


def render(pred_dir: Path, meta: dict, classes: list[str], per_image: dict, samples: dict,
           raw_images: dict[str, np.ndarray | None], created: dict, continuous: set[str]) -> str:
    """The report page (see the module doc); ``raw_images``: each field's micrograph as uint8 (data
    bar cut) or None where its source is gone."""
    e = html.escape
    palette = class_colours(len(classes), meta.get("colours"))
    legend = "".join(f'<span class="swatch" style="background:rgb{tuple(int(v) for v in palette[i])}">'
                     f"</span>{e(c)}" for i, c in enumerate(classes))
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>pscl report: {e(pred_dir.name)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>Microstructure report: {e(str(pred_dir))}</h1>",
             _model_summary(meta, created), f"<p>Legend: {legend}</p>"]
    for name, s in samples.items():
        cal = s["calibration"]
        cal_text = (f"{cal['um_per_px']:.6g} µm/px (from {e(cal['source'])})" if cal["um_per_px"]
                    else "unknown: sizes in pixels")
        parts.append(f"<h2>Sample {e(name)}</h2><p>{s['fractions']['fields']} field(s); calibration: {cal_text}.</p>")
        parts += _fractions_table(s, classes)
        parts += _particles_table(s, continuous)
        if s.get("histogram"):
            parts.append(f"<figure><img class='histogram' alt='ECD histograms {e(name)}' src='{s['histogram']}'>"
                         f"<figcaption>Equivalent circle diameter of the objects inside the fields</figcaption></figure>")
        parts.append("<h3>Fields (area fractions, %)</h3><table class='images'><tr><th>image</th>"
                     + "".join(f"<th>{e(c)}</th>" for c in classes) + "<th>data bar rows cut</th></tr>")
        for stem in s["images"]:
            row = per_image[stem]
            truth = row.get("true_fractions")
            cells = "".join(f"<td>{_pct(v)}" + (f" <span class='note'>(truth {_pct(t)})</span>" if truth else "") + "</td>"
                            for v, t in zip(row["fractions"], truth or row["fractions"]))
            parts.append(f"<tr><td>{e(stem)}</td>{cells}<td>{row['data_bar_rows']}</td></tr>")
        parts.append("</table>")
        parts += [_field_figures(pred_dir, stem, per_image[stem], raw_images.get(stem)) for stem in s["images"]]
    # lets a headless browser (and the tests) confirm that every inlined image decodes
    parts.append("<script>window.addEventListener('load',()=>{const i=[...document.images];"
                 "document.body.dataset.imagesDecoded=i.filter(x=>x.complete&&x.naturalWidth>0).length;"
                 "document.body.dataset.imagesTotal=i.length;});</script></body></html>")
    return "\n".join(parts)


__all__ = ["png_data_uri", "figure_uri", "scale_bar_length", "with_scale_bar", "render"]
