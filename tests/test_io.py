import numpy as np
import pytest
import tifffile
from PIL import Image

from pscl.data import DataError, normalize_intensity, read_image, read_mask


def test_8bit_grey_png_is_divided_by_255(tmp_path):
    a = np.array([[0, 51], [204, 255]], dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), a / 255.0, atol=1e-7)


def test_16bit_png_and_tiff_are_divided_by_65535(tmp_path):
    a = np.array([[0, 1000], [30000, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "a.png")
    tifffile.imwrite(tmp_path / "a.tif", a)
    for name in ("a.png", "a.tif"):
        np.testing.assert_allclose(read_image(tmp_path / name), a / 65535.0, atol=1e-6)


def test_rgb_and_rgba_become_bt601_luminance(tmp_path):
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[1, 0] = (0, 0, 255)
    rgb[1, 1] = (100, 100, 100)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 7, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb.astype(np.uint16) * 257)
    expected = np.array([[0.299, 0.587], [0.114, 100 / 255]])
    for name in ("rgb.png", "rgba.png", "rgb16.tif"):
        np.testing.assert_allclose(read_image(tmp_path / name), expected, atol=1e-5)


def test_unreadable_and_empty_images_name_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="bad.png: unreadable"):
        read_image(tmp_path / "bad.png")
    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 5), np.uint8))
    with pytest.raises(DataError, match="empty.tif"):
        read_image(tmp_path / "empty.tif")
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.png")


def test_wrong_channels_are_rejected(tmp_path):
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((4, 4, 5), np.uint8), photometric="minisblack",
                     planarconfig="contig")
    with pytest.raises(DataError, match="five.tif"):
        read_image(tmp_path / "five.tif")


def test_colour_mask_is_rejected(tmp_path):
    m = np.zeros((3, 3, 3), np.uint8)
    m[0, 0] = (1, 2, 3)
    Image.fromarray(m).save(tmp_path / "m.png")
    with pytest.raises(DataError, match="one class index"):
        read_mask(tmp_path / "m.png")


def test_normalize_stretches_percentiles_and_handles_flat_images():
    img = np.linspace(0, 10, 1001, dtype=np.float32).reshape(7, 143)
    out = normalize_intensity(img)
    assert out.min() == 0.0 and out.max() == 1.0
    assert abs(float(np.median(out)) - 0.5) < 0.01
    assert np.all(normalize_intensity(np.full((4, 4), 3.0)) == 0.5)
