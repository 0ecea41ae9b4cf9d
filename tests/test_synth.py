import numpy as np
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
