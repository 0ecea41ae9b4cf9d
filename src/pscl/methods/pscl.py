"""PSCL (Bao et al., Sci. Rep. 2025): image + patch contrast at three decoder scales, with patches
sampled by feature similarity to the annotated image (``docs/method.md``).

Each step's batch holds the annotated crop first (its label map travels with it) and unlabelled
crops after it. Per scale s (decoder maps at 1/4, 1/2, 1/1):

1. dense embeddings of both views (one :class:`DenseHead` per scale);
2. templates: K_s = top_k * 2^s cells per class of the annotated crop, by class coverage in
   view 2's frame (:func:`pscl.methods.sampling.select_templates`);
3. every unlabelled crop's view-2 cells matched greedily one-to-one to the templates by
   similarity (or at random: the ablation), inheriting the templates' classes and weights;
4. the positive of a sampled view-2 cell is the view-1 cell that sees the same material (the
   tracked geometry); the variant's patch loss contrasts them.

L = (1 - a) L_image + a * mean_s L_patch_s. Subclasses give the two variants (SimCLR, MoCo).
Generalised beyond the paper's code: any number of classes, any crop size (multiple of 8).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pscl.data.views import ViewGeometry, cell_coverage
from pscl.methods.base import PretrainMethod
from pscl.nn import DenseHead, GlobalHead
from pscl.methods.sampling import decline_matches, match_greedy, match_random, select_templates

SCALE_STRIDES = (4, 2, 1)  # decoder outputs of scales s = 0, 1, 2


@dataclass
class PSCLHparams:
    """Shared switches; ``scales`` and ``sampling`` and ``a`` make the ablations."""

    a: float = 0.7
    top_k: int = 4
    temperature: float = 0.5
    scales: tuple[int, ...] = (0, 1, 2)
    sampling: str = "similarity"  # or "random"
    dim: int = 64
    # guidance that works on real micrographs (the paper's rule: 0, "uniform", False):
    template_purity: float = 0.75  # templates only from cells covering their class at least this much
    annotated_crop: str = "cover"  # the annotated crop: best of `crop_candidates` positions by class cover
    crop_candidates: int = 16
    decline: bool = True  # a matched cell keeps its class only if clearly closest to that class
    margin: float = 0.05  # ... by this much cosine similarity

    def __post_init__(self):
        self.scales = tuple(int(s) for s in self.scales)
        if not 0 <= self.a <= 1:
            raise ValueError(f"a must lie in [0, 1], got {self.a}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not self.scales or not set(self.scales) <= {0, 1, 2}:
            raise ValueError(f"scales must be a non-empty subset of (0, 1, 2), got {self.scales}")
        if self.sampling not in ("similarity", "random"):
            raise ValueError(f"sampling must be 'similarity' or 'random', got {self.sampling!r}")
        if not 0 <= self.template_purity <= 1:
            raise ValueError(f"template_purity must lie in [0, 1], got {self.template_purity}")
        if self.annotated_crop not in ("cover", "uniform"):
            raise ValueError(f"annotated_crop must be 'cover' or 'uniform', got {self.annotated_crop!r}")
        if self.crop_candidates < 1:
            raise ValueError(f"crop_candidates must be >= 1, got {self.crop_candidates}")


@dataclass
class PatchCells:
    """Sampled cells of one scale: view-2 cells (B, T), their view-1 partners (B, T), the
    (pseudo-)class of each column (T,), each cell's coverage weight (B, T) and whether it takes
    part (B, T): a declined match does not (:func:`pscl.methods.sampling.decline_matches`)."""

    cells2: torch.Tensor
    cells1: torch.Tensor
    classes: torch.Tensor | None
    weights: torch.Tensor
    keep: torch.Tensor

    @property
    def labels(self) -> torch.Tensor | None:
        """(B*T,) class of every sampled cell, rows in (image, column) order; None without classes."""
        return None if self.classes is None else self.classes.repeat(self.cells2.shape[0])


class PSCLBase(PretrainMethod):
    """Heads and patch sampling shared by both variants."""

    # the patch loss trains the decoder, whose backward is slower in NHWC on AVX2-only CPUs
    # (pscl.train.trainer.fit switches it on where faster: pscl.cpu.trains_channels_last)
    channels_last = False

    def __init__(self, config):
        super().__init__(config)
        if not config.classes:
            raise ValueError("PSCL needs the class names of the annotated dataset (config.classes)")
        self.num_classes = len(config.classes)
        w = self.backbone.widths  # decoder channels at scales 0, 1, 2: w2, w1, w0
        self.global_head = GlobalHead(w[-1], out=self.hp.dim)
        self.dense_heads = nn.ModuleList(DenseHead(w[2 - s], out=self.hp.dim) for s in range(3))
        grid = config.crop // 4
        if self.num_classes * self.hp.top_k > grid * grid:
            raise ValueError(f"{self.num_classes} classes x top_k {self.hp.top_k} exceed the {grid}x{grid} cells "
                             f"of scale 0 at crop {config.crop}")

    def per_class(self, scale: int) -> int:
        return self.hp.top_k * 2 ** scale

    @torch.no_grad()
    def pick_cells(self, scale: int, e2: torch.Tensor, geometry: ViewGeometry, batch: dict) -> PatchCells:
        """Choose the cells of one scale. e2: (B, D, N) view-2 embeddings (detached use)."""
        b, _, n = e2.shape
        grid = int(round(n ** 0.5))
        k = self.per_class(scale)
        t = self.num_classes * k
        n_annotated = int(batch.get("annotated", 0))
        match = geometry.match_cells(grid)  # (B, N): view-2 cell -> view-1 cell
        if n_annotated == 0:  # ablation: no annotated image, random cells, no classes
            cells2 = match_random(b, t, n, device=e2.device)
            return PatchCells(cells2, match.gather(1, cells2), None, torch.ones(b, t, device=e2.device),
                               torch.ones(b, t, dtype=torch.bool, device=e2.device))
        coverage = cell_coverage(batch["mask"][:1], self.num_classes, grid, _first(geometry))[0].flatten(1)
        tmpl_cells, classes, tmpl_weights = select_templates(coverage, k, purity=self.hp.template_purity)
        found, others = len(tmpl_cells), b - 1
        keep = torch.ones(b, found, dtype=torch.bool, device=e2.device)
        if self.hp.sampling == "random":
            assigned = match_random(others, found, n, device=e2.device)
        else:
            with torch.autocast(e2.device.type, enabled=False):  # bf16 similarities would tie
                emb = F.normalize(e2.float(), dim=1)
                templates = emb[0][:, tmpl_cells]  # (D, T)
                sim = torch.einsum("dt,bdn->btn", templates, emb[1:])  # (B-1, T, N)
            assigned = match_greedy(sim)
            if self.hp.decline:
                keep[1:] = decline_matches(sim, assigned, classes, self.hp.margin)
        cells2 = torch.cat([tmpl_cells[None], assigned], 0)  # (B, found)
        weights = tmpl_weights[None].expand(b, found) * keep
        # pad to the full C*K columns (not kept) so every process's cells have the same shape
        pad = t - found
        if pad:
            cells2 = F.pad(cells2, (0, pad))
            weights, keep = F.pad(weights, (0, pad)), F.pad(keep, (0, pad))
            classes = F.pad(classes, (0, pad))
        return PatchCells(cells2, match.gather(1, cells2), classes, weights, keep)

    @staticmethod
    def embed_all(feature: torch.Tensor, head: nn.Module) -> torch.Tensor:
        """(B, D, N) embeddings of every cell of a decoder map (a view: no copy in either layout)."""
        return flat_cells(head(feature))

    @staticmethod
    def embed_at(feature: torch.Tensor, head: nn.Module, cells: torch.Tensor) -> torch.Tensor:
        """(B*T, D) embeddings of the cells (B, T) only: the dense head is per cell (1x1 convs and
        a per-cell LayerNorm), so running it on the gathered features equals gathering its map,
        at a fraction of the cost."""
        emb = head(map_cells(feature, cells)[..., None])[..., 0]  # (B, C, T) -> (B, D, T)
        return emb.permute(0, 2, 1).reshape(-1, emb.shape[1])

    def combine(self, image_loss: torch.Tensor, patch_losses: dict[int, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        patch = torch.stack(list(patch_losses.values())).mean()
        loss = (1 - self.hp.a) * image_loss + self.hp.a * patch
        logs = {"loss_image": image_loss.detach(), "loss_patch": patch.detach(),
                **{f"loss_patch_s{s}": v.detach() for s, v in patch_losses.items()}}
        return loss, logs


def _first(geometry: ViewGeometry) -> ViewGeometry:
    return ViewGeometry(geometry.matrix[:1], geometry.offset[:1], geometry.flip[:1], geometry.quarter_turns[:1],
                        geometry.crop_scale[:1])


def _channels_last(t: torch.Tensor) -> bool:
    """A map laid out channels_last (and not also plainly contiguous, as a 1-channel or 1x1 map is)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def flat_cells(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, N), N = H*W in row-major order; a view of a channels_last map too,
    where ``flatten(2)`` would copy it."""
    if _channels_last(t):
        return t.permute(0, 2, 3, 1).flatten(1, 2).transpose(1, 2)
    return t.flatten(2)


def map_cells(feature: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) map at (B, T) cell indices -> (B, C, T), gathered in the map's own layout so
    that the gradient flowing back into a channels_last decoder is channels_last too (an NCHW
    gradient there makes the decoder's LeakyReLU and convolution backward several times slower)."""
    if _channels_last(feature):
        rows = feature.permute(0, 2, 3, 1).flatten(1, 2)  # (B, N, C), a view
        return rows.gather(1, cells[..., None].expand(-1, -1, rows.shape[2])).transpose(1, 2)
    return cells_of(feature.flatten(2), cells)


def cells_of(e: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(B, D, N) maps at (B, T) cell indices -> (B, D, T)."""
    return e.gather(2, cells[:, None, :].expand(-1, e.shape[1], -1))


def gather_cells(e: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """(B, D, N) embeddings at (B, T) cell indices -> (B*T, D), rows in (image, cell) order."""
    return cells_of(e, cells).permute(0, 2, 1).reshape(-1, e.shape[1])
