"""Pretraining heads (dropped after pretraining; the whole U-Net is kept).

From ``docs/method.md``:

* :class:`GlobalHead`: average-pool the bottleneck -> Linear(w3, 128) -> ReLU -> Linear(128, 64).
* :class:`DenseHead`: 1x1 conv (groups 4) -> per-pixel LayerNorm -> ReLU -> 1x1 conv (groups 4)
  to 64 channels; one per patch scale.
* :class:`PredictorHead`: BYOL's predictor MLP, Linear(64, 128) -> BatchNorm -> ReLU -> Linear(128, 64).

>>> head = DenseHead(32)
>>> head(torch.randn(2, 32, 16, 16)).shape
torch.Size([2, 64, 16, 16])
"""
from __future__ import annotations

import torch
from torch import nn


class GlobalHead(nn.Sequential):
    """(B, C, h, w) bottleneck -> (B, out) image embedding."""

    def __init__(self, in_channels: int, hidden: int = 128, out: int = 64):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, hidden),
                         nn.ReLU(inplace=True), nn.Linear(hidden, out))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of every pixel of a (B, C, H, W) map (no permute copies)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class DenseHead(nn.Sequential):
    """(B, C, H, W) decoder map -> (B, out, H, W) per-cell embeddings."""

    def __init__(self, in_channels: int, out: int = 64, groups: int = 4):
        if in_channels % groups or out % groups:
            raise ValueError(f"channels ({in_channels} -> {out}) must be divisible by groups={groups}")
        super().__init__(nn.Conv2d(in_channels, in_channels, 1, groups=groups), ChannelLayerNorm(in_channels),
                         nn.ReLU(inplace=True), nn.Conv2d(in_channels, out, 1, groups=groups))


class PredictorHead(nn.Sequential):
    """BYOL's predictor: (B, dim) -> (B, dim)."""

    def __init__(self, dim: int = 64, hidden: int = 128):
        super().__init__(nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim))
