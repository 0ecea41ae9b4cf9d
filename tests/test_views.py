"""Paired views: tracked geometry checked on images whose pixels encode their own coordinates."""
import pytest
import torch

from pscl.data.views import ViewConfig, cell_coverage, make_views, draw_geometry

S = 32


def coordinate_image(batch: int) -> torch.Tensor:
    """(B, 2, S, S): channel 0 = row index, channel 1 = column index."""
    yy, xx = torch.meshgrid(torch.arange(S, dtype=torch.float64), torch.arange(S, dtype=torch.float64), indexing="ij")
    return torch.stack([yy, xx])[None].repeat(batch, 1, 1, 1)


def geometry(batch, crop_min, seed=0):
    g = torch.Generator().manual_seed(seed)
    geo = draw_geometry(batch, ViewConfig(crop_min=crop_min), generator=g)
    geo.matrix, geo.offset = geo.matrix.double(), geo.offset.double()
    return geo


def test_every_flip_and_rotation_maps_pixels_and_cells_exactly():
    geo = geometry(64, crop_min=1.0)
    assert set(geo.quarter_turns.tolist()) == {0, 1, 2, 3} and set(geo.flip.tolist()) == {True, False}
    view2 = geo.warp(coordinate_image(64))
    # a pure flip/rotation permutes pixels: every view-2 pixel holds exact integer coordinates
    assert torch.allclose(view2, view2.round(), atol=1e-9)
    view2 = view2.round()
    for stride in (1, 2, 4, 8):
        grid = S // stride
        match = geo.match_cells(grid)  # (B, grid*grid)
        centre = view2[:, :, stride // 2::stride, stride // 2::stride]  # a pixel inside each view-2 cell
        expected = (centre[:, 0] // stride) * grid + centre[:, 1] // stride
        assert torch.equal(match, expected.reshape(64, -1).long()), stride


def test_identity_maps_each_cell_to_itself_and_four_quarter_turns_are_identity():
    geo = geometry(4, crop_min=1.0)
    geo.matrix = torch.eye(2, dtype=torch.float64).repeat(4, 1, 1)
    assert torch.equal(geo.match_cells(8), torch.arange(64).repeat(4, 1))
    quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
    geo.matrix = torch.linalg.matrix_power(quarter, 4).repeat(4, 1, 1)
    assert torch.equal(geo.match_cells(8), torch.arange(64).repeat(4, 1))


@pytest.mark.parametrize("seed", range(3))
def test_crops_map_within_one_cell(seed):
    geo = geometry(32, crop_min=0.8, seed=seed)
    view2 = geo.warp(coordinate_image(32))
    for stride in (1, 4, 8):
        grid = S // stride
        match = geo.match_cells(grid)
        # the material at each view-2 cell centre (interpolated coordinates) lies in, or within one
        # cell of, the view-1 cell it was matched to
        c = stride / 2 - 0.5
        centre = torch.nn.functional.interpolate(view2, size=grid, mode="bilinear", align_corners=False) if stride > 1 else view2
        true_cell = torch.stack([(centre[:, 0] + 0.5) // stride, (centre[:, 1] + 0.5) // stride], 1).reshape(32, 2, -1)
        got = torch.stack([match // grid, match % grid], 1)
        assert (true_cell - got).abs().max() <= 1, (stride, c)
        inside = (got >= 0) & (got < grid)
        assert inside.all()


def test_views_are_batched_and_jittered_independently():
    x = torch.rand(6, 1, S, S)
    v1, v2, geo = make_views(x, generator=torch.Generator().manual_seed(1))
    assert v1.shape == v2.shape == x.shape
    assert not torch.allclose(v1, x)  # jitter applied (p 0.8 over 6 samples)
    with pytest.raises(ValueError, match="square"):
        make_views(torch.rand(1, 1, 8, 16))


def test_label_map_follows_view_two_geometry():
    labels = torch.zeros(8, S, S, dtype=torch.long)
    labels[:, :, S // 2:] = 1  # right half class 1
    labels[:, 0, 0] = 255
    geo = geometry(8, crop_min=1.0)
    cov = cell_coverage(labels, 2, S, geo)  # full resolution: one-hot of the warped labels
    warped = geo.warp(labels[:, None].double()).squeeze(1)  # 255 stays 255 under a permutation
    assert torch.allclose(cov[:, 1].double(), (warped == 1).double())
    coarse = cell_coverage(labels, 2, 4)
    assert torch.allclose(coarse[:, 1, :, 2:], torch.ones(8, 4, 2))
    assert coarse[0, 0, 0, 0] == pytest.approx(1.0)  # the 255 pixel counts for no class: a share of 63 labelled
