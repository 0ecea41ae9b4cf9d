"""Export a run's U-Net to ONNX, for prediction with ONNX Runtime and no torch (``pscl predict --onnx``).

The graph takes a batch of normalised grey tiles ``image`` (N, 1, H, W), any N, H, W, and returns
the class ``logits`` (N, C, H, W); the class names, widths and training config travel in the
model's metadata (JSON values), so the ONNX file alone is enough to predict and to report.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from pscl.checkpoints import load_model
from pscl.files import atomic_write, check_writable


class _Logits(torch.nn.Module):
    """The U-Net with one input named ``image`` (dynamic shapes are keyed by argument name)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model(image)


def export_onnx(run: str | Path, path: str | Path, opset: int = 18) -> Path:
    """Write the U-Net of ``run`` as an ONNX file at ``path`` (atomically); return the path."""
    import onnx

    check_writable(path, "--onnx")  # before the export's work
    model, payload = load_model(run)
    example = torch.rand(1, 1, 64, 64)
    batch, height, width = (torch.export.Dim(n, min=1, max=65536) for n in ("batch", "height", "width"))
    import logging
    import warnings
    # the exporter probes for torchvision (which pscl does not use) and logs four warnings about it
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level, registration.level = registration.level, logging.ERROR
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*torchvision.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        program = torch.onnx.export(_Logits(model).eval(), (example,), input_names=["image"], output_names=["logits"],
                                    dynamic_shapes={"image": {0: batch, 2: height, 3: width}},
                                    opset_version=opset, dynamo=True, verbose=False)
    registration.setLevel(level)
    proto = program.model_proto
    meta = {"classes": payload.get("classes") or [f"class{i}" for i in range(model.num_classes)],
            "widths": list(model.widths), "config": payload.get("config"), "source_run": str(run)}
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value, default=str)
    onnx.checker.check_model(proto)
    return atomic_write(path, lambda p: onnx.save(proto, str(p)))
