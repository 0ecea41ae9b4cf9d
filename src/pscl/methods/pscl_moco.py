"""PSCL-MoCo: MoCo on the global head + a prototype queue for the sampled cells.

Per scale: queries are online view-1 cells, keys the momentum encoder's view-2 cells at the
matching positions. Negatives are a queue of per-class prototypes (the weighted mean key of each
class block of each image, weights = class coverage). Queued prototypes of the same class as a
query get a soft positive target weight ``soft_weight * max(0, 1 - decay * age)``, age in steps
since they were queued (decay 0.2 per step: gone after 5 steps). Each row is weighted by its
cell's class coverage, so filler cells of a class too small for its block count little.
top_k = 30 in the paper; its GPU budget allows that, a CPU profile may lower it.

Our choices where the method text leaves room: ``soft_weight`` 0.1 (the positive key has target
weight 1 before normalisation), tau 0.2 as in MoCo v2, one prototype queue per scale.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from pscl.losses import info_nce, prototype_info_nce
from pscl.distributed import gather_no_grad
from pscl.methods.base import check_momentum, momentum_copy
from pscl.methods.queue import KeyQueue, run_queue_length
from pscl.methods.pscl import PSCLBase, PSCLHparams, gather_cells


@dataclass
class PSCLMoCoHparams(PSCLHparams):
    top_k: int = 30
    temperature: float = 0.2
    momentum: float = 0.99
    queue_size: int = 0  # 0: sized to the run (pscl.methods.queue.queue_length), at most 4096
    prototype_queue_size: int = 0  # 0: sized to the run, at most 1024
    soft_weight: float = 0.1
    decay: float = 0.2

    def __post_init__(self):
        super().__post_init__()
        check_momentum(self.momentum)


class PrototypeQueue(KeyQueue):
    """A :class:`KeyQueue` of class prototypes that also keeps each one's class and the step it
    was queued (buffers)."""

    def __init__(self, size: int, dim: int):
        super().__init__(size, dim)
        self.register_buffer("classes", torch.full((size,), -1, dtype=torch.long))  # -1: empty slot
        self.register_buffer("steps", torch.zeros(size, dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor, classes: torch.Tensor, step: int, valid: torch.Tensor | None = None) -> torch.Tensor:
        """Enqueue the prototypes of every process whose ``valid`` is set (all by default): shapes
        stay equal across processes while the number of prototypes per image varies."""
        keys, classes = gather_no_grad(keys), gather_no_grad(classes)
        if valid is not None:
            valid = gather_no_grad(valid)
            keys, classes = keys[valid], classes[valid]
        idx = super().push(keys, gathered=True)
        self.classes[idx] = classes[-len(idx):]
        self.steps[idx] = step
        return idx

    def soft_positive(self, query_classes: torch.Tensor, step: int, weight: float, decay: float) -> torch.Tensor:
        """(N, Q) soft target weights: same class, decaying with age."""
        age = (step - self.steps).clamp(min=0).float()
        w = weight * (1 - decay * age).clamp(min=0) * (self.classes >= 0)
        return (query_classes[:, None] == self.classes[None]) * w[None]


class PSCLMoCo(PSCLBase):
    hparams_class = PSCLMoCoHparams

    def __init__(self, config):
        super().__init__(config)
        self.backbone_m = momentum_copy(self.backbone)
        self.global_head_m = momentum_copy(self.global_head)
        self.dense_heads_m = momentum_copy(self.dense_heads)
        self.queue = KeyQueue(self.hp.queue_size, self.hp.dim)
        self.prototype_queues = torch.nn.ModuleList(PrototypeQueue(self.hp.prototype_queue_size, self.hp.dim)
                                                    for _ in range(3))

    @classmethod
    def resolve_hparams(cls, hp, config):
        hp.queue_size = run_queue_length(hp.queue_size, config, 4096)
        # each image pushes up to one prototype per class per step
        hp.prototype_queue_size = run_queue_length(hp.prototype_queue_size, config, 1024, len(config.classes or [1]))

    def momentum_pairs(self):
        return [(self.backbone, self.backbone_m), (self.global_head, self.global_head_m),
                (self.dense_heads, self.dense_heads_m)]

    def loss(self, view1, view2, geometry, batch):
        out1 = self.backbone(view1, return_features=True)
        q = self.global_head(out1.bottleneck)
        with torch.no_grad():
            out2 = self.backbone_m(view2, return_features=True)
            k = F.normalize(self.global_head_m(out2.bottleneck), dim=1)
            keys = {s: F.normalize(self.embed_all(out2.decoder[s], self.dense_heads_m[s]), dim=1) for s in self.hp.scales}
        image_loss = info_nce(q, k, self.queue.keys.clone().detach(), self.hp.temperature)
        self.queue.push(k)
        patch, step = {}, int(self.global_step)
        for s in self.hp.scales:
            if self.hp.a == 0:
                patch[s] = image_loss * 0.0
                break
            picked = self.pick_cells(s, keys[s], geometry, batch)
            b, t = picked.cells2.shape
            qs = self.embed_at(out1.decoder[s], self.dense_heads[s], picked.cells1)  # (B*T, D)
            ks = gather_cells(keys[s], picked.cells2)
            classes = (picked.classes if picked.classes is not None
                       else torch.arange(t, device=qs.device)).repeat(b)  # no classes: each column its own
            queue = self.prototype_queues[s]
            soft = queue.soft_positive(classes, step, self.hp.soft_weight, self.hp.decay)
            patch[s] = prototype_info_nce(qs, ks, queue.keys.clone().detach(), soft, picked.weights.reshape(-1),
                                          self.hp.temperature)
            # prototypes: coverage-weighted mean key of each class block of each image
            with torch.no_grad():
                blocks = classes.reshape(b, t)
                # a kept block of zero-coverage fillers (purity 0) still yields a mean; declined cells none
                w = picked.weights + 1e-6 * picked.keep
                width = self.num_classes if picked.classes is not None else t  # equal on every process
                onehot = F.one_hot(blocks, width).float() * w[..., None]  # (B, T, C')
                present = onehot.sum(1) > 0  # (B, C')
                protos = torch.einsum("btc,btd->bcd", onehot, ks.reshape(b, t, -1)) / onehot.sum(1).clamp(min=1e-12)[..., None]
                proto_classes = torch.arange(onehot.shape[-1], device=qs.device).expand(b, -1)
                queue.push(protos.flatten(0, 1), proto_classes.flatten(), step, valid=present.flatten())
        loss, logs = self.combine(image_loss, patch)
        return loss, logs, (q, k)
