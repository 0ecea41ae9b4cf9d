"""`pscl suggest`: which micrograph to annotate, so that one annotation serves the rest best.

With one annotated image, the choice of that image decides much of the result: an image missing a
phase, or showing it only in an atypical form, teaches the model nothing about it. This module
ranks the candidate images (the train split, or every image of a plain folder) by how well their
patches *represent* the patches of all images (candidates and unlabelled ones), in the feature
space of a label-free pretrained U-Net.

Method:

1. Patch embeddings: every image is cut into ``patch`` x ``patch`` pixel patches; a patch's
   embedding is the concatenation of its L2-normalised mean bottleneck feature (1/8 scale) and
   mean first-decoder feature (1/4 scale), averaged over quarter turns of the image (orientation
   does not make a phase), z-scored over all patches and L2-normalised.
2. Reference patches: up to ``reference_patches`` patches drawn evenly from all images (the
   candidates and at most ``reference_images`` others, evenly spaced: embedding is the cost,
   about 4 forward passes per image).
3. Clusters: k-means (``clusters``) on the reference patches gives the textures of the data set
   and their shares.
4. Facility location over clusters: a set S shows cluster c as well as the mean cosine of its
   ``examples`` patches closest to the cluster's centre (``examples = 1``: its single closest
   patch, ``max_{z in S} cos(centre_c, z)``); the score of S is the mean of that over clusters,
   weighted by sqrt(share_c), so that a minor phase counts more than its area (an annotation must
   contain every phase) while noise clusters do not dominate. Several examples rather than one:
   fine-tuning learns a phase from the crops that contain it, and an image showing a minor phase
   in a single patch gives few of those. The single-image
   score ranks the candidates; for ``k > 1`` the set is chosen jointly by greedy maximisation (a
   (1 - 1/e) approximation of the best set for this submodular objective), so two near-duplicates
   are never both picked.
5. Reasons: how many clusters an image contains (>= 1 % of its patches), how many of them rare.

Outputs in OUT: ``suggestions.json`` (config, ranking, chosen set), ``suggestions.csv`` and
``contact_sheet.png`` (the top picks with their scores).
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.io import load_micrograph
from pscl.errors import DataError
from pscl.files import atomic_write, write_text


@dataclass
class SuggestConfig:
    """Settings of a suggestion run; saved with its result."""

    k: int = 1
    patch: int = 32  # pixels; a multiple of 8
    reference_patches: int = 4000
    reference_images: int = 64  # non-candidate images embedded (evenly spaced subset): cost is per image
    clusters: int = 16
    examples: int = 8  # patches per cluster that count (module doc, 4)
    rotations: int = 4  # embeddings averaged over this many quarter turns (1, 2 or 4)
    seed: int = 0
    init: str | None = None  # the pretrained run whose features are used
    pretrain_profile: str = "quick"  # used when init is None: a SimCLR pretraining of that budget
    contact_sheet: int = 6  # images shown

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.examples < 1:
            raise ValueError(f"examples must be >= 1, got {self.examples}")
        if self.rotations not in (1, 2, 4):
            raise ValueError(f"rotations must be 1, 2 or 4, got {self.rotations}")
        if self.patch < 8 or self.patch % 8:
            raise ValueError(f"patch must be a positive multiple of 8, got {self.patch}")


def _feature_grid(model, image: np.ndarray, patch: int, tile: int):
    import torch
    import torch.nn.functional as F

    h, w = image.shape
    rows = []
    for y in range(0, h, tile):
        row = []
        for x in range(0, w, tile):
            crop = torch.from_numpy(np.ascontiguousarray(image[y:y + tile, x:x + tile]))[None, None]
            out = model(crop, return_features=True)
            parts = [F.normalize(F.avg_pool2d(feats, patch // stride), dim=1)
                     for feats, stride in ((out.bottleneck, 8), (out.decoder[0], 4))]
            row.append(torch.cat(parts, 1)[0])
        rows.append(torch.cat(row, 2))
    return torch.cat(rows, 1)  # (D, h / patch, w / patch)


def patch_embeddings(model, image: np.ndarray, patch: int = 32, rotations: int = 4, tile: int = 1024) -> np.ndarray:
    """(patches, D) L2-normalised multi-scale embeddings of a normalised grey image (module doc, 1).

    The embedding of each patch is averaged over ``rotations`` quarter turns of the image (1, 2 or
    4): a phase is the same phase in any orientation, and fine-tuning augments with rot90 anyway,
    so lamellae at two angles must not look like two textures.
    """
    import torch
    import torch.nn.functional as F

    h, w = (image.shape[0] // patch) * patch, (image.shape[1] // patch) * patch
    if h == 0 or w == 0:
        raise DataError(f"image of size {image.shape} is smaller than one {patch} px patch")
    image = image[:h, :w]
    tile = max(patch, tile // patch * patch)
    model = model.eval()
    with torch.no_grad():
        grid = sum(torch.rot90(_feature_grid(model, np.rot90(image, k), patch, tile), -k, dims=(1, 2))
                   for k in range(rotations)) / rotations
    return F.normalize(grid.flatten(1).T, dim=1).numpy()


def standardise(embeddings: list[np.ndarray]) -> list[np.ndarray]:
    """Z-score every feature over all patches of all images, then L2-normalise each patch.

    Raw post-activation features all point into the same orthant (cosines near 1 between any two
    patches); centring on the data's mean makes the similarity measure what differs between patches.
    """
    stacked = np.concatenate(embeddings)
    mean, std = stacked.mean(0), stacked.std(0) + 1e-6
    out = []
    for e in embeddings:
        z = (e - mean) / std
        out.append(z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12))
    return out


def support(centroids: np.ndarray, patches: np.ndarray, examples: int) -> np.ndarray:
    """(clusters, examples): the highest cosines of an image's patches to each cluster centre,
    in descending order (-1 where the image has fewer patches than ``examples``)."""
    cos = centroids @ patches.T  # (clusters, patches)
    top = -np.sort(-cos, axis=1)[:, :examples]
    return np.pad(top, ((0, 0), (0, examples - top.shape[1])), constant_values=-1.0)


def greedy_set(similarity: np.ndarray, k: int, weights: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Greedy facility location: k image indices chosen jointly and the objective after each pick.

    ``similarity`` is (images, targets), or (images, targets, m) with each image's m best
    similarities per target (:func:`support`); the objective of a set S is
    ``sum_t weights[t] * mean(the m best similarities to t over S)`` (m = 1: the max), weights
    default to uniform, summing to 1. A sum of top-m values is submodular, so greedy is within
    (1 - 1/e) of the best set.
    """
    tops = similarity if similarity.ndim == 3 else similarity[..., None]
    n, targets, m = tops.shape
    weights = np.full(targets, 1 / targets) if weights is None else weights / weights.sum()
    chosen, values = [], []
    best = np.full((targets, m), -np.inf)  # the m best similarities of the chosen set, per target
    for _ in range(min(k, n)):
        merged = -np.sort(-np.concatenate([np.broadcast_to(best, tops.shape), tops], axis=2), axis=2)[..., :m]
        gains = merged.mean(2) @ weights
        gains[chosen] = -np.inf
        i = int(np.argmax(gains))
        chosen.append(i)
        best = merged[i]
        values.append(float(best.mean(1) @ weights))
    return chosen, values


