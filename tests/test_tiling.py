"""Tiling helpers: test-time augmentation over the 8 flips and quarter turns; ensembles."""
import numpy as np

import pytest

from pscl.inference.tiling import averaged, segment_tiled, with_tta


def per_pixel(tiles):
    """A rotation- and flip-equivariant toy model: each pixel's probabilities from its own value."""
    return np.stack([tiles, 1 - tiles], 1).astype(np.float32)


def leftward(tiles):
    """Not equivariant: class 0 where the pixel is brighter than its left neighbour."""
    shifted = np.concatenate([tiles[:, :, :1], tiles[:, :, :-1]], 2)
    p = (tiles > shifted).astype(np.float32)
    return np.stack([p, 1 - p], 1)


def test_tta_of_an_equivariant_model_equals_its_plain_output_tiled_or_not():
    image = np.random.default_rng(0).random((90, 130), dtype=np.float32)
    for tile, overlap in ((512, 128), (48, 16)):  # one pass, and tiles with a short last one
        plain = segment_tiled(per_pixel, image, 2, tile, overlap)
        tta = segment_tiled(with_tta(per_pixel), image, 2, tile, overlap)
        assert np.array_equal(plain.labels, tta.labels)
        np.testing.assert_allclose(plain.mean_probabilities, tta.mean_probabilities, atol=1e-6)


def test_tta_maps_every_view_back_before_averaging():
    tiles = np.random.default_rng(1).random((2, 16, 24), dtype=np.float32)  # not square
    out = with_tta(leftward)(tiles)
    assert out.shape == (2, 2, 16, 24)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)
    # a direction-dependent model is changed by averaging over directions, so views were really used
    assert not np.allclose(out, leftward(tiles))


def test_an_ensemble_averages_its_members_probabilities():
    tiles = np.random.default_rng(2).random((3, 8, 8), dtype=np.float32)
    mean = averaged([per_pixel, leftward])(tiles)
    np.testing.assert_allclose(mean, (per_pixel(tiles) + leftward(tiles)) / 2, atol=1e-7)
    np.testing.assert_array_equal(averaged([per_pixel])(tiles), per_pixel(tiles))
    with pytest.raises(ValueError, match="at least one"):
        averaged([])
