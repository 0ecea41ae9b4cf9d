"""Strong photometric augmentation of normalised micrographs (batched torch): brightness,
contrast, gamma, blur and noise, each drawn per sample.

The student's view in semi-supervised fine-tuning (:mod:`pscl.train.semi`): micrographs of one set differ
in exactly these ways (detector gain, focus, dwell time), and the teacher's pseudo-labels of the
plain view must hold under them.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class StrongPhotometric:
    """Ranges of the draws; each effect applies with probability ``p``."""

    brightness: float = 0.3  # added, uniform in +-
    contrast: float = 0.4  # factor around mid-grey, uniform in 1 +-
    gamma: tuple[float, float] = (0.6, 1.6)  # x ** g on the clipped 0..1 image, log-uniform
    blur_sigma: float = 1.5  # Gaussian, sigma uniform in 0..
    noise: float = 0.05  # Gaussian, std uniform in 0..
    p: float = 0.8

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch (B, 1, H, W) of images in about 0..1."""
        b, dev = x.shape[0], x.device

        def draw(*shape):
            return torch.rand(*shape, generator=generator, device=dev)

        def on():
            return (draw(b, 1, 1, 1) < self.p).to(x.dtype)
        lo, hi = torch.log(torch.tensor(self.gamma, device=dev))
        g = torch.exp(lo + (hi - lo) * draw(b, 1, 1, 1))
        x = torch.where(on() > 0, x.clamp(0, 1) ** g, x)
        contrast = 1 + self.contrast * (2 * draw(b, 1, 1, 1) - 1) * on()
        brightness = self.brightness * (2 * draw(b, 1, 1, 1) - 1) * on()
        x = (x - 0.5) * contrast + 0.5 + brightness
        sigma = self.blur_sigma * draw(b) * on().flatten()
        x = _blur(x, sigma)
        std = self.noise * draw(b, 1, 1, 1) * on()
        return x + std * torch.randn(x.shape, generator=generator, device=dev)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur (sigma (B,); 0 leaves a sample unchanged)."""
    radius = 4
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp(min=1e-3)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None] / s) ** 2)
    kernel = kernel / kernel.sum(1, keepdim=True)  # (B, K); sigma ~0: a delta
    b, _, h, w = x.shape
    padded = F.pad(x.transpose(0, 1), (radius, radius, radius, radius), mode="replicate")  # (1, B, H+2r, W+2r)
    rows = F.conv2d(padded, kernel[:, None, None, :], groups=b)
    return F.conv2d(rows, kernel[:, None, :, None], groups=b).transpose(0, 1)
