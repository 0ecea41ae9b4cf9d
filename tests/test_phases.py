"""Phase fractions with confidence intervals, against known truth."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pscl.metallography.phases import area_fractions, sample_fractions


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
