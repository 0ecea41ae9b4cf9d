"""Pixel size from SEM TIFF metadata, ImageJ and resolution tags."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pscl.data.calibration import Calibration, read_calibration
from pscl.files import write_png


def test_fei_zeiss_imagej_and_cm_calibrations(tmp_path):
    a = np.zeros((16, 16), np.uint8)
    tifffile.imwrite(tmp_path / "fei.tif", a, extratags=[(34682, "s", 0, "[Scan]\nPixelWidth=2.5e-08\n", True)])
    tifffile.imwrite(tmp_path / "zeiss.tif", a, extratags=[(34118, "s", 0, "0\nAP_IMAGE_PIXEL_SIZE\nImage Pixel Size = 12.5 nm\n", True)])
    tifffile.imwrite(tmp_path / "ij.tif", a, imagej=True, resolution=(10.0, 10.0), metadata={"unit": "um"})
    tifffile.imwrite(tmp_path / "cm.tif", a, resolution=(2000, 2000), resolutionunit=3)
    tifffile.imwrite(tmp_path / "dpi.tif", a, resolution=(72, 72), resolutionunit=2)
    write_png(tmp_path / "plain.png", a)
    assert read_calibration(tmp_path / "fei.tif").um_per_px == pytest.approx(0.025)
    assert read_calibration(tmp_path / "fei.tif").source == "tiff:fei"
    assert read_calibration(tmp_path / "zeiss.tif").um_per_px == pytest.approx(0.0125)
    assert read_calibration(tmp_path / "ij.tif").um_per_px == pytest.approx(0.1)
    assert read_calibration(tmp_path / "cm.tif").um_per_px == pytest.approx(5.0)
    # 72 dpi is an editor's default, not a measurement; PNGs carry none
    assert not read_calibration(tmp_path / "dpi.tif").known
    assert read_calibration(tmp_path / "plain.png") == Calibration(None, "none")
    # the user's value wins over the file's
    assert read_calibration(tmp_path / "fei.tif", um_per_px=0.5) == Calibration(0.5, "user")
    with pytest.raises(ValueError, match="between 1e-06 and 10000"):
        read_calibration(tmp_path / "fei.tif", um_per_px=-1)


def test_calibration_units():
    cal = Calibration(0.5, "user")
    assert cal.length(10) == 5.0 and cal.area(100) == 25.0 and cal.length_unit == "µm"
    raw = Calibration(None)
    assert raw.length(10) == 10 and raw.area_unit == "px²"
