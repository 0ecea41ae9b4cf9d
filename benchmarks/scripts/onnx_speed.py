"""Inference seconds per megapixel: the torch path vs ONNX Runtime, same model, same tiling.

Usage: python benchmarks/scripts/onnx_speed.py OUT_JSON [WIDTHS] [REPEATS]
An untrained U-Net of WIDTHS (default the paper's 32..256; speed does not depend on the weights)
is saved as a run, exported to ONNX, and both paths segment one 1024 x 703 image (MetalDAM's size)
with 512 px tiles, overlap 128, both with the same number of threads (torch's default). Each
timing is the best of REPEATS after one warm-up. The logits' largest difference is recorded too.
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pscl.provenance import provenance
from pscl.checkpoints import save_model
from pscl.files import write_text
from pscl.inference.export import export_onnx
from pscl.nn import UNet
from pscl.inference.predict import onnx_tile_model, segment_tiled, torch_tile_model

out = Path(sys.argv[1])
widths = tuple(int(w) for w in sys.argv[2].split(",")) if len(sys.argv) > 2 else (32, 64, 128, 256)
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
torch.manual_seed(0)
model = UNet(5, widths).eval()
image = np.random.default_rng(0).random((703, 1024), dtype=np.float32)
threads = torch.get_num_threads()
with tempfile.TemporaryDirectory() as tmp:
    save_model(tmp, model, {"norm": "batch"}, [f"c{i}" for i in range(5)])
    onnx_path = export_onnx(tmp, Path(tmp) / "model.onnx")
    paths = {"torch": torch_tile_model(model), "onnxruntime": onnx_tile_model(onnx_path, threads=threads)[0]}
    times = {}
    for name, tile_model in paths.items():
        segment_tiled(tile_model, image, 5)  # warm-up
        runs = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            segment_tiled(tile_model, image, 5)
            runs.append(time.perf_counter() - t0)
        times[name] = min(runs)
    x = image[None, :512, :512]
    diff = float(np.abs(np.log(paths["torch"](x)) - np.log(paths["onnxruntime"](x))).max())
mp = image.size / 1e6
result = {"image": list(image.shape), "widths": widths, "tile": 512, "overlap": 128, "threads": threads,
          "repeats": repeats, "seconds": times, "seconds_per_megapixel": {k: v / mp for k, v in times.items()},
          "max_log_probability_difference": diff, **provenance(),
          "command": "python " + " ".join(sys.argv)}
write_text(out, json.dumps(result, indent=1))
print(json.dumps(result, indent=1))
