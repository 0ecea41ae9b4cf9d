"""Linear probe: how well a U-Net's features segment, without the dynamics of fine-tuning.

The U-Net (pretrained, or randomly initialised as the reference) is frozen with BatchNorm in eval
mode, and only its 1x1 classifier is trained on the annotated image(s) of a round, on the last
decoder output, the map the classifier of fine-tuning reads. This is the linear evaluation of
self-supervised learning (solo-learn's linear eval), per pixel. It separates "are the pretrained
features good?" from "does fine-tuning keep them?": on MetalDAM at the `quick` budget the probe
ranks PSCL > the global methods > random while full fine-tuning does not
(``benchmarks/pretraining/diagnostics-metaldam``).

Example::

    from pscl.studies.probe import ProbeConfig, linear_probe
    pretrained = linear_probe("syn", "runs/pre-pscl", ProbeConfig(round=0))["dice_fg"]
    random = linear_probe("syn", None, ProbeConfig(round=0, widths=(16, 32, 64, 128)))["dice_fg"]
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from pscl.checkpoints import load_backbone, read_model_file
from pscl.data.crops import RandomCropDataset
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.errors import DataError
from pscl.losses import class_weights, segmentation_loss
from pscl.metrics import score_split
from pscl.nn import UNet
from pscl.inference.predict import segment


@dataclass
class ProbeConfig:
    """Settings of a linear probe. ``widths`` is used only without a pretrained run (random
    features); ``stems`` overrides the round's draw of ``shots`` annotated train images."""

    shots: int = 1
    round: int = 0
    stems: list[str] | None = None
    steps: int = 150
    crop: int = 128
    batch_size: int = 8
    lr: float = 1e-2
    seed: int = 0
    widths: tuple[int, ...] = (16, 32, 64, 128)

    def __post_init__(self) -> None:
        for name in ("shots", "steps", "crop", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"probe {name} must be positive, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"probe lr must be positive, got {self.lr}")


def linear_probe(data: str | Path | DatasetFolder, init: str | Path | None, config: ProbeConfig | None = None,
                 split: str = "val") -> dict:
    """Train only the classifier of a frozen U-Net (``init``: a pretraining or fine-tuning run, or
    None for random features) on the round's annotated image(s); return the scores on ``split``
    (:func:`pscl.metrics.score_split`) with the config and the annotated stems."""
    config = config or ProbeConfig()
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    if ds.classes is None:
        raise DataError(f"{ds.root}: a linear probe needs a dataset folder with dataset.json and masks")
    stems = ds.annotated(config.shots, config.round, stems=config.stems)
    torch.manual_seed(config.seed)
    widths = tuple(read_model_file(init)["widths"]) if init else tuple(config.widths)
    model = UNet(ds.num_classes, widths)
    if init:
        load_backbone(model, init)
    images, masks = map(list, zip(*(ds.load_pair(s) for s in stems)))
    train_classifier(model, images, masks, config, label=f"{ds.root} (init {init})")
    return {**score_split(ds, split, lambda im: segment(model, im).labels), "init": str(init) if init else None,
            "annotated": stems, "config": asdict(config)}


def train_classifier(model: UNet, images: list, masks: list, config: ProbeConfig, label: str = "linear probe") -> UNet:
    """Train ``model.classifier`` alone on random crops of the annotated images; every other weight
    and the BatchNorm statistics stay as they are (eval mode, no gradients)."""
    crops = RandomCropDataset(images, masks, config.crop, config.steps * config.batch_size, seed=config.seed)
    weights = class_weights(masks, model.num_classes)
    model.eval().requires_grad_(False)
    model.classifier.requires_grad_(True)
    optimizer = torch.optim.Adam(model.classifier.parameters(), lr=config.lr)
    for x, y in DataLoader(crops, batch_size=config.batch_size):
        with torch.no_grad():  # frozen: the features need no graph
            features = model.features(x)
        loss = segmentation_loss(model.classifier(features), y, weights)
        if not torch.isfinite(loss):
            raise DataError(f"{label}: linear probe loss is {loss.item()}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model
