"""Supervised segmentation loss of fine-tuning: 0.5 class-weighted CE + 0.5 soft Dice (foreground); the
label-free affinity loss that carries sparse labels to the image's edges."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pscl.data.io import IGNORE_INDEX


def class_counts(masks: list[np.ndarray], num_classes: int) -> np.ndarray:
    """Labelled pixels per class over ``masks`` (float64, ``IGNORE_INDEX`` left out).

    >>> class_counts([np.array([[0, 0, 2, 255]])], 3).tolist()
    [2.0, 0.0, 1.0]
    """
    counts = np.zeros(num_classes, dtype=np.float64)
    for m in masks:
        valid = m[m != IGNORE_INDEX]
        counts += np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
    return counts


def class_weights(masks: list[np.ndarray], num_classes: int, max_ratio: float = 10.0,
                  power: float = 0.5) -> torch.Tensor:
    """Cross-entropy class weights from the annotated masks: w_c ∝ f_c^(-power), mean 1.

    f_c is the pixel share of class c among labelled pixels. The default inverse square root
    (rather than the inverse) keeps a class covering 0.2 % of the pixels (MetalDAM's precipitates)
    from dominating; ``power=0`` gives plain (unweighted) cross-entropy. Weights are clipped to
    ``max_ratio`` times the smallest. Classes absent from the masks get weight 1 (they contribute
    no CE term anyway).

    >>> class_weights([np.array([[0, 0, 0, 1]])], 2).tolist()  # shares 3/4, 1/4 -> 1 : sqrt(3)
    [0.7320508360862732, 1.2679492235183716]
    """
    counts = class_counts(masks, num_classes)
    present = counts > 0
    w = np.ones(num_classes)
    if present.any():
        f = counts[present] / counts[present].sum()
        wp = f ** -power
        wp = np.minimum(wp, wp.min() * max_ratio)
        w[present] = wp / wp.mean()
    return torch.tensor(w, dtype=torch.float32)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, classes: range | list[int],
                   eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss over ``classes``, pooled over the batch; pixels labelled 255 are ignored.

    L = 1 - mean_c (2 sum_i p_ic g_ic + eps) / (sum_i p_ic + sum_i g_ic + eps),
    p = softmax(logits) over C, g = one-hot(target); i runs over all valid pixels of the batch.

    logits: (B, C, H, W); target: (B, H, W) long.
    """
    classes = list(classes)
    if not classes:
        return logits.sum() * 0.0
    valid = (target != IGNORE_INDEX).unsqueeze(1)  # (B, 1, H, W)
    probs = logits.softmax(1) * valid
    onehot = F.one_hot(target.clamp(max=logits.shape[1] - 1), logits.shape[1]).permute(0, 3, 1, 2) * valid
    p, g = probs[:, classes], onehot[:, classes].to(probs.dtype)  # (B, K, H, W)
    inter = (p * g).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + g.sum((0, 2, 3))
    return 1.0 - ((2 * inter + eps) / (denom + eps)).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor,
                      weights: torch.Tensor | None = None, dice_weight: float = 0.5) -> torch.Tensor:
    """L = (1 - d) * CE_w(logits, target) + d * softDice over classes 1..C-1 (255 ignored), d = 0.5.

    With a single class only the CE term is used.
    """
    ce = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE_INDEX)
    if not (target != IGNORE_INDEX).any():
        ce = logits.sum() * 0.0  # all pixels ignored: CE would be NaN
    if dice_weight == 0:
        return ce
    return (1 - dice_weight) * ce + dice_weight * soft_dice_loss(logits, target, range(1, logits.shape[1]))


def affinity_loss(logits: torch.Tensor, image: torch.Tensor, radius: int = 5, sigma_xy: float = 6.0,
                  sigma_i: float = 0.1, stride: int = 2) -> torch.Tensor:
    """Label consistency of neighbouring pixels that look alike (a local CRF loss, as in the gated CRF loss of
    Obukhov et al. 2019 and the dense CRF loss of Tang et al. 2018 for scribble-supervised segmentation).

    On the ``stride``-pooled softmax ``p`` (B, C, h, w) and image ``I`` (B, 1, h, w), over every pixel pair (i, j)
    at most ``radius`` pooled pixels apart, each pair once:

        L = sum_ij K_ij (1 - p_i . p_j) / sum_ij K_ij,  K_ij = exp(-|x_i - x_j|^2 / 2 sigma_xy^2 - (I_i - I_j)^2 / 2 sigma_i^2)

    with ``x`` in full-resolution pixels. L is 0 where alike pixels get the same one-hot label and 1 - 1/C for
    uniform probabilities; it is low where the labels change at a change of grey level. It needs no labels: on
    sparse strokes it carries each stroke's class out to where the image changes (the phase borders strokes leave
    unlabelled).
    """
    p = F.avg_pool2d(logits.float().softmax(1), stride)
    grey = F.avg_pool2d(image.float(), stride)
    h, w = p.shape[-2:]
    total = norm = p.new_zeros(())
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > radius * radius or dy >= h or abs(dx) >= w:
                continue
            ya, yb = slice(0, h - dy), slice(dy, h)
            xa, xb = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
            diff = grey[..., ya, xa] - grey[..., yb, xb]
            k = torch.exp(-(dy * dy + dx * dx) * stride ** 2 / (2 * sigma_xy ** 2) - diff ** 2 / (2 * sigma_i ** 2))
            agree = (p[..., ya, xa] * p[..., yb, xb]).sum(1, keepdim=True)
            total = total + (k * (1 - agree)).sum()
            norm = norm + k.sum()
    return total / norm.clamp_min(1e-12)
