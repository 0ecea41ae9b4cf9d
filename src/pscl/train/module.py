"""The Lightning module of fine-tuning: trains a U-Net on labelled crops, scores whole images while
it trains (the val split's, or the annotation held out of training: :mod:`pscl.train.holdout`)."""
from __future__ import annotations

from dataclasses import asdict

import lightning as L
import numpy as np
import torch

from pscl.losses import affinity_loss, segmentation_loss
from pscl.metrics import confusion_matrix, scores
from pscl.nn import UNet


class SegmentationModule(L.LightningModule):
    """Trains a U-Net on crops; validates on whole val images (split-pooled dice_fg)."""

    unused_parameters = False  # (every parameter gets a gradient: plain DDP)

    def __init__(self, model: UNet, config, weights: torch.Tensor, classes: list[str]):
        """``config``: the run's :class:`pscl.train.finetune.FinetuneConfig` (its fields are read here)."""
        super().__init__()
        self.model, self.config, self.classes = model, config, classes
        self.register_buffer("class_weights", weights)
        self.save_hyperparameters({"config": asdict(config), "classes": classes})
        self._confusion = np.zeros((len(classes),) * 2, dtype=np.int64)

    def training_step(self, batch, batch_idx):
        image, target = batch
        self.model.train()
        logits = self.model(image)
        loss = segmentation_loss(logits, target, self.class_weights, self.config.dice_weight)
        if self.config.affinity:
            loss = loss + self.config.affinity * affinity_loss(logits, image)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite fine-tuning loss ({loss.item()}) at step {self.global_step}; "
                                     "lower the learning rate or check the input images")
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def validation_step(self, batch, batch_idx):
        image, target = batch
        pred = self.model(image).argmax(1)
        self._confusion += confusion_matrix(pred.cpu().numpy(), target.cpu().numpy(), len(self.classes))

    def on_validation_epoch_end(self) -> None:
        s = scores(self._confusion, self.classes)
        self._confusion[:] = 0
        # (every process scores every image: the same numbers, averaged under DDP)
        on = score_prefix(self.config)
        self.log(f"{on}_dice_fg", s["dice_fg"] if np.isfinite(s["dice_fg"]) else 0.0, prog_bar=True, sync_dist=True)
        self.log(f"{on}_acc", s["acc"], sync_dist=True)
        self.log(f"{on}_miou", s["miou"] if np.isfinite(s["miou"]) else 0.0, sync_dist=True)

    def configure_optimizers(self):
        lr, contracting = self.config.lr, self.config.lr_contracting_init
        if self.config.init:
            groups = [{"params": self.model.contracting_parameters(), "lr": contracting or lr},
                      {"params": self.model.expanding_parameters(), "lr": lr}]
        else:
            groups = [{"params": self.model.parameters(), "lr": lr}]
        optimizer = torch.optim.Adam(groups)
        if self.config.lr_schedule == "constant":
            return optimizer
        steps = self.config.steps
        poly = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / steps) ** 0.9)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": poly, "interval": "step"}}


def score_prefix(config) -> str:
    """What a run scores while it trains: ``val`` masks, or the ``holdout`` annotation."""
    return "holdout" if config.guarded else "val"


class WholeImages(torch.utils.data.Dataset):
    """Whole (image, mask) pairs, one a batch: what a run is scored on while it trains."""

    def __init__(self, items: list[tuple[np.ndarray, np.ndarray]]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        image, mask = self.items[i]
        return torch.from_numpy(image)[None], torch.from_numpy(mask.astype(np.int64))
