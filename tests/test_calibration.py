"""Pixel size from SEM TIFF metadata, ImageJ and resolution tags; the SEM data bar."""
from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pscl.calibration import Calibration, read_calibration
from pscl.data.databar import detect_data_bar, rows_to_cut
from pscl.data.io import DataError, load_micrograph, write_png


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
    with pytest.raises(ValueError, match="positive"):
        read_calibration(tmp_path / "fei.tif", um_per_px=-1)


def test_calibration_units():
    cal = Calibration(0.5, "user")
    assert cal.length(10) == 5.0 and cal.area(100) == 25.0 and cal.length_unit == "µm"
    raw = Calibration(None)
    assert raw.length(10) == 10 and raw.area_unit == "px²"


def _sem_original(rng, height=768, width=1024, band=65, background=0.0):
    """A noisy specimen area above an instrument band: flat background, text blocks, a scale bar."""
    image = np.clip(rng.normal(0.5, 0.12, (height, width)), 0, 1).astype(np.float32)
    image[:height - band] = np.round(image[:height - band] * 255) / 255
    top = height - band
    image[top:] = background
    for x0 in range(20, width - 120, 160):  # text-like blocks
        image[top + 15:top + 28, x0:x0 + 90] = rng.choice([0.0, 1.0], size=(13, 90), p=[0.6, 0.4])
    image[top + 40:top + 44, 800:1000] = 1.0 - background  # scale bar
    return image


@pytest.mark.parametrize("background", [0.0, 1.0, 0.3])
def test_data_bar_found_on_the_uncropped_sem_geometry(background):
    image = _sem_original(np.random.default_rng(0), background=background)
    assert detect_data_bar(image) == 65


def test_no_data_bar_on_specimen_only_images():
    rng = np.random.default_rng(1)
    specimen = np.round(np.clip(rng.normal(0.5, 0.12, (703, 1024)), 0, 1) * 255) / 255
    assert detect_data_bar(specimen.astype(np.float32)) == 0
    # a dark pore reaching the bottom is not a band: it does not span the rows
    specimen[650:, 300:600] = 0.0
    assert detect_data_bar(specimen.astype(np.float32)) == 0
    assert detect_data_bar(np.full((200, 200), 0.4, np.float32)) == 0  # featureless: no band


def test_crop_bottom_settings_and_errors(tmp_path):
    image = _sem_original(np.random.default_rng(2))
    assert rows_to_cut(image, "auto") == 65
    assert rows_to_cut(image, 10) == 10 and rows_to_cut(image, None) == 0
    with pytest.raises(DataError, match="cannot cut 900"):
        rows_to_cut(image, 900, "x.png")
    with pytest.raises(DataError, match="'auto' or a number"):
        rows_to_cut(image, "lots", "x.png")
    write_png(tmp_path / "sem.png", (image * 255).astype(np.uint8))
    assert load_micrograph(tmp_path / "sem.png").shape == (703, 1024)
    assert load_micrograph(tmp_path / "sem.png", crop_bottom=None).shape == (768, 1024)


def test_dataset_folder_cuts_the_band_from_image_and_mask(tmp_path):
    import json

    from pscl.data.folders import load_dataset

    rng = np.random.default_rng(3)
    root = tmp_path / "sem"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    image = _sem_original(rng, height=300, width=256, band=40)
    mask = np.zeros((300, 256), np.uint8)
    mask[:130] = 1
    write_png(root / "images" / "a.png", (image * 255).astype(np.uint8))
    write_png(root / "masks" / "a.png", mask)
    (root / "dataset.json").write_text(json.dumps({"classes": ["m", "p"], "splits": {"train": ["a"]}}))
    img, msk = load_dataset(root).load_pair("a")
    assert img.shape == msk.shape == (260, 256)
    (root / "dataset.json").write_text(json.dumps({"classes": ["m", "p"], "splits": {"train": ["a"]},
                                                   "crop_bottom": None}))
    assert load_dataset(root).load_pair("a")[0].shape == (300, 256)
