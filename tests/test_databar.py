"""The SEM data bar: found on instrument geometry, never on specimen-only images; cut from image and mask."""
from __future__ import annotations

import numpy as np
import pytest

from pscl.data.databar import detect_data_bar, rows_to_cut
from pscl.data.io import load_micrograph
from pscl.errors import DataError
from pscl.files import write_png


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
