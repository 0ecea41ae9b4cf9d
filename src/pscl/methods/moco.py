"""MoCo v2 (Chen et al. 2020) on the U-Net: momentum encoder, queue of keys, InfoNCE.

Queries come from view 1 through the online U-Net and global head, keys from view 2 through
their momentum copies (m = 0.99, the method spec). The queue holds L2-normalised keys, is
initialised with normalised random vectors, and is a buffer, so checkpoints carry it; each step
enqueues the keys gathered from every process.

Deviations: no shuffled BatchNorm (it needs several processes to mean anything; with DDP use
``sync_batchnorm``); the queue is sized to the run (:func:`pscl.methods.queue.queue_length`, at
most 4096) rather than 65536, since a micrograph set holds hundreds of images, not a million.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pscl.losses import info_nce
from pscl.methods.base import PretrainMethod, check_momentum, momentum_copy
from pscl.methods.queue import KeyQueue, run_queue_length
from pscl.nn import GlobalHead


@dataclass
class MoCoHparams:
    temperature: float = 0.2  # MoCo v2
    momentum: float = 0.99  # the method spec's m
    queue_size: int = 0  # 0: sized to the run (pscl.methods.queue.queue_length), at most 4096
    dim: int = 64

    def __post_init__(self):
        check_momentum(self.momentum)
        if self.queue_size < 0:
            raise ValueError(f"queue_size must be >= 0 (0 = sized to the run), got {self.queue_size}")


class MoCo(PretrainMethod):
    hparams_class = MoCoHparams

    def __init__(self, config):
        super().__init__(config)
        self.global_head = GlobalHead(self.backbone.widths[-1], out=self.hp.dim)
        self.backbone_m = momentum_copy(self.backbone)
        self.global_head_m = momentum_copy(self.global_head)
        self.queue = KeyQueue(self.hp.queue_size, self.hp.dim)

    @classmethod
    def resolve_hparams(cls, hp, config):
        hp.queue_size = run_queue_length(hp.queue_size, config, 4096)

    def momentum_pairs(self):
        return [(self.backbone, self.backbone_m), (self.global_head, self.global_head_m)]

    def loss(self, view1, view2, geometry, batch):
        q = self.global_head(self.backbone.encode(view1))
        with torch.no_grad():
            k = F.normalize(self.global_head_m(self.backbone_m.encode(view2)), dim=1)
        loss = info_nce(q, k, self.queue.keys.clone().detach(), self.hp.temperature)
        self.queue.push(k)
        return loss, {}, (q, k)
