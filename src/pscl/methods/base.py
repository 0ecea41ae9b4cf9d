"""The shared base of every pretraining method, kept deliberately small.

It holds the U-Net being pretrained, the two-view augmentation, the optimiser and its schedule,
the EMA step of momentum pairs, logging, and the collapse watch. A method subclass adds its heads,
its momentum pairs and queues, and implements :meth:`PretrainMethod.loss`.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from pscl.data.views import ViewConfig, ViewGeometry, make_views
from pscl.losses import alignment_uniformity
from pscl.nn import UNet
from pscl.nn.unet import split_norm
from pscl.runtime import RuntimeConfig


@dataclass
class PretrainConfig(RuntimeConfig):
    """Everything that defines a pretraining run; saved with its checkpoints.

    ``options`` holds the method's own hyper-parameters (temperature, momentum, queue size, ...),
    checked against that method's dataclass at construction.
    """

    method: str = "simclr"
    steps: int = 500
    batch_size: int = 16
    crop: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-6
    warmup_steps: int = 10
    widths: tuple[int, ...] = (32, 64, 128, 256)
    norm: str = "batch"
    views: dict = field(default_factory=dict)  # ViewConfig overrides
    options: dict = field(default_factory=dict)
    log_every: int = 25  # collapse watch period (steps)
    checkpoint_every: int = 100
    dataset: str = ""
    # guided methods (PSCL): which annotated image(s), as in fine-tuning; filled in by pretrain()
    shots: int = 1
    round: int = 0
    annotated_in_batch: bool = True
    classes: list[str] | None = None
    annotated: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.check_positive("steps", "batch_size", "crop", "log_every", "checkpoint_every", "shots")
        if self.crop % 8:
            raise ValueError(f"crop must be a multiple of 8 (three 2x down-samplings), got {self.crop}")
        self.check_runtime()
        self.widths = tuple(int(w) for w in self.widths)
        split_norm(self.norm)


def check_momentum(momentum: float) -> None:
    """EMA momenta must lie in [0, 1); raise ValueError naming the value otherwise."""
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum}")


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` to be updated by EMA only."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(online: nn.Module, target: nn.Module, momentum: float) -> None:
    """target <- m * target + (1 - m) * online, for parameters; buffers (BN statistics) copied."""
    for po, pt in zip(online.parameters(), target.parameters()):
        pt.mul_(momentum).add_(po.detach(), alpha=1 - momentum)
    for bo, bt in zip(online.buffers(), target.buffers()):
        bt.copy_(bo)


class PretrainMethod(L.LightningModule):
    """Base: subclasses define ``hparams_class`` and :meth:`loss`; optionally
    :meth:`momentum_pairs` (EMA after each optimiser step) and :meth:`current_momentum`."""

    hparams_class: type = object
    # train in channels_last (pscl.cpu.fast_layout): faster for methods that stop at the bottleneck
    channels_last: bool = True

    def __init__(self, config: PretrainConfig):
        super().__init__()
        self.config = config
        self.hp = self.hparams_for(config)
        self.view_config = ViewConfig(**config.views)
        self.backbone = UNet(1, config.widths, norm=config.norm)
        self.save_hyperparameters({"config": _plain(config), "method_options": _plain(self.hp)})

    # -- the method's part -------------------------------------------------------------------
    def loss(self, view1: torch.Tensor, view2: torch.Tensor, geometry: ViewGeometry,
             batch: dict) -> tuple[torch.Tensor, dict, tuple[torch.Tensor, torch.Tensor]]:
        """(loss, scalars to log, (z1, z2) global embeddings of the two views for the collapse watch)."""
        raise NotImplementedError

    def momentum_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return []

    def current_momentum(self) -> float:
        return getattr(self.hp, "momentum", 0.99)

    @classmethod
    def hparams_for(cls, config: PretrainConfig):
        """The method's hyper-parameters for a run: ``config.options`` checked against
        ``hparams_class``, then :meth:`resolve_hparams` (settings that depend on the run)."""
        try:
            hp = cls.hparams_class(**config.options)
        except TypeError as exc:
            raise ValueError(f"bad option for method {config.method!r}: {exc}") from None
        cls.resolve_hparams(hp, config)
        return hp

    @classmethod
    def resolve_hparams(cls, hp, config: PretrainConfig) -> None:
        """Fill in, in place, hyper-parameters left to the run (e.g. a queue sized to it)."""

    # -- shared machinery --------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        batch = batch if isinstance(batch, dict) else {"image": batch}
        view1, view2, geometry = make_views(batch["image"], self.view_config)
        loss, logs, (z1, z2) = self.loss(view1, view2, geometry, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {self.config.method} pretraining loss ({loss.item()}) at step "
                                     f"{self.global_step}; lower the learning rate")
        self.log("loss", loss, prog_bar=True)
        for k, v in logs.items():
            self.log(k, v)
        if self.global_step % self.config.log_every == 0:
            self.collapse_watch(z1, z2)
        return loss

    def collapse_watch(self, z1: torch.Tensor, z2: torch.Tensor) -> dict:
        """Log std of normalised embeddings, alignment and uniformity; warn on collapse.

        For D-dimensional unit vectors spread over the sphere the per-dimension std is about
        1/sqrt(D); a collapsed encoder (every image the same embedding) gives std near 0.
        """
        z = F.normalize(torch.cat([z1, z2]).detach().float(), dim=1)
        std = z.std(0).mean().item() if z.shape[0] > 1 else 0.0
        align, uniform = alignment_uniformity(z1, z2)
        stats = {"embedding_std": std, "embedding_std_ratio": std * math.sqrt(z.shape[1]),
                 "alignment": align, "uniformity": uniform}
        for k, v in stats.items():
            self.log(k, v)
        if z.shape[0] > 2 and stats["embedding_std_ratio"] < 0.1:
            rank_zero_warn(f"step {self.global_step}: embeddings look collapsed (std {std:.4f}, "
                           f"{stats['embedding_std_ratio']:.3f} of the uniform 1/sqrt(D))")
        return stats

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # after a real optimiser step only (Lightning calls this after optimizer.step)
        m = self.current_momentum()
        for online, target in self.momentum_pairs():
            ema_update(online, target, m)

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)
        warm, total = self.config.warmup_steps, self.config.steps

        def schedule(step: int) -> float:  # linear warm-up, then cosine to zero
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}


def _plain(obj) -> dict:
    from dataclasses import asdict
    return asdict(obj)
