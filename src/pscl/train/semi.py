"""Semi-supervised fine-tuning: learn from the unlabelled micrographs while fine-tuning.

Every step takes a labelled batch (the annotated crops, as in plain fine-tuning) and an unlabelled
batch of crops from ``unlabeled/`` and the train images (never val or test images). A teacher, the
exponential moving average of the student, labels each unlabelled crop; the student sees a strong
view of the same crop (flip, quarter turn, 80-100 % crop resized, and
:class:`pscl.data.photometric.StrongPhotometric`) and learns the teacher's labels, warped by the
view's tracked geometry (:class:`pscl.data.views.ViewGeometry`), where the teacher is confident.
As in FixMatch / mean teacher, with per-class thresholds so that rare classes, on which the teacher
is less sure, are not drowned by the common ones: class c's threshold is ``base * conf_c / max
conf``, conf_c the running mean confidence of the teacher's class-c pixels (FreeMatch's idea on
typical confidence instead of frequency), base the lower of ``threshold`` and the running mean top
probability clamped to ``[floor, threshold]`` (:class:`ClassThresholds`). The first ``semi_start``
steps (default: half the run) are supervised only, and the teacher then starts as the student: a
teacher that labels from the first step teaches its own early mistakes (measured in ``tests/test_semi.py``
and ``benchmarks/semi/``). The
unsupervised weight then ramps up linearly. ``semi_align`` adds distribution alignment
(:class:`DistributionAlignment`) to the annotated image's class shares, or with ``semi_align_mix`` towards the
warmed-up teacher's own shares on the unlabelled micrographs.

Logged per step: the share of unlabelled pixels taken as each class, and, where the unlabelled crop
comes from a train image with a mask, the pseudo-labels' accuracy (a diagnostic, never used for
selection).
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from pscl.data.io import IGNORE_INDEX
from pscl.data.photometric import StrongPhotometric
from pscl.data.views import ViewConfig, ViewGeometry, draw_geometry
from pscl.train.module import SegmentationModule
from pscl.methods.base import ema_update


def confident_pseudo_labels(probs: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels (B, H, W), confident (B, H, W) bool) from class probabilities (B, C, H, W): the
    argmax, confident where its probability reaches the threshold of its class (``thresholds`` (C,))."""
    confidence, labels = probs.max(1)
    return labels, confidence >= thresholds[labels]


class ClassThresholds(nn.Module):
    """Per-class confidence thresholds from the teacher's running mean confidence per class (buffers,
    so a resumed run continues them).

    The base is the running mean of the teacher's top probability over all pixels (FreeMatch's
    self-adaptive global threshold, starting at 1/C), clamped to ``[floor, threshold]``: a fixed 0.9
    took no pixel at all in 100 steps of a MetalDAM fine-tuning, whose class-weighted CE + Dice gives
    soft probabilities; with no floor a young teacher labels almost every pixel.
    """

    def __init__(self, num_classes: int, threshold: float, momentum: float = 0.99, floor: float = 0.0,
                 per_class: bool = True):
        super().__init__()
        self.threshold, self.momentum, self.floor, self.per_class = threshold, momentum, floor, per_class
        self.register_buffer("confidence", torch.ones(num_classes))
        self.register_buffer("seen", torch.zeros(num_classes, dtype=torch.bool))
        self.register_buffer("overall", torch.tensor(1.0 / num_classes))

    @torch.no_grad()
    def update(self, probs: torch.Tensor) -> None:
        confidence, labels = probs.max(1)
        self.overall.mul_(self.momentum).add_((1 - self.momentum) * confidence.float().mean())
        c = self.confidence.shape[0]
        count = torch.bincount(labels.flatten(), minlength=c).float()
        total = torch.bincount(labels.flatten(), weights=confidence.flatten().float(), minlength=c)
        seen = count > 0
        mean = torch.where(seen, total / count.clamp(min=1), self.confidence)
        running = torch.where(self.seen, self.momentum * self.confidence + (1 - self.momentum) * mean, mean)
        self.confidence.copy_(torch.where(seen, running, self.confidence))
        self.seen |= seen

    @property
    def values(self) -> torch.Tensor:
        """(C,) thresholds; a class the teacher has not predicted yet keeps the base threshold, and every class
        does when ``per_class`` is off."""
        base = torch.clamp(self.overall, min=self.floor, max=self.threshold)
        if not self.per_class or not self.seen.any():
            return base.expand_as(self.confidence).clone()
        top = self.confidence[self.seen].max()
        return torch.where(self.seen, base * self.confidence / top, base.expand_as(self.confidence))


