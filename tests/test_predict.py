import csv
import json

import numpy as np
import pytest
import torch

from pscl.checkpoints import load_model
from pscl.data import load_dataset
from pscl.nn import UNet
from pscl.inference.predict import predict, segment


@pytest.fixture(scope="module")
def model_and_image(tiny_run, synth_data):
    model, _ = load_model(tiny_run)
    image = load_dataset(synth_data).load_image("synth000")
    return model, np.tile(image, (2, 3))[:300, :410]


def test_single_tile_is_exactly_whole_image_inference(model_and_image):
    model, image = model_and_image
    # fp32 in the model's own layout: bit-equality with a plain forward pass must not hinge on the
    # CPU's bf16 or channels_last kernels (those are checked with tolerances elsewhere)
    seg = segment(model, image, tile=512, bf16=False, channels_last=False)
    with torch.no_grad():
        probs = model(torch.from_numpy(image)[None, None]).softmax(1)[0].numpy()
    assert np.array_equal(seg.labels, probs.argmax(0))
    np.testing.assert_allclose(seg.mean_probabilities, probs.reshape(3, -1).mean(1), rtol=1e-5)


@pytest.mark.parametrize("tile,overlap", [(128, 64), (96, 32), (200, 48)])
def test_tiled_prediction_equals_whole_image(model_and_image, tile, overlap):
    model, image = model_and_image
    whole = segment(model, image, tile=1024)
    tiled = segment(model, image, tile=tile, overlap=overlap)
    assert tiled.labels.shape == image.shape
    assert (tiled.labels == whole.labels).mean() > 0.995
    np.testing.assert_allclose(tiled.mean_probabilities, whole.mean_probabilities, atol=3e-3)
    np.testing.assert_allclose(tiled.mean_probabilities.sum(), 1.0, atol=1e-5)


def test_tiles_smaller_than_image_in_one_axis_only():
    model = UNet(2, (4, 8, 8, 16)).eval()
    image = np.random.default_rng(0).random((40, 300)).astype(np.float32)
    assert segment(model, image, tile=64, overlap=16).labels.shape == (40, 300)


def test_predict_writes_masks_overlays_and_fractions(tiny_run, synth_data, tmp_path):
    results = predict(tiny_run, synth_data / "images", tmp_path, tile=96, overlap=32)
    n = len(list((synth_data / "images").iterdir()))
    assert len(results) == n
    assert len(list(tmp_path.glob("*_mask.png"))) == n and len(list(tmp_path.glob("*_overlay.png"))) == n
    rows = list(csv.reader(open(tmp_path / "phase_fractions.csv")))
    assert rows[0] == ["image", "matrix", "lamellar", "precipitate"]
    assert [r[0] for r in rows[-2:]] == ["mean", "std"]
    body = np.array([[float(v) for v in r[1:]] for r in rows[1:-2]])
    np.testing.assert_allclose(body.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose([float(v) for v in rows[-2][1:]], body.mean(0), atol=1e-5)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_predict_reads_16bit_tiff_and_rgb_png(tiny_run, tmp_path):
    import tifffile
    from PIL import Image
    rng = np.random.default_rng(0)
    grey = (rng.random((90, 120)) * 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in16.tif", grey)
    Image.fromarray((rng.random((90, 120, 3)) * 255).astype(np.uint8)).save(tmp_path / "rgb.png")
    results = predict(tiny_run, tmp_path, tmp_path / "out", tile=64, overlap=16)
    assert set(results) == {"in16", "rgb"}
    mask = np.array(Image.open(tmp_path / "out" / "in16_mask.png"))
    assert mask.shape == (90, 120) and mask.max() < 3
    assert np.array(Image.open(tmp_path / "out" / "rgb_overlay.png")).shape == (90, 120, 3)


@pytest.mark.parametrize("um_per_px", [-1.0, 0.0, float("nan"), float("inf"), 1e300, 1e-300])
def test_a_bad_pixel_size_is_refused_before_any_output(tiny_run, synth_data, tmp_path, um_per_px):
    with pytest.raises(ValueError, match="--um-per-px must be a pixel size in micrometres between"):
        predict(tiny_run, synth_data / "images", tmp_path / "out", um_per_px=um_per_px)
    assert not (tmp_path / "out").exists()


def test_out_equal_to_the_input_folder_or_a_file_is_refused(tiny_run, tmp_path):
    from PIL import Image
    from pscl.errors import DataError
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(DataError, match="--out is the folder of the input images"):
        predict(tiny_run, tmp_path, tmp_path, tile=64, overlap=16)
    with pytest.raises(DataError, match="--out is a file"):
        predict(tiny_run, tmp_path, tmp_path / "a.png", tile=64, overlap=16)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_unreadable_images_do_not_stop_the_readable_ones(tiny_run, tmp_path):
    from PIL import Image
    from pscl.errors import DataError
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "c"):
        Image.fromarray((rng.random((70, 90)) * 255).astype(np.uint8)).save(src / f"{name}.png")
    (src / "b.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(src / "d.png")
    seen = []
    with pytest.raises(DataError, match=r"(?s)2 of 4 image\(s\) not segmented.*b.png: unreadable image.*d.png: image of 1x1"):
        predict(tiny_run, src, tmp_path / "out", tile=64, overlap=16, progress=lambda *a: seen.append(a))
    assert sorted(p.name for p in (tmp_path / "out").glob("*_mask.png")) == ["a_mask.png", "c_mask.png"]
    meta = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert set(meta["images"]) == {"a", "c"} and len(meta["failed"]) == 2
    assert seen[-1][:2] == (4, 4) and any(0 < p % 1 < 1 for p, *_ in seen)  # strips of a tiled image count
