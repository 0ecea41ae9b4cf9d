"""DenseCL (Wang et al., CVPR 2021) on the U-Net: MoCo global branch + dense branch, 0.5/0.5.

Dense branch: a dense head on the bottleneck gives per-cell embeddings; each view-1 cell's
positive key is the view-2 cell (momentum encoder) whose bottleneck feature is most similar
(correspondence by feature similarity, not by the known geometry: that is DenseCL's point);
negatives come from a dense queue holding one average-pooled dense key per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pscl.losses import dense_correspondence, info_nce
from pscl.methods.base import momentum_copy
from pscl.methods.moco import MoCo, MoCoHparams
from pscl.methods.queue import KeyQueue
from pscl.nn import DenseHead


@dataclass
class DenseCLHparams(MoCoHparams):
    dense_weight: float = 0.5  # L = (1 - w) L_global + w L_dense

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.dense_weight <= 1:
            raise ValueError(f"dense_weight must lie in [0, 1], got {self.dense_weight}")


class DenseCL(MoCo):
    hparams_class = DenseCLHparams

    def __init__(self, config):
        super().__init__(config)
        self.dense_head = DenseHead(self.backbone.widths[-1], out=self.hp.dim)
        self.dense_head_m = momentum_copy(self.dense_head)
        self.dense_queue = KeyQueue(self.hp.queue_size, self.hp.dim)

    def momentum_pairs(self):
        return super().momentum_pairs() + [(self.dense_head, self.dense_head_m)]

    def loss(self, view1, view2, geometry, batch):
        f1 = self.backbone.encode(view1)  # (B, C, h, w)
        q = self.global_head(f1)
        qd = self.dense_head(f1).flatten(2)  # (B, D, N)
        with torch.no_grad():
            f2 = self.backbone_m.encode(view2)
            k = F.normalize(self.global_head_m(f2), dim=1)
            kd = F.normalize(self.dense_head_m(f2).flatten(2), dim=1)  # (B, D, N)
            match = dense_correspondence(f1.detach().flatten(2), f2.flatten(2))  # (B, N)
            k_pos = torch.gather(kd, 2, match[:, None].expand(-1, kd.shape[1], -1))  # (B, D, N)
        global_loss = info_nce(q, k, self.queue.keys.clone().detach(), self.hp.temperature)
        dense_loss = info_nce(qd.permute(0, 2, 1).reshape(-1, qd.shape[1]),  # (B*N, D)
                              k_pos.permute(0, 2, 1).reshape(-1, kd.shape[1]),
                              self.dense_queue.keys.clone().detach(), self.hp.temperature)
        self.queue.push(k)
        self.dense_queue.push(F.normalize(kd.mean(2), dim=1))
        w = self.hp.dense_weight
        loss = (1 - w) * global_loss + w * dense_loss
        return loss, {"loss_global": global_loss, "loss_dense": dense_loss}, (q, k)
