"""Particle statistics (count, size in micrometres, shape) against discs and ellipses of known size."""
from __future__ import annotations

import numpy as np
import pytest

from pscl.data.calibration import Calibration
from pscl.metallography.particles import measure_objects, objects_csv, summarise


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    labels = np.zeros(shape, np.uint8)
    for cy, cx in centres:
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = 1
    return labels


def test_discs_counted_and_sized_in_micrometres():
    # 6 discs of radius 20 px inside, 2 cut by the border, at 0.05 µm/px: ECD 2 µm each
    inside = [(50, 50), (50, 150), (50, 250), (150, 50), (150, 150), (150, 250)]
    cut = [(0, 350), (199, 350)]
    labels = _discs((200, 400), inside + cut, 20)
    labels[100, 390] = 1  # a one-pixel speck
    cal = Calibration(0.05, "user")
    objects, counts = measure_objects(labels, ["matrix", "precipitate"], cal, "img", skip=(0,))
    assert counts["precipitate"] == {"inside": 6, "border": 2, "specks": 1}
    summary = summarise(objects, counts, labels.size, cal)["precipitate"]
    assert summary["ecd"]["n"] == 6
    assert summary["ecd"]["mean"] == pytest.approx(2.0, rel=0.02)  # digitised discs: within 2 %
    assert summary["aspect_ratio"]["median"] == pytest.approx(1.0, abs=0.05)
    field_mm2 = 200 * 400 * 0.05 ** 2 / 1e6
    assert summary["number_density"] == pytest.approx((6 + 2 / 2) / field_mm2)
    assert summary["number_density_unit"] == "1/mm²" and summary["length_unit"] == "µm"
    rows = objects_csv(objects).splitlines()
    assert rows[0].startswith("image,class,id,area,ecd") and len(rows) == 1 + 8


def test_elongated_particles_and_pixel_units():
    labels = np.zeros((100, 100), np.uint8)
    labels[40:50, 20:80] = 1  # 10 x 60 rectangle
    objects, counts = measure_objects(labels, ["m", "p"], Calibration(None), skip=(0,))
    summary = summarise(objects, counts, labels.size, Calibration(None))["p"]
    assert summary["aspect_ratio"]["median"] == pytest.approx(6.0, rel=0.05)
    assert summary["area"]["mean"] == 600 and summary["area_unit"] == "px²"
