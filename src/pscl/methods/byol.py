"""BYOL (Grill et al., NeurIPS 2020) on the U-Net: predictor MLP, EMA target, 2 - 2cos loss.

Online: U-Net -> global head (projector) -> predictor. Target: EMA copies of U-Net and projector.
The loss is symmetrised over the two view orders. The EMA momentum rises from ``momentum`` to 1
along a cosine over the run, as in the original.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pscl.losses import byol_loss
from pscl.methods.base import PretrainMethod, check_momentum, momentum_copy
from pscl.nn import GlobalHead, PredictorHead


@dataclass
class BYOLHparams:
    momentum: float = 0.99  # base EMA momentum (the original: 0.996 over far longer runs)

    def __post_init__(self):
        check_momentum(self.momentum)


class BYOL(PretrainMethod):
    hparams_class = BYOLHparams

    def __init__(self, config):
        super().__init__(config)
        self.projector = GlobalHead(self.backbone.widths[-1])
        self.predictor = PredictorHead(64)
        self.backbone_m = momentum_copy(self.backbone)
        self.projector_m = momentum_copy(self.projector)

    def momentum_pairs(self):
        return [(self.backbone, self.backbone_m), (self.projector, self.projector_m)]

    def current_momentum(self) -> float:
        progress = min(1.0, self.global_step / max(1, self.config.steps))
        return 1 - (1 - self.hp.momentum) * (math.cos(math.pi * progress) + 1) / 2

    def loss(self, view1, view2, geometry, batch):
        z1 = self.projector(self.backbone.encode(view1))
        z2 = self.projector(self.backbone.encode(view2))
        with torch.no_grad():
            t1 = self.projector_m(self.backbone_m.encode(view1))
            t2 = self.projector_m(self.backbone_m.encode(view2))
        loss = byol_loss(self.predictor(z1), t2) + byol_loss(self.predictor(z2), t1)
        return loss, {}, (z1, z2)