def _model(data: DatasetFolder, config: SuggestConfig, out: Path):
    from pscl.checkpoints import load_model
    from pscl.methods import PretrainConfig
    from pscl.train.pretrain import pretrain
    from pscl.profiles import profile_settings

    run = Path(config.init) if config.init else out / "pretrain"
    if config.init is None:  # resumes a killed pretraining; a finished one is returned as it is
        pretrain(data, run, PretrainConfig(method="simclr", seed=config.seed, progress=False,
                                           **profile_settings(config.pretrain_profile, "pretrain")), resume=True)
        config.init = str(run)
    return load_model(run)[0]


def suggest(data: str | Path | DatasetFolder, out: str | Path, config: SuggestConfig | None = None) -> dict:
    """Rank the candidate images of ``data`` for annotation; write OUT (see module doc)."""
    config = config or SuggestConfig()
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    out = Path(out)
    candidates = ds.stems("train") if ds.labelled else ds.splits["all"]
    if not candidates:
        raise DataError(f"{ds.root}: no candidate images (empty train split)")
    model = _model(ds, config, out)
    candidate_paths = [ds.image_path(s) for s in candidates]
    others = [p for p in ds.pretraining_paths() if p not in set(candidate_paths)]
    if len(others) > config.reference_images:  # deterministic, evenly spread over the sorted list
        others = [others[i] for i in np.linspace(0, len(others) - 1, config.reference_images).round().astype(int)]
    embeddings = [patch_embeddings(model, load_micrograph(p, ds.crop_bottom), config.patch, config.rotations)
                  for p in candidate_paths + others]
    embeddings = standardise(embeddings)
    rng = np.random.default_rng(config.seed)
    per_image = max(1, config.reference_patches // len(embeddings))
    reference = np.concatenate([e[rng.choice(len(e), min(per_image, len(e)), replace=False)] for e in embeddings])
    from sklearn.cluster import KMeans

    clusters = min(config.clusters, len(reference))
    kmeans = KMeans(clusters, n_init=4, random_state=config.seed).fit(reference)
    share = np.bincount(kmeans.labels_, minlength=clusters) / len(reference)
    centroids = kmeans.cluster_centers_ / np.linalg.norm(kmeans.cluster_centers_, axis=1, keepdims=True)
    # how well each candidate shows each cluster: its patches closest to the cluster's centre
    tops = np.stack([support(centroids, e, config.examples) for e in embeddings[:len(candidates)]])
    weights = np.sqrt(share)  # rare textures (a minor phase) count more than their area
    scores = tops.mean(2) @ (weights / weights.sum())
    ranking = []
    for i in np.argsort(-scores, kind="stable"):
        present = np.bincount(kmeans.predict(embeddings[i]), minlength=clusters) / len(embeddings[i]) >= 0.01
        rare = int((present & (share < 0.5 / clusters)).sum())
        ranking.append({"rank": len(ranking) + 1, "image": candidates[i], "score": float(scores[i]),
                        "clusters_present": int(present.sum()),
                        "reason": f"shows the {clusters} feature clusters of all {len(embeddings)} images with weighted "
                                  f"mean similarity (best {config.examples} patches) {scores[i]:.3f}; contains {int(present.sum())} of them"
                                  + (f" ({rare} rare)" if rare else "")})
    chosen, values = greedy_set(tops, config.k, weights)
    result = {"dataset": str(ds.root), "config": asdict(config), "candidates": len(candidates),
              "images_compared": len(embeddings), "reference_patches": int(len(reference)),
              "ranking": ranking, "chosen": [candidates[i] for i in chosen], "chosen_objective": values}
    write_text(out / "suggestions.json", json.dumps(result, indent=1))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["rank", "image", "score", "clusters_present", "reason"])
    for r in ranking:
        writer.writerow([r["rank"], r["image"], f"{r['score']:.4f}", r["clusters_present"], r["reason"]])
    write_text(out / "suggestions.csv", buf.getvalue())
    _contact_sheet(ds, ranking[:config.contact_sheet], result["chosen"], out / "contact_sheet.png")
    result["out"] = str(out)
    return result


def _contact_sheet(ds: DatasetFolder, top: list[dict], chosen: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(top), figsize=(3.2 * len(top), 3.0), squeeze=False)
    for ax, r in zip(axes[0], top):
        ax.imshow(ds.load_image(r["image"]), cmap="gray")
        mark = "  [chosen set]" if r["image"] in chosen else ""
        ax.set_title(f"#{r['rank']} {r['image']}\nscore {r['score']:.3f}, {r['clusters_present']} clusters{mark}",
                     fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
