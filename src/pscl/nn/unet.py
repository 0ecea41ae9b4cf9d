"""The U-Net of the paper, as separate encoder, decoder and segmentation head.

Architecture (``docs/method.md``): grey input; widths w0..w3 (default 32/64/128/256);
each stage is two 3x3 conv + norm + LeakyReLU; three 2x max-pool down-samplings, so the bottleneck
is at 1/8; transposed-conv up-sampling concatenated with the skip of the same size. The decoder's
three outputs at 1/4, 1/2 and 1/1 are the patch scales s = 0, 1, 2 of PSCL; the classifier is a
1x1 conv on the last one.

Encoder, decoder and head meet at a feature-list contract: the encoder returns
``[f1/1, f1/2, f1/4, f1/8]``, the decoder ``[d1/4, d1/2, d1/1]``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pscl.nn.heads import ChannelLayerNorm

NORMS = ("batch", "instance", "group")
# ``NORM+ln`` (e.g. "batch+ln"): every decoder block also ends with a per-pixel LayerNorm over the
# channels, as the paper's U-Net does; it depends on no batch statistics, so fine-tuning on crops
# of one image cannot overwrite it the way it overwrites BatchNorm's running statistics
DECODER_LAYER_NORM = "+ln"


def split_norm(norm: str) -> tuple[str, bool]:
    """``"batch+ln"`` -> ("batch", True): the conv blocks' norm, and whether decoder blocks end
    with a per-pixel LayerNorm."""
    kind, ln = norm.removesuffix(DECODER_LAYER_NORM), norm.endswith(DECODER_LAYER_NORM)
    if kind not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, optionally with {DECODER_LAYER_NORM!r} "
                         f"(decoder LayerNorm), got {norm!r}")
    return kind, ln


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class ConvBlock(nn.Sequential):
    """Two (3x3 conv -> norm -> LeakyReLU) layers."""

    def __init__(self, c_in: int, c_out: int, norm: str = "batch", layer_norm: bool = False):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.LeakyReLU(0.01, inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.LeakyReLU(0.01, inplace=True),
            *([ChannelLayerNorm(c_out)] if layer_norm else []),
        )


class UNetEncoder(nn.Module):
    """Contracting path: returns the feature list [f1/1, f1/2, f1/4, f1/8 (bottleneck)]."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], norm: str):
        super().__init__()
        chans, norm = (in_channels, *widths), split_norm(norm)[0]
        self.stages = nn.ModuleList(ConvBlock(chans[i], chans[i + 1], norm) for i in range(len(widths)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, stage in enumerate(self.stages):
            x = stage(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats


class UNetDecoder(nn.Module):
    """Expanding path: from the encoder's features to [d1/4, d1/2, d1/1]."""

    def __init__(self, widths: tuple[int, ...], norm: str):
        super().__init__()
        rev = widths[::-1]  # 256, 128, 64, 32
        norm, layer_norm = split_norm(norm)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(rev[i], rev[i + 1], 2, stride=2) for i in range(len(rev) - 1))
        self.blocks = nn.ModuleList(ConvBlock(2 * rev[i + 1], rev[i + 1], norm, layer_norm)
                                    for i in range(len(rev) - 1))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x, skips, outs = feats[-1], feats[-2::-1], []
        for up, block, skip in zip(self.ups, self.blocks, skips):
            x = up(x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd sizes: match the skip's own size
                x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([skip, x], 1))
            outs.append(x)
        return outs


@dataclass
class UNetOutput:
    """Logits (B, C, H, W) and, on request, the bottleneck and the three decoder maps."""

    logits: torch.Tensor | None
    bottleneck: torch.Tensor | None = None
    decoder: list[torch.Tensor] | None = None


class UNet(nn.Module):
    """U-Net with a 1x1 classifier; any input size (padded to a multiple of 8, cropped back)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = (32, 64, 128, 256),
                 in_channels: int = 1, norm: str = "batch"):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"widths must be four positive channel counts, got {widths}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.widths, self.num_classes = widths, num_classes
        self.encoder = UNetEncoder(in_channels, widths, norm)
        self.decoder = UNetDecoder(widths, norm)
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor, return_features: bool = False,
                decode: bool = True) -> torch.Tensor | UNetOutput:
        """Logits (B, C, H, W); with ``return_features`` a :class:`UNetOutput`. ``decode=False``
        (with ``return_features``) stops at the bottleneck: global-only pretraining needs no more."""
        h, w = x.shape[-2:]
        x = self._centre_and_pad(x)
        feats = self.encoder(x)

        def crop(t: torch.Tensor) -> torch.Tensor:  # the cells that see the unpadded image
            s = x.shape[-1] // t.shape[-1]
            return t[..., : -(-h // s), : -(-w // s)]
        if return_features and not decode:
            return UNetOutput(None, crop(feats[-1]), None)
        dec = self.decoder(feats)
        logits = self.classifier(dec[-1])[..., :h, :w]
        if not return_features:
            return logits
        return UNetOutput(logits, crop(feats[-1]), [crop(d) for d in dec])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck (B, widths[3], h, w) of the cells that see the image: what global-only
        pretraining (SimCLR, MoCo, BYOL, DenseCL) trains."""
        return self(x, return_features=True, decode=False).bottleneck

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's input, (B, widths[0], H, W): for training a classifier on frozen features."""
        h, w = x.shape[-2:]
        return self.decoder(self.encoder(self._centre_and_pad(x)))[-1][..., :h, :w]

    def _centre_and_pad(self, x: torch.Tensor) -> torch.Tensor:
        # inputs are normalised micrographs in 0..1 (pscl.data.io.normalize_intensity); centring
        # here keeps training, prediction and exported models consistent
        x = (x - 0.5) * 4.0
        m = self.multiple
        pad_h, pad_w = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        if pad_h or pad_w or torch.compiler.is_exporting():  # an exported graph must pad any size
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return x

    def contracting_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def expanding_parameters(self) -> list[nn.Parameter]:
        return list(self.decoder.parameters()) + list(self.classifier.parameters())

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` (fine-tuning starts from pretrained weights)."""
        self.num_classes = num_classes
        self.classifier = nn.Conv2d(self.widths[0], num_classes, 1)
