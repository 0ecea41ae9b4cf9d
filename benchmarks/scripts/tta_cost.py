"""Cost of test-time augmentation (8 flips and quarter turns) per megapixel, torch prediction.

    python benchmarks/scripts/tta_cost.py OUT.json [--threads N]

A 1024 x 703 (MetalDAM-sized) synthetic image, untrained U-Nets at the quick (16..128) and paper
(32..256) widths, tile 512 / overlap 128, the default precision of this CPU; one warm-up call, then
the best of two timed calls per setting. Speed does not depend on the weights or the content.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from pscl.files import write_text
from pscl.inference.predict import segment, uses_bf16
from pscl.nn import UNet
from pscl.provenance import provenance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = np.random.default_rng(0).random((703, 1024), dtype=np.float32)
    bf16 = uses_bf16("auto")
    rows = []
    for widths in ((16, 32, 64, 128), (32, 64, 128, 256)):
        net = UNet(5, widths).eval()
        for tta in (False, True):
            segment(net, image[:256, :256], bf16=bf16, tta=tta)  # warm-up
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                segment(net, image, bf16=bf16, tta=tta)
                times.append(time.perf_counter() - t0)
            rows.append({"widths": list(widths), "tta": tta, "s_per_megapixel": min(times) / (image.size / 1e6),
                         "precision": "bf16-mixed" if bf16 else "32-true"})
            print(rows[-1], flush=True)
    write_text(args.out, json.dumps({"command": "python benchmarks/scripts/tta_cost.py " + args.out, **provenance(),
                                     "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
