"""The classical baseline metallographers use today: a random forest on filter features
(ilastik, Fiji's Trainable Weka Segmentation), trained on the same K annotated images.

Features per pixel, on the intensity-normalised image (ilastik-style, at sigmas 1, 2, 4, 8, 16):
Gaussian smoothing, gradient magnitude and Hessian eigenvalues (scikit-image's
``multiscale_basic_features``), plus Laplacian of Gaussian, difference of Gaussians and the
structure-tensor eigenvalues. 100 trees (scikit-learn), class-balanced, trained on up to
``max_pixels`` labelled pixels per image drawn per class.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.feature import multiscale_basic_features, structure_tensor, structure_tensor_eigenvalues

from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.io import IGNORE_INDEX
from pscl.errors import DataError
from pscl.files import atomic_write, write_text
from pscl.metrics import score_split
from pscl.run_folder import RunFolder

SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)


@dataclass
class ForestConfig:
    shots: int = 1
    round: int = 0
    all_train: bool = False
    stems: list[str] | None = None  # explicit annotated images (overrides shots/round)
    trees: int = 100
    max_pixels: int = 60000  # labelled pixels sampled per image (spread over its classes)
    seed: int = 0
    jobs: int = 2
    annotated: list[str] = field(default_factory=list)


def pixel_features(image: np.ndarray, sigmas: tuple[float, ...] = SIGMAS) -> np.ndarray:
    """(H, W, F) float32 filter bank of a normalised grey image (see module doc)."""
    basic = multiscale_basic_features(image, intensity=True, edges=True, texture=True,
                                      sigma_min=sigmas[0], sigma_max=sigmas[-1], num_sigma=len(sigmas))
    extra = []
    for s in sigmas:
        extra.append(ndimage.gaussian_laplace(image, s))
        extra.append(ndimage.gaussian_filter(image, s) - ndimage.gaussian_filter(image, 1.6 * s))
        extra.extend(structure_tensor_eigenvalues(structure_tensor(image, sigma=s, order="rc")))
    return np.concatenate([basic, np.stack(extra, -1)], -1).astype(np.float32)


def _sample_pixels(mask: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Flat indices of up to ``budget`` labelled pixels, an equal share per present class."""
    flat = mask.ravel()
    classes = [c for c in np.unique(flat) if c != IGNORE_INDEX]
    picks = []
    for c in classes:
        idx = np.flatnonzero(flat == c)
        picks.append(rng.choice(idx, min(len(idx), budget // max(1, len(classes))), replace=False))
    return np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)


def train_forest(data: str | Path | DatasetFolder, out: str | Path, config: ForestConfig | None = None,
                 overwrite: bool = False) -> dict:
    """Train the forest on the round's annotated image(s); write ``OUT/forest.pkl`` and config (a
    folder holding a run is refused unless ``overwrite``: :class:`pscl.run_folder.RunFolder`)."""
    from sklearn.ensemble import RandomForestClassifier

    config = config or ForestConfig()
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    if ds.classes is None:
        raise DataError(f"{ds.root}: the forest needs a dataset folder with masks")
    stems = ds.annotated(config.shots, config.round, config.all_train, config.stems)
    config.annotated = stems
    folder = RunFolder(out)
    folder.prepare(overwrite=overwrite)
    rng = np.random.default_rng(config.seed)
    xs, ys = [], []
    for stem in stems:
        image, mask = ds.load_pair(stem)
        idx = _sample_pixels(mask, config.max_pixels, rng)
        xs.append(pixel_features(image).reshape(mask.size, -1)[idx])
        ys.append(mask.ravel()[idx])
    forest = RandomForestClassifier(n_estimators=config.trees, class_weight="balanced_subsample", n_jobs=config.jobs,
                                    random_state=config.seed)
    forest.fit(np.concatenate(xs), np.concatenate(ys))
    payload = {"forest": forest, "classes": ds.classes, "config": asdict(config)}
    folder.write_config(asdict(config))
    atomic_write(folder.forest_file, lambda p: p.write_bytes(pickle.dumps(payload)))
    return {"run": str(out), "annotated": stems, "pixels": int(sum(len(y) for y in ys))}


def segment_forest(forest, image: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """uint8 labels of a normalised image, predicted in chunks of pixels to bound memory."""
    feats = pixel_features(image).reshape(image.size, -1)
    labels = np.concatenate([forest.predict(feats[i:i + chunk]) for i in range(0, len(feats), chunk)])
    return labels.reshape(image.shape).astype(np.uint8)


def evaluate_forest(run: str | Path, data: str | Path | DatasetFolder, split: str = "test") -> dict:
    """Score a trained forest on a split, as :func:`pscl.inference.evaluate.evaluate` does for a U-Net."""
    folder = RunFolder(run)
    if not folder.forest_file.exists():
        raise DataError(f"{folder.forest_file}: no forest here (train it first)")
    payload = pickle.loads(folder.forest_file.read_bytes())
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    ds.require_consistent_splits()
    result = {"run": str(run), **score_split(ds, split, lambda im: segment_forest(payload["forest"], im)),
              "config": payload["config"]}
    write_text(folder.eval_file(ds.name, split), json.dumps(result, indent=1, default=float))
    return result


__all__ = ["ForestConfig", "pixel_features", "train_forest", "segment_forest", "evaluate_forest"]