class DistributionAlignment(nn.Module):
    """ReMixMatch's distribution alignment (Berthelot et al., ICLR 2020) per pixel: the teacher's class
    probabilities are multiplied by ``target / running mean of the teacher's probabilities`` and renormalised,
    so that the classes its pseudo-labels take keep the target's shares.

    A teacher fitted to one micrograph can drift into one class and teach the student more of it each step;
    alignment holds its shares. ``prior`` is the annotated masks' pixel count per
    class (a class they lack is never taken). The target is ``(1 - mix) prior + mix anchor``, the anchor being
    the teacher's own mean probabilities over its first ``anchor_steps`` calls (the warmed-up model's view of
    the unlabelled micrographs, before it learns from itself), then frozen, for an annotated image whose class
    shares are not the set's. The running mean starts at the target; all are buffers, so a resumed run continues them.
    """

    def __init__(self, prior: torch.Tensor, momentum: float = 0.99, eps: float = 1e-6, mix: float = 0.0,
                 anchor_steps: int = 50):
        super().__init__()
        if not 0 <= mix <= 1 or anchor_steps < 1:
            raise ValueError(f"mix must lie in [0, 1] and anchor_steps be >= 1, got {mix}, {anchor_steps}")
        prior = prior.double() / prior.sum()
        self.momentum, self.eps, self.mix, self.anchor_steps = momentum, eps, mix, anchor_steps
        self.register_buffer("prior", prior.float())
        self.register_buffer("running", prior.float().clamp(min=eps))
        self.register_buffer("anchor_sum", torch.zeros_like(prior, dtype=torch.float32))
        self.register_buffer("anchor_count", torch.tensor(0))

    @property
    def target(self) -> torch.Tensor:
        """(C,) the class shares the pseudo-labels are aligned to."""
        if self.mix == 0 or self.anchor_count == 0:
            return self.prior
        return (1 - self.mix) * self.prior + self.mix * self.anchor_sum / self.anchor_count

    @torch.no_grad()
    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        """Aligned probabilities (B, C, H, W), each pixel's summing to 1; updates the anchor and the running
        mean first."""
        mean = probs.float().mean(dim=(0, 2, 3))
        if self.mix > 0 and self.anchor_count < self.anchor_steps:
            first = self.anchor_count == 0
            self.anchor_sum.add_(mean)
            self.anchor_count.add_(1)
            if first:
                self.running.copy_(self.target.clamp(min=self.eps))
        self.running.mul_(self.momentum).add_((1 - self.momentum) * mean)
        aligned = probs.float() * (self.target / self.running.clamp(min=self.eps))[None, :, None, None]
        return aligned / aligned.sum(1, keepdim=True).clamp(min=self.eps)


def warp_labels(geometry: ViewGeometry, labels: torch.Tensor) -> torch.Tensor:
    """Label maps (B, H, W) long in view 1's frame -> view 2's frame (nearest: exact for flips and
    quarter turns, the nearest source pixel under the crop-and-resize)."""
    warped = geometry.warp(labels[:, None].float(), mode="nearest")[:, 0]
    return warped.round().long()


