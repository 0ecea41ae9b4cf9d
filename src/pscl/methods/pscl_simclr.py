"""PSCL-SimCLR: NT-Xent on the global head + class-masked NT-Xent on sampled cells.

Patch loss per scale: NT-Xent over all sampled cells of the batch, both views; for an anchor,
cells of the same (pseudo-)class are removed from its negatives (not made positives); its only
positive is the matching cell of the other view. tau = 0.5, top_k = 4 (the method spec).
Cells and their classes are gathered across processes like SimCLR's global embeddings.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pscl.losses import nt_xent
from pscl.distributed import gather_no_grad, gather_with_grad, local_rows
from pscl.methods.pscl import PSCLBase, PSCLHparams


@dataclass
class PSCLSimCLRHparams(PSCLHparams):
    pass


class PSCLSimCLR(PSCLBase):
    hparams_class = PSCLSimCLRHparams

    def loss(self, view1, view2, geometry, batch):
        out1 = self.backbone(view1, return_features=True)
        out2 = self.backbone(view2, return_features=True)
        z1, z2 = self.global_head(out1.bottleneck), self.global_head(out2.bottleneck)
        image_loss = nt_xent(gather_with_grad(z1), gather_with_grad(z2), self.hp.temperature,
                             rows=local_rows(z1.shape[0]))
        patch = {}
        if self.hp.a > 0:
            for s in self.hp.scales:
                f1, f2, head = out1.decoder[s], out2.decoder[s], self.dense_heads[s]
                with torch.no_grad():  # all cells of view 2, for the matching only
                    picked = self.pick_cells(s, self.embed_all(f2, head), geometry, batch)
                p1, p2 = self.embed_at(f1, head, picked.cells1), self.embed_at(f2, head, picked.cells2)  # (B*T, D)
                keep = gather_no_grad(picked.keep.reshape(-1))  # declined matches take no part
                labels = None if picked.classes is None else gather_no_grad(picked.labels)
                patch[s] = nt_xent(gather_with_grad(p1), gather_with_grad(p2), self.hp.temperature, labels=labels,
                                   rows=local_rows(p1.shape[0]), keep=keep)
        else:
            patch[self.hp.scales[0]] = image_loss * 0.0
        loss, logs = self.combine(image_loss, patch)
        return loss, logs, (z1, z2)
