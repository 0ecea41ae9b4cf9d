"""Particle and grain statistics per class from a label map (scikit-image region properties).

Each class's connected regions (8-connectivity) are its objects: precipitates, grains of a phase,
defects. Per object: area, equivalent circle diameter ECD = sqrt(4 A / pi), aspect ratio
(major / minor axis of the moment ellipse), and whether it touches the image border.

Objects cut by the border have unknown true size: they are counted apart and left out of the
size statistics. The number density counts them as half an object each (the usual field
correction: on average, a cut object belongs half to the neighbouring field):

    N_A = (N_inside + N_border / 2) / field area          [per mm² when calibrated]

Objects below ``min_area_px`` pixels are segmentation specks, not particles: counted, not measured.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
from skimage.measure import label as connected_components, regionprops

from pscl.data.calibration import Calibration

OBJECT_FIELDS = ("image", "class", "id", "area", "ecd", "aspect_ratio", "centroid_y", "centroid_x", "touches_border")


@dataclass
class ParticleObject:
    image: str
    cls: str
    id: int
    area: float  # in calibrated units (µm²) or px²
    ecd: float  # µm or px
    aspect_ratio: float
    centroid_y: float  # px
    centroid_x: float  # px
    touches_border: bool


def measure_objects(labels: np.ndarray, classes: list[str], calibration: Calibration, image: str = "",
                    min_area_px: int = 5, skip: tuple[int, ...] = ()) -> tuple[list[ParticleObject], dict]:
    """Every object of every class (except class indices in ``skip``) of one label map.

    Returns the objects and per-class counts {class: {"inside", "border", "specks"}}.
    """
    h, w = labels.shape
    objects: list[ParticleObject] = []
    counts: dict[str, dict[str, int]] = {}
    for index, name in enumerate(classes):
        if index in skip:
            continue
        counts[name] = {"inside": 0, "border": 0, "specks": 0}
        components = connected_components(labels == index, connectivity=2)
        for region in regionprops(components):
            if region.area < min_area_px:
                counts[name]["specks"] += 1
                continue
            y0, x0, y1, x1 = region.bbox
            border = y0 == 0 or x0 == 0 or y1 == h or x1 == w
            counts[name]["border" if border else "inside"] += 1
            minor = region.axis_minor_length
            aspect = region.axis_major_length / minor if minor > 0 else float("inf")
            objects.append(ParticleObject(image, name, region.label, calibration.area(float(region.area)),
                                          calibration.length(float(np.sqrt(4 * region.area / np.pi))),
                                          float(aspect), float(region.centroid[0]), float(region.centroid[1]),
                                          bool(border)))
    return objects, counts


def _distribution(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    v = np.asarray(values, dtype=np.float64)
    p10, p50, p90 = np.percentile(v, [10, 50, 90])
    return {"n": int(v.size), "mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else None,
            "median": float(p50), "p10": float(p10), "p90": float(p90), "min": float(v.min()), "max": float(v.max())}


def summarise(objects: list[ParticleObject], counts: dict[str, dict[str, int]], field_area_px: float,
              calibration: Calibration) -> dict:
    """Per class: counts, number density and the size distributions of the inside objects.

    ``counts`` and ``field_area_px`` may cover several images (sum them).
    """
    area_mm2 = calibration.area(field_area_px) / 1e6 if calibration.known else None
    out = {}
    for name, c in counts.items():
        inside = [o for o in objects if o.cls == name and not o.touches_border]
        effective = c["inside"] + c["border"] / 2
        finite_aspect = [o.aspect_ratio for o in inside if np.isfinite(o.aspect_ratio)]
        out[name] = {**c,
                     "number_density": effective / area_mm2 if area_mm2 else effective / field_area_px,
                     "number_density_unit": "1/mm²" if area_mm2 else "1/px²",
                     "ecd": _distribution([o.ecd for o in inside]), "area": _distribution([o.area for o in inside]),
                     "aspect_ratio": _distribution(finite_aspect),
                     "length_unit": calibration.length_unit, "area_unit": calibration.area_unit}
    return out


def objects_csv(objects: list[ParticleObject]) -> str:
    """CSV text, one row per object (sizes in the calibration's units)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(OBJECT_FIELDS)
    for o in objects:
        writer.writerow([o.image, o.cls, o.id, f"{o.area:.6g}", f"{o.ecd:.6g}", f"{o.aspect_ratio:.4g}",
                         f"{o.centroid_y:.1f}", f"{o.centroid_x:.1f}", int(o.touches_border)])
    return buf.getvalue()
