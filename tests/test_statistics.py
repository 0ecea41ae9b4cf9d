"""Phase fractions with confidence intervals, and particle statistics, against known truth."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pscl.calibration import Calibration
from pscl.particles import measure_objects, objects_csv, summarise
from pscl.phases import area_fractions, sample_fractions


def test_area_fractions_exact_and_ignore():
    labels = np.zeros((10, 10), np.uint8)
    labels[:3] = 1  # 30 %
    labels[9, :5] = 255  # ignored pixels leave the denominator
    f = area_fractions(labels, 3)
    assert f == pytest.approx([65 / 95, 30 / 95, 0.0])


def test_sample_ci_is_the_student_t_interval_and_covers_the_truth():
    per_field = np.array([[0.70, 0.30], [0.62, 0.38], [0.66, 0.34], [0.74, 0.26]])
    s = sample_fractions(per_field)
    sd = per_field[:, 1].std(ddof=1)
    assert s.mean[1] == pytest.approx(0.32)
    assert s.ci95[1] == pytest.approx(stats.t.ppf(0.975, 3) * sd / 2)
    assert s.relative_accuracy[1] == pytest.approx(100 * s.ci95[1] / 0.32)
    # coverage: fields drawn around a known fraction; the 95 % interval holds it ~95 % of the time
    rng = np.random.default_rng(0)
    truth, hits = 0.25, 0
    for _ in range(2000):
        fields = np.clip(rng.normal(truth, 0.05, size=(5, 1)), 0, 1)
        s = sample_fractions(np.hstack([fields, 1 - fields]))
        hits += abs(s.mean[0] - truth) <= s.ci95[0]
    assert 0.93 < hits / 2000 < 0.97


def test_one_field_has_no_interval_and_expected_fraction_is_kept():
    s = sample_fractions(np.array([[0.4, 0.6]]), expected_per_field=np.array([[0.45, 0.55]]))
    assert np.all(np.isnan(s.ci95)) and s.fields == 1
    assert s.expected == pytest.approx([0.45, 0.55])
    d = s.to_dict(["a", "b"])
    assert d["ci95"] == {"a": None, "b": None}
    with pytest.raises(ValueError):
        sample_fractions(np.zeros((0, 2)))


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
