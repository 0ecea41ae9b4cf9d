"""FLOPs of one crop through the U-Net's encoder alone (what SimCLR/MoCo/BYOL/DenseCL pretrain)
and through the whole U-Net (what PSCL's patch loss at the full-resolution scale needs).

Usage: python benchmarks/scripts/flops.py [CROP] [W1,W2,W3,W4]   (default 128 and the paper's 32,64,128,256)
The ratio bounds how close PSCL's pretraining throughput can come to the encoder-only methods'.
"""
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from pscl.nn import UNet

crop = int(sys.argv[1]) if len(sys.argv) > 1 else 128
widths = tuple(int(w) for w in sys.argv[2].split(",")) if len(sys.argv) > 2 else (32, 64, 128, 256)
model, x = UNet(5, widths), torch.randn(1, 1, crop, crop)


def gflop(forward, backward: bool) -> float:
    with FlopCounterMode(display=False) as counter:
        out = forward()
        if backward:
            out.sum().backward()
    return counter.get_total_flops() / 1e9


for backward in (False, True):
    encoder = gflop(lambda: model.encoder(x)[-1], backward)
    whole = gflop(lambda: model(x, return_features=True).decoder[-1], backward)
    print(f"{'forward + backward' if backward else 'forward'}: encoder {encoder:.2f} GFLOP, whole U-Net {whole:.2f} GFLOP, "
          f"ratio {whole / encoder:.2f}  (crop {crop}, widths {widths})")
