"""Peak memory and time to segment one large micrograph by tiles (default 10000 x 10000).

Usage: python benchmarks/scripts/large_image.py [SIZE] [WIDTHS] > result.json
The image is random (speed and memory do not depend on content); the model is an untrained
U-Net of the given widths. Peak resident memory (ru_maxrss) covers the whole process: Python,
torch, the image (float32, 4 bytes/pixel), the label map (1 byte/pixel) and the tile strips.
"""
import json
import resource
import sys
import time

import numpy as np
import torch

from pscl.provenance import provenance
from pscl.nn import UNet
from pscl.inference.predict import segment

size = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
widths = tuple(int(w) for w in sys.argv[2].split(",")) if len(sys.argv) > 2 else (16, 32, 64, 128)
torch.manual_seed(0)
model = UNet(5, widths).eval()
image = np.random.default_rng(0).random((size, size), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
seg = segment(model, image, tile=512, overlap=128)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"size": [size, size], "widths": widths, "tile": 512, "overlap": 128, "seconds": dt,
                  "s_per_megapixel": dt / (size * size / 1e6), "peak_rss_mb": peak,
                  "rss_mb_before_segmenting": before, "image_mb": image.nbytes / 2**20,
                  "labels_shape": list(seg.labels.shape), "command": "python benchmarks/scripts/large_image.py " + " ".join(sys.argv[1:]),
                  **provenance()}, indent=1))
