"""Contrastive and self-distillation losses as pure tensor functions.

Dimensions: N anchors, D embedding size, K queue entries. Embeddings are L2-normalised inside
each function unless said otherwise.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5, labels: torch.Tensor | None = None,
            rows: slice | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent (SimCLR, Chen et al. 2020) over 2N embeddings, positives z1[i] <-> z2[i].

    With z = cat(z1, z2) normalised, s_ij = z_i . z_j / tau and p(i) the partner of i:

        L = -1/|A| sum_{i in A} log( exp(s_{i p(i)}) / sum_{j != i, j not in E(i)} exp(s_ij) )

    A = all 2N anchors, or, with ``rows``, the rows ``rows`` of z1 and the same rows of z2 (a
    process's own samples when z1, z2 were gathered across processes). With ``labels`` (N,),
    E(i) = the other cells of i's class (both views): they are removed from i's negatives, not
    made positives (PSCL's class-masked NT-Xent); the partner is always kept.

    With ``keep`` (N,) bool, pairs that are not kept take no part at all (neither anchors nor
    negatives): the loss equals that of the kept pairs alone, but shapes stay equal across
    processes. No kept anchor gives 0 (with a graph).

    z1, z2: (N, D); labels: (N,) long. Example:

    >>> z = torch.randn(4, 8)
    >>> nt_xent(z, z).item() < nt_xent(z, torch.randn(4, 8)).item()
    True
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D)
    idx = torch.arange(2 * n, device=z.device)
    if rows is not None:
        idx = torch.cat([idx[:n][rows], idx[n:][rows]])
    logits = z[idx] @ z.T / temperature  # (|A|, 2N)
    partner = (idx + n) % (2 * n)
    drop = idx[:, None] == torch.arange(2 * n, device=z.device)[None]  # self-similarity
    if labels is not None:
        both = torch.cat([labels, labels])
        drop = drop | (both[idx][:, None] == both[None])
        drop[torch.arange(len(idx)), partner] = False
    if keep is not None:
        both_kept = torch.cat([keep, keep])
        drop = drop | ~both_kept[None]
        anchors = both_kept[idx]
        if not anchors.any():
            return z.sum() * 0.0
        logits, partner, drop = logits[anchors], partner[anchors], drop[anchors]
    logits = logits.masked_fill(drop, float("-inf"))
    return F.cross_entropy(logits, partner)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """InfoNCE of MoCo (He et al. 2020): one positive key, K queued negatives.

        L = -1/N sum_i log( exp(q_i.k_i / tau) / (exp(q_i.k_i / tau) + sum_k exp(q_i.queue_k / tau)) )

    q, k: (N, D), normalised here; queue: (K, D), already normalised (it stores keys).
    """
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    positive = (q * k).sum(1, keepdim=True)  # (N, 1)
    negative = q @ queue.T  # (N, K)
    logits = torch.cat([positive, negative], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL (Grill et al. 2020): L = mean_i (2 - 2 cos(p_i, z_i)); z is the (detached) target.

    Symmetrise by calling it for both view orders and adding.
    """
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=1)).mean()


def dense_correspondence(f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
    """DenseCL's matching: for each view-1 cell the most similar view-2 cell (cosine, argmax).

    f1, f2: (B, C, N) backbone features of the two views -> (B, N) long indices into view 2.
    """
    sim = torch.einsum("bcn,bcm->bnm", F.normalize(f1, dim=1), F.normalize(f2, dim=1))  # (B, N, M)
    return sim.argmax(2)


def alignment_uniformity(z1: torch.Tensor, z2: torch.Tensor) -> tuple[float, float]:
    """Wang & Isola (2020) on normalised embeddings: alignment E||z1 - z2||^2 (lower = views
    agree) and uniformity log E exp(-2 ||z_i - z_j||^2) (lower = spread over the sphere)."""
    z1, z2 = F.normalize(z1.detach().float(), dim=1), F.normalize(z2.detach().float(), dim=1)
    align = (z1 - z2).pow(2).sum(1).mean().item()
    z = torch.cat([z1, z2])
    sq = torch.pdist(z).pow(2)
    uniform = sq.mul(-2).exp().mean().log().item() if sq.numel() else 0.0
    return align, uniform


def prototype_info_nce(q: torch.Tensor, k: torch.Tensor, prototypes: torch.Tensor, soft_positive: torch.Tensor,
                       row_weight: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """PSCL-MoCo's patch loss: InfoNCE against a queue of class prototypes with soft positives.

    For query i with key k_i and queued prototypes P_j (normalised):

        l_i = [q_i.k_i, q_i.P_1, ..., q_i.P_Q] / tau
        t_i = [1, w_i1, ..., w_iQ] / (1 + sum_j w_ij)          (soft_positive = w, >= 0)
        L = sum_i rho_i * CE(t_i, softmax(l_i)) / sum_i rho_i    (row_weight = rho, >= 0)

    q, k: (N, D), normalised here; prototypes: (Q, D) normalised; soft_positive: (N, Q);
    row_weight: (N,). With w = 0 and rho = 1 this is :func:`info_nce`.
    """
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    logits = torch.cat([(q * k).sum(1, keepdim=True), q @ prototypes.T], 1) / temperature  # (N, 1+Q)
    target = torch.cat([torch.ones_like(logits[:, :1]), soft_positive.to(logits.dtype)], 1)
    target = target / target.sum(1, keepdim=True)
    per_row = -(target * logits.log_softmax(1)).sum(1)  # (N,)
    total = row_weight.sum()
    if total <= 0:
        return per_row.mean() * 0.0
    return (row_weight * per_row).sum() / total
