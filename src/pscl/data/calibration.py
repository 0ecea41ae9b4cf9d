"""Pixel size of a micrograph: read from the file where the instrument recorded it, or given.

Sources, first found wins (after an explicit ``um_per_px``, which always wins):

* FEI / Thermo Fisher SEM TIFF tags (34680 SFEG, 34682 Helios): ``[Scan] PixelWidth`` in metres.
* Zeiss SEM TIFF tag 34118: ``AP_IMAGE_PIXEL_SIZE`` ("Image Pixel Size = 2.5 nm").
* ImageJ TIFFs: ``unit`` in the ImageJ description (micron, um, nm, mm) with the X resolution
  in pixels per unit.
* TIFF resolution tags with ResolutionUnit centimetre.

TIFF resolution in pixels per inch is *not* taken: 72, 96 or 300 dpi is what image editors write
by default, a screen or print setting rather than a measurement. PNG/JPEG carry no reliable
calibration. Without one, results stay in pixels and say so.
"""
from __future__ import annotations

import math

from dataclasses import asdict, dataclass
from pathlib import Path

_UNIT_IN_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "μm": 1.0, "micron": 1.0, "microns": 1.0,
               "nm": 1e-3, "pm": 1e-6, "cm": 1e4}


@dataclass(frozen=True)
class Calibration:
    """Micrometres per pixel (None: unknown, results in pixels) and where the value came from."""

    um_per_px: float | None
    source: str = "none"

    @property
    def known(self) -> bool:
        return self.um_per_px is not None

    @property
    def length_unit(self) -> str:
        return "µm" if self.known else "px"

    @property
    def area_unit(self) -> str:
        return "µm²" if self.known else "px²"

    def length(self, pixels: float) -> float:
        """A length in pixels, in µm when calibrated (else unchanged)."""
        return pixels * self.um_per_px if self.known else pixels

    def area(self, pixels: float) -> float:
        """An area in pixels, in µm² when calibrated (else unchanged)."""
        return pixels * self.um_per_px ** 2 if self.known else pixels

    def to_dict(self) -> dict:
        return {**asdict(self), "length_unit": self.length_unit}


def _positive(value: float | None) -> float | None:
    return float(value) if value is not None and float(value) > 0 else None


def _from_tiff(path: Path) -> Calibration | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            fei = tif.fei_metadata
            if fei:
                width = _positive(fei.get("Scan", {}).get("PixelWidth") or fei.get("EScan", {}).get("PixelWidth"))
                if width:
                    return Calibration(width * 1e6, "tiff:fei")
            sem = tif.sem_metadata
            if sem and "ap_image_pixel_size" in sem:
                entry = sem["ap_image_pixel_size"]
                if len(entry) >= 3 and str(entry[2]) in _UNIT_IN_UM and _positive(entry[1]):
                    return Calibration(float(entry[1]) * _UNIT_IN_UM[str(entry[2])], "tiff:zeiss")
            page = tif.pages[0]
            tags = page.tags
            if "XResolution" not in tags:
                return None
            num, den = tags["XResolution"].value
            px_per_unit = num / den if den else 0.0
            if px_per_unit <= 0:
                return None
            ij = tif.imagej_metadata or {}
            unit = str(ij.get("unit", "")).replace("\\u00B5", "µ")
            if unit in _UNIT_IN_UM:
                return Calibration(_UNIT_IN_UM[unit] / px_per_unit, "tiff:imagej")
            if "ResolutionUnit" in tags and int(tags["ResolutionUnit"].value) == 3:
                return Calibration(1e4 / px_per_unit, "tiff:resolution-cm")
    except Exception:  # metadata is optional: an odd tag never stops a prediction
        return None
    return None


# pixel sizes a micrograph can have (1 pm .. 1 cm per pixel): beyond them areas overflow or vanish
MIN_UM_PER_PX, MAX_UM_PER_PX = 1e-6, 1e4


def read_calibration(path: str | Path, um_per_px: float | None = None) -> Calibration:
    """The calibration of the micrograph at ``path`` (``um_per_px``, when given, overrides the file)."""
    if um_per_px is not None:
        if not (math.isfinite(um_per_px) and MIN_UM_PER_PX <= um_per_px <= MAX_UM_PER_PX):
            raise ValueError(f"--um-per-px must be a pixel size in micrometres between {MIN_UM_PER_PX:g} and "
                             f"{MAX_UM_PER_PX:g}, got {um_per_px}")
        return Calibration(float(um_per_px), "user")
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        found = _from_tiff(path)
        if found is not None and found.um_per_px is not None and MIN_UM_PER_PX <= found.um_per_px <= MAX_UM_PER_PX:
            return found
    return Calibration(None, "none")
