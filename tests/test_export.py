"""ONNX export parity, torch-free ONNX prediction, a quiet exporter."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pscl.checkpoints import load_model
from pscl.data.io import read_mask
from pscl.inference.predict import onnx_tile_model, predict

pytest.importorskip("onnxruntime", reason="onnxruntime is a test dependency")


@pytest.fixture(scope="module")
def onnx_model(tiny_run, tmp_path_factory) -> Path:
    from pscl.inference.export import export_onnx

    return export_onnx(tiny_run, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_onnx_logits_equal_torch(tiny_run, onnx_model):
    import onnxruntime as ort

    model, payload = load_model(tiny_run)
    session = ort.InferenceSession(str(onnx_model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 1, 75, 133), dtype=np.float32)  # odd sizes: padding path
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = session.run(None, {"image": x})[0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4
    _, meta = onnx_tile_model(onnx_model)
    assert meta["classes"] == payload["classes"] and meta["widths"] == list(model.widths)


def test_predict_with_onnx_imports_no_torch_and_matches(tiny_run, onnx_model, synth_data, tmp_path):
    images = synth_data / "images"
    torch_out, onnx_out = tmp_path / "torch", tmp_path / "onnx"
    # fp32 on both sides: ONNX Runtime runs the fp32 graph, torch's "auto" may be bf16 on this CPU
    predict(tiny_run, images, torch_out, tile=64, overlap=16, precision="32-true")
    code = ("import sys; sys.modules['torch'] = None\n"  # any `import torch` now fails
            "from pscl.cli import main\n"
            f"sys.argv = ['pscl', 'predict', '--onnx', {str(onnx_model)!r}, {str(images)!r}, '--out', {str(onnx_out)!r},"
            " '--tile', '64', '--overlap', '16', '--um-per-px', '0.1']\n"
            "main()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    masks = sorted(torch_out.glob("*_mask.png"))
    assert masks and len(masks) == len(list(onnx_out.glob("*_mask.png")))
    agree = np.mean([np.mean(read_mask(m) == read_mask(onnx_out / m.name)) for m in masks])
    assert agree > 0.999
    meta = json.loads((onnx_out / "predictions.json").read_text())
    first = next(iter(meta["images"].values()))
    assert first["calibration"] == {"um_per_px": 0.1, "source": "user", "length_unit": "µm"}


def test_export_prints_no_torchvision_warnings(tiny_run, tmp_path):
    code = ("from pscl.inference.export import export_onnx\n"
            f"export_onnx({str(tiny_run)!r}, {str(tmp_path / 'm.onnx')!r})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "m.onnx").exists() and "torchvision" not in done.stderr + done.stdout
