"""SimCLR (Chen et al., ICML 2020) on the U-Net: NT-Xent on the global head.

The global head reads the average-pooled bottleneck, so only the contracting path gets a
pretraining signal (the paper's baseline). Negatives are gathered from every process with
gradients, so N GPUs see the same global batch as one.
"""
from __future__ import annotations

from dataclasses import dataclass

from pscl.losses import nt_xent
from pscl.distributed import gather_with_grad, local_rows
from pscl.methods.base import PretrainMethod
from pscl.nn import GlobalHead


@dataclass
class SimCLRHparams:
    temperature: float = 0.5  # the method spec's tau

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class SimCLR(PretrainMethod):
    hparams_class = SimCLRHparams

    def __init__(self, config):
        super().__init__(config)
        self.global_head = GlobalHead(self.backbone.widths[-1])

    def embed(self, view):
        return self.global_head(self.backbone.encode(view))

    def loss(self, view1, view2, geometry, batch):
        z1, z2 = self.embed(view1), self.embed(view2)  # (B, 64)
        loss = nt_xent(gather_with_grad(z1), gather_with_grad(z2), self.hp.temperature,
                       rows=local_rows(z1.shape[0]))
        return loss, {}, (z1, z2)
