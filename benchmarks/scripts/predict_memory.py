"""Peak memory of `pscl predict` (torch and ONNX Runtime) on one large micrograph, per size.

    python benchmarks/scripts/predict_memory.py OUT.json [--sizes 2000,6000,10000] [--widths 16,32,64,128]

For each size a random 8-bit PNG micrograph is written to a temporary folder and segmented by the
real command (`pscl predict RUN IMG --out DIR`, and `pscl predict --onnx MODEL IMG --out DIR`) in a
fresh process whose peak resident memory (ru_maxrss of the child) is recorded with its wall time.
The model is an untrained U-Net of ``--widths`` (memory and time do not depend on the weights).
What a micrograph itself costs is given beside it (13 bytes a pixel: its 8-bit pixels, the float32
image as read and normalised, the label map, the RGB overlay), so that the rest, which should stay
flat with size (model, tile strips, libraries), shows.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pscl.files import write_text
from pscl.provenance import provenance


def _child_peak_mb(command: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``command`` run in a fresh process (a wrapper reads its rusage)."""
    code = ("import resource, subprocess, sys, json\n"
            f"done = subprocess.run({command!r}, capture_output=True, text=True)\n"
            "assert done.returncode == 0, done.stderr[-2000:]\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)\n")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sizes", default="2000,6000,10000")
    parser.add_argument("--widths", default="16,32,64,128")
    args = parser.parse_args()
    import torch

    from pscl.checkpoints import save_model
    from pscl.inference.export import export_onnx
    from pscl.nn import UNet

    pscl = str(Path(sys.executable).with_name("pscl"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        widths = tuple(int(w) for w in args.widths.split(","))
        save_model(tmp / "run", UNet(5, widths), {"widths": list(widths)}, [f"class{i}" for i in range(5)])
        export_onnx(tmp / "run", tmp / "model.onnx")
        for size in (int(s) for s in args.sizes.split(",")):
            folder = tmp / f"in{size}"
            folder.mkdir()
            pixels = (np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / "micrograph.png")
            del pixels
            for engine, command in (("torch", [pscl, "predict", str(tmp / "run"), str(folder)]),
                                    ("onnx", [pscl, "predict", "--onnx", str(tmp / "model.onnx"), str(folder)])):
                peak, seconds = _child_peak_mb(command + ["--out", str(tmp / f"out-{engine}-{size}")])
                mib = size * size / 2**20  # one byte per pixel, in MiB
                # the micrograph's own arrays: 8-bit pixels, float32 as read, float32 normalised, labels, RGB overlay
                own = (1 + 4 + 4 + 1 + 3) * mib
                rows.append({"engine": engine, "size": size, "peak_rss_mb": peak, "seconds": seconds,
                             "image_and_outputs_mb": own, "rest_mb": peak - own})
                print(json.dumps(rows[-1]), flush=True)
    record = {"command": "python " + " ".join(sys.argv), "widths": args.widths, "tile": 512, "overlap": 128,
              "rows": rows, **provenance()}
    write_text(args.out, json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
