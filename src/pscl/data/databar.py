"""The SEM information band ("data bar") at the bottom of a micrograph, and how to cut it off.

SEMs (FEI/Thermo, Zeiss, JEOL, Tescan) write magnification, voltage, detector and a scale bar into a
band below the specimen area: a uniform dark or bright background with text, e.g. 65 rows under a
1024 x 703 specimen area in a 1024 x 768 original. It is not microstructure: left in, it is
segmented as some phase, counted in the phase fractions and learnt as a texture. pscl removes it
from training, prediction and statistics.

Detection: a row belongs to the band when at least ``flat_share`` of its pixels lie within
``tolerance`` of the row's median (the band's background; text covers less than half a row),
which noisy specimen rows never reach. The band is the tallest run of rows at the bottom, at most
``max_share`` of the height and at least ``min_rows`` tall, in which at least 80 % of the rows are
flat, starting at a flat row (text lines may break the run; the specimen above may not), and
above which most rows are not flat (a flat, featureless image has no band).
"""
from __future__ import annotations

import numpy as np

from pscl.errors import DataError


def flat_rows(image: np.ndarray, tolerance: float = 2.5 / 255, flat_share: float = 0.5) -> np.ndarray:
    """Boolean per row: is the row mostly one flat grey level (band background)?"""
    median = np.median(image, axis=1, keepdims=True)
    return (np.abs(image - median) <= tolerance).mean(1) >= flat_share


def detect_data_bar(image: np.ndarray, max_share: float = 0.3, min_rows: int = 8,
                    tolerance: float = 2.5 / 255, flat_share: float = 0.5) -> int:
    """Height in rows of the information band at the bottom of a raw grey ``image`` (0 if none).

    ``image`` is the grey float image in its raw 0..1 scale (``read_image``), before intensity
    normalisation, so that ``tolerance`` means grey levels.

    >>> img = np.random.default_rng(0).uniform(0.2, 0.8, (100, 120)).astype(np.float32)
    >>> img[80:] = 0.0; img[85:90, 10:40] = 1.0   # a black band with a line of "text"
    >>> detect_data_bar(img)
    20
    """
    h = image.shape[0]
    flat = flat_rows(image, tolerance, flat_share)
    best = 0
    limit = int(h * max_share)
    flat_count = 0
    for height in range(1, limit + 1):  # height = rows from the bottom
        flat_count += bool(flat[h - height])
        if flat[h - height] and flat_count >= 0.8 * height:
            best = height
    if best < min_rows or flat[:h - best].mean() >= 0.5:  # a flat image has no band, it is all "band"
        return 0
    return best


def rows_to_cut(image: np.ndarray, crop_bottom: int | str | None, source: object = "<array>") -> int:
    """Resolve a ``crop_bottom`` setting (None or 0: keep all; int: that many rows; "auto": detect)."""
    if crop_bottom is None:
        return 0
    if crop_bottom == "auto":
        return detect_data_bar(image)
    try:
        rows = int(crop_bottom)
    except (TypeError, ValueError):
        raise DataError(f"{source}: crop_bottom must be 'auto' or a number of rows, got {crop_bottom!r}") from None
    if not 0 <= rows < image.shape[0]:
        raise DataError(f"{source}: cannot cut {rows} bottom rows from an image of height {image.shape[0]}")
    return rows


def cut_data_bar(image: np.ndarray, crop_bottom: int | str | None, source: object = "<array>") -> tuple[np.ndarray, int]:
    """``image`` without its bottom band (see :func:`rows_to_cut`) and the number of rows cut."""
    rows = rows_to_cut(image, crop_bottom, source)
    return (image[:image.shape[0] - rows] if rows else image), rows