class SemiSegmentationModule(SegmentationModule):
    """:class:`pscl.train.module.SegmentationModule` plus the EMA teacher and the unlabelled loss.

    Batches are dicts ``{"labelled": (image, mask), "unlabelled": (image, mask)}``; the unlabelled
    masks are all ``IGNORE_INDEX`` except where a train image's mask is known (diagnostics only).
    """

    def __init__(self, model, config, weights: torch.Tensor, classes: list[str], prior: torch.Tensor):
        super().__init__(model, config, weights, classes)
        # distribution alignment to the annotated masks' class shares (``prior``: their pixels per class), blended
        # with the warmed-up teacher's own by ``semi_align_mix``, when asked for
        self.align = (DistributionAlignment(prior, mix=config.semi_align_mix)
                      if config.semi_align else None)
        self.teacher = copy.deepcopy(model)
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.thresholds = ClassThresholds(len(classes), config.semi_threshold, floor=config.semi_floor,
                                          per_class=config.semi_class_thresholds)
        start = config.semi_start
        self.start = config.steps // 2 if start == -1 else start
        # the strong view's flips and quarter turns, as far as the structure allows (pscl.data.orientation)
        geometry = config.geometry or "free"
        self.views = ViewConfig(rotate=geometry == "free", flip_p=0.0 if geometry == "fixed-x" else 0.5)
        self.strong = StrongPhotometric()

    def semi_weight(self) -> float:
        """The unlabelled loss's weight: 0 for the first ``semi_start`` steps, then a linear ramp."""
        ramp = self.config.semi_rampup or max(1, self.config.steps // 4)
        return self.config.semi_weight * min(1.0, max(0, self.global_step - self.start + 1) / ramp)

    def training_step(self, batch, batch_idx):
        supervised = super().training_step(batch["labelled"], batch_idx)
        if self.global_step < self.start:  # supervised warm-up: a young teacher would teach its mistakes
            return supervised
        if self.global_step == self.start > 0:  # the teacher starts as the warmed-up student
            self.teacher.load_state_dict(self.model.state_dict())
        image, known = batch["unlabelled"]
        self.teacher.eval()
        with torch.no_grad():
            probs = self.teacher(image).float().softmax(1)
            if self.align is not None:
                probs = self.align(probs)
            self.thresholds.update(probs)
            labels, confident = confident_pseudo_labels(probs, self.thresholds.values)
        geometry = draw_geometry(image.shape[0], self.views, image.device)
        strong = self.strong(geometry.warp(image))
        target = warp_labels(geometry, labels.masked_fill(~confident, IGNORE_INDEX))
        logits = self.model(strong)
        taken = target != IGNORE_INDEX
        unsupervised = (F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX) if taken.any()
                        else logits.sum() * 0.0)
        self._log_pseudo_labels(labels, confident, known)
        self.log("train_unsup_loss", unsupervised, on_step=True, on_epoch=False)
        return supervised + self.semi_weight() * unsupervised

    def _log_pseudo_labels(self, labels: torch.Tensor, confident: torch.Tensor, known: torch.Tensor) -> None:
        for c, name in enumerate(self.classes):
            self.log(f"semi_taken_{name}", ((labels == c) & confident).float().mean(), on_step=True, on_epoch=False)
        checked = confident & (known != IGNORE_INDEX)
        if checked.any():
            self.log("semi_pseudo_acc", (labels[checked] == known[checked]).float().mean(), on_step=True,
                     on_epoch=False)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        ema_update(self.model, self.teacher, self.config.semi_ema)



def unlabelled_crops(ds, config) -> "torch.utils.data.Dataset":
    """The unlabelled stream: crops of ``unlabeled/`` and of every train image (never val or test),
    flipped and turned (the teacher's view), with the train images' masks for the diagnostic."""
    import numpy as np

    from pscl.data.crops import RandomCropDataset
    from pscl.data.io import load_micrograph
    images, masks = [], []
    for path in ds.unlabeled_paths():
        image = load_micrograph(path)
        images.append(image)
        masks.append(np.full(image.shape, IGNORE_INDEX, np.uint8))
    for stem in ds.stems("train"):
        image, mask = ds.load_pair(stem)
        images.append(image)
        masks.append(mask)
    batch = config.semi_batch or config.batch_size
    return RandomCropDataset(images, masks, config.crop, config.val_every * batch, seed=config.seed + 7,
                             jitter_strength=0.0, centre_on_labels=False)  # uniform, strokes or not
