"""Two views of a batch of square crops, with the geometry kept so cells can be matched.

View 1: intensity jitter only. View 2: independent jitter, then a flip (p 0.5), a rotation by
k * 90 degrees (k uniform in 0..3) and a crop keeping 80-100 % of each side, resized back to the
full size (``docs/method.md``). Everything runs batched on the tensors' device.

Geometry as one affine map per crop. In the normalised coordinates of ``F.affine_grid``
(``align_corners=False``: the centre of pixel i of n sits at (2i + 1) / n - 1), view 2 is
``grid_sample(view1_geometry, grid)`` with ``p1 = A p2 + t``: the point p2 of view 2 shows the
material at p1 of view 1. Flips and quarter turns make A a signed permutation, so pixel and cell
centres map exactly onto pixel and cell centres; the crop scales A by the kept fraction.
A view-2 cell is matched to the view-1 cell containing the image of its centre: exact for a pure
flip/rotation, within one cell under crops (the quantisation the method accepts).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ViewGeometry:
    """Per-crop geometry of view 2 relative to view 1: ``p1 = matrix @ p2 + offset``.

    matrix: (B, 2, 2) acting on (x, y) normalised coordinates; offset: (B, 2); plus the drawn
    parameters for logging and tests: flip (B,) bool, quarter_turns (B,) long, crop_scale (B, 2)
    (kept fraction of height and width).
    """

    matrix: torch.Tensor
    offset: torch.Tensor
    flip: torch.Tensor
    quarter_turns: torch.Tensor
    crop_scale: torch.Tensor

    @property
    def theta(self) -> torch.Tensor:
        """(B, 2, 3) for ``F.affine_grid``."""
        return torch.cat([self.matrix, self.offset[:, :, None]], 2)

    def warp(self, x: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """Apply view 2's geometry to images or maps (B, C, H, W) of view 1's frame."""
        grid = F.affine_grid(self.theta.to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode=mode, padding_mode="border", align_corners=False)

    def match_cells(self, grid: int) -> torch.Tensor:
        """(B, grid*grid) long: for every view-2 cell (row-major), the index of its view-1 cell."""
        centres = (2 * torch.arange(grid, device=self.matrix.device, dtype=self.matrix.dtype) + 1) / grid - 1
        yy, xx = torch.meshgrid(centres, centres, indexing="ij")
        p2 = torch.stack([xx.reshape(-1), yy.reshape(-1)], 0)  # (2, N) as (x, y)
        p1 = self.matrix @ p2 + self.offset[:, :, None]  # (B, 2, N)
        # normalised -> cell index; the small shift keeps exact centres off floor() boundaries
        cell = torch.floor((p1 + 1) / 2 * grid + 1e-4).long().clamp(0, grid - 1)
        return cell[:, 1] * grid + cell[:, 0]


@dataclass
class ViewConfig:
    """Augmentation strengths (the method's defaults)."""

    jitter: float = 0.16  # brightness and contrast, each +- this fraction
    jitter_p: float = 0.8
    flip_p: float = 0.5
    rotate: bool = True
    crop_min: float = 0.8  # kept fraction of each side, uniform in [crop_min, 1]


def jitter_batch(x: torch.Tensor, strength: float, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-crop brightness and contrast jitter around mid-grey, applied with probability p."""
    b = x.shape[0]
    shape = (b, 1, 1, 1)
    on = (torch.rand(shape, generator=generator, device=x.device) < p).to(x.dtype)
    contrast = 1 + on * (torch.rand(shape, generator=generator, device=x.device) * 2 - 1) * strength
    brightness = on * (torch.rand(shape, generator=generator, device=x.device) * 2 - 1) * strength * 0.5
    return (x - 0.5) * contrast + 0.5 + brightness


def draw_geometry(batch: int, config: ViewConfig, device: torch.device | str = "cpu",
                    generator: torch.Generator | None = None) -> ViewGeometry:
    """Draw flips, quarter turns and crops for ``batch`` crops."""
    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=device)

    flip = rand(batch) < config.flip_p
    turns = (torch.floor(rand(batch) * 4).long().clamp(max=3) if config.rotate
             else torch.zeros(batch, dtype=torch.long, device=device))
    scale = config.crop_min + (1 - config.crop_min) * rand(batch, 2)  # (B, 2): (h, w) kept
    # crop centre anywhere that keeps the crop inside the image
    centre = (rand(batch, 2) * 2 - 1) * (1 - scale)  # (B, 2) as (y, x) in normalised units
    # p1 = C(F(R(p2))): R = quarter turns, F = flip of x, C = crop (scale + shift); on (x, y)
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0], device=device)[turns]
    sin = torch.tensor([0.0, 1.0, 0.0, -1.0], device=device)[turns]
    rot = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # (B, 2, 2)
    fl = torch.ones(batch, 2, device=device)
    fl[:, 0] = torch.where(flip, -1.0, 1.0)
    crop = torch.diag_embed(scale.flip(1))  # (x, y) order
    matrix = crop @ torch.diag_embed(fl) @ rot
    return ViewGeometry(matrix, centre.flip(1), flip, turns, scale)


def make_views(x: torch.Tensor, config: ViewConfig = ViewConfig(),
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, ViewGeometry]:
    """(view1, view2, geometry) from a batch of square crops (B, 1, S, S) in 0..1."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"views need square crops (rotation), got {tuple(x.shape[-2:])}")
    geometry = draw_geometry(x.shape[0], config, x.device, generator)
    view1 = jitter_batch(x, config.jitter, config.jitter_p, generator)
    view2 = jitter_batch(geometry.warp(x), config.jitter, config.jitter_p, generator)
    return view1, view2, geometry


def cell_coverage(labels: torch.Tensor, num_classes: int, grid: int, geometry: ViewGeometry | None = None) -> torch.Tensor:
    """Class coverage (B, C, grid, grid) of every cell, fractions in 0..1.

    ``labels`` (B, H, W) long (255 = unlabelled: counts for no class) is one-hot encoded, warped
    with view 2's geometry when given (bilinear on the one-hot maps) and area-averaged to the grid.
    Where labels are sparse (strokes), a cell's coverage is a share of its labelled pixels, so a cell
    on a stroke is pure however thin the stroke; cells under :data:`MIN_LABELLED` labelled cover nothing.
    """
    valid = labels != 255
    onehot = F.one_hot(labels.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).float()
    onehot = onehot * valid[:, None]
    if geometry is not None:
        onehot = geometry.warp(onehot)
    coverage = F.adaptive_avg_pool2d(onehot, grid)
    if bool(valid.all()):  # dense labels: the share of the cell's pixels
        return coverage
    labelled = coverage.sum(1, keepdim=True)
    return torch.where(labelled >= MIN_LABELLED, coverage / labelled.clamp(min=1e-6), torch.zeros_like(coverage))


MIN_LABELLED = 0.1  # a sparsely labelled cell with fewer labelled pixels covers no class
