import numpy as np
import pytest
from scipy import ndimage

from pscl.data import synth_micrograph, synthesize_dataset


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def test_generator_is_deterministic_by_seed(tmp_path):
    a = synthesize_dataset(tmp_path / "a", n=3, seed=5, size=96, n_unlabeled=2)
    b = synthesize_dataset(tmp_path / "b", n=3, seed=5, size=96, n_unlabeled=2)
    c = synthesize_dataset(tmp_path / "c", n=3, seed=6, size=96, n_unlabeled=2)
    assert _files(a) == _files(b)
    assert _files(a) != _files(c)


def test_classes_differ_by_texture_not_only_brightness():
    image, mask = synth_micrograph(np.random.default_rng(0), 256)
    image = image.astype(np.float32)
    assert set(np.unique(mask)) == {0, 1, 2}
    matrix, lamellar = image[mask == 0], image[mask == 1]
    # same mean grey (within a few grey levels) but the lamellae vary far more locally
    assert abs(matrix.mean() - lamellar.mean()) < 12
    # local contrast after removing the pixel noise: lamellae vary far more than matrix grains
    smooth = ndimage.gaussian_filter(image, 1.0)
    local_std = np.sqrt(np.clip(ndimage.uniform_filter(smooth ** 2, 9) - ndimage.uniform_filter(smooth, 9) ** 2, 0, None))
    inner = [ndimage.binary_erosion(mask == c, iterations=5) for c in (0, 1)]
    assert np.median(local_std[inner[1]]) > 2 * np.median(local_std[inner[0]])


def test_class_subsets():
    _, only_lamellar = synth_micrograph(np.random.default_rng(1), 128, classes=(1,))
    _, only_matrix = synth_micrograph(np.random.default_rng(1), 128, classes=(0,))
    assert set(np.unique(only_lamellar)) == {1}
    assert set(np.unique(only_matrix)) == {0}


def test_cross_sections_stack_their_layers_top_to_bottom_with_thin_cracks_in_the_coating(tmp_path):
    from pscl.data import load_dataset
    from pscl.data.synth_cross import CROSS_CLASSES, synth_cross_section
    from scipy import ndimage

    for seed in range(4):
        image, mask = synth_cross_section(np.random.default_rng(seed), 192)
        rows = np.arange(192)[:, None].repeat(192, 1)
        mean_row = [rows[mask == c].mean() for c in range(3)]
        assert mean_row[0] < mean_row[1] < mean_row[2]  # resin above coating above substrate
        assert (mask == 3).any()
        cracks = mask == 3
        assert not ndimage.binary_erosion(cracks, np.ones((5, 5))).any()  # thin: nowhere 5 px across
        assert set(np.unique(mask[ndimage.binary_dilation(cracks) & ~cracks])) <= {0, 1}  # within the coating
        labels, count = ndimage.label(cracks, np.ones((3, 3)))
        for box in ndimage.find_objects(labels):
            assert box[0].stop - box[0].start > 2 * (box[1].stop - box[1].start)  # each crack mostly vertical
        # turned a quarter turn, the layers stand on end: the structure has a direction
        turned = np.rot90(mask)
        assert abs(rows[turned == 0].mean() - rows[turned == 2].mean()) < abs(mean_row[0] - mean_row[2]) / 2
    data = synthesize_dataset(tmp_path / "xs", n=4, seed=0, size=96, kind="cross-section")
    assert load_dataset(data).classes == CROSS_CLASSES
    with pytest.raises(ValueError, match="--kind must be one of micrograph, cross-section"):
        synthesize_dataset(tmp_path / "bad", n=4, kind="plan")
