"""Phase (area) fractions per image and per sample, with the uncertainty from field-to-field variation.

A sample is measured on several fields (images). As in ASTM E562 / E1245, the sample's fraction of
a phase is the mean of the per-field fractions, and its 95 % confidence interval comes from their
spread with Student's t (the fields are few):

    CI95 = t(0.975, n - 1) * s / sqrt(n),        relative accuracy %RA = 100 * CI95 / mean

where s is the standard deviation of the n per-field fractions. With one field there is no
field-to-field variation to measure: the interval is reported as undefined (NaN), never as zero.
Where the model gives probabilities, the expected fraction (the mean class probability over
the pixels) is reported beside the hard-label fraction: a large gap flags an unsure segmentation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


def area_fractions(labels: np.ndarray, num_classes: int, ignore: int | None = 255) -> np.ndarray:
    """Area fraction of each class in a label map (pixels equal to ``ignore`` are left out)."""
    values = labels.ravel()
    if ignore is not None:
        values = values[values != ignore]
    if values.size == 0:
        return np.full(num_classes, np.nan)
    return np.bincount(values, minlength=num_classes)[:num_classes] / values.size


@dataclass
class SampleFractions:
    """Per-class fractions of one sample over its fields: mean, std, 95 % CI half-width, %RA."""

    fields: int
    mean: np.ndarray
    std: np.ndarray
    ci95: np.ndarray
    relative_accuracy: np.ndarray  # percent
    expected: np.ndarray | None = None  # mean class probability, when the model gave it

    def to_dict(self, classes: list[str]) -> dict:
        def per_class(a):
            return {c: (None if not np.isfinite(v) else float(v)) for c, v in zip(classes, a)}
        out = {"fields": self.fields, "mean": per_class(self.mean), "std": per_class(self.std),
               "ci95": per_class(self.ci95), "relative_accuracy_percent": per_class(self.relative_accuracy)}
        if self.expected is not None:
            out["expected"] = per_class(self.expected)
        return out


def sample_fractions(per_field: np.ndarray, expected_per_field: np.ndarray | None = None,
                     confidence: float = 0.95) -> SampleFractions:
    """Mean fraction and its t-interval over fields (see module doc).

    >>> s = sample_fractions(np.array([[0.6, 0.4], [0.7, 0.3], [0.8, 0.2]]))
    >>> np.round(s.mean, 3).tolist(), np.round(s.ci95, 3).tolist()
    ([0.7, 0.3], [0.248, 0.248])
    """
    per_field = np.asarray(per_field, dtype=np.float64)
    if per_field.ndim != 2 or len(per_field) == 0:
        raise ValueError(f"expected an (images, classes) array of fractions, got shape {per_field.shape}")
    n = len(per_field)
    mean = per_field.mean(0)
    if n > 1:
        std = per_field.std(0, ddof=1)
        ci = stats.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n)
    else:
        std = ci = np.full(per_field.shape[1], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        ra = np.where(mean > 0, 100.0 * ci / mean, np.nan)
    expected = None if expected_per_field is None else np.asarray(expected_per_field, np.float64).mean(0)
    return SampleFractions(n, mean, std, ci, ra, expected)
