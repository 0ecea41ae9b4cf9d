"""Random augmented square crops of annotated images: the training stream of fine-tuning."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pscl.data import orientation
from pscl.data.io import IGNORE_INDEX
from pscl.data.photometric import StrongPhotometric


def pad_to(image: np.ndarray, mask: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Pad an image (reflect) and mask (ignore label) so both sides are at least ``size``."""
    ph, pw = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if ph == 0 and pw == 0:
        return image, mask
    image = np.pad(image, ((0, ph), (0, pw)), mode="reflect" if min(image.shape) > max(ph, pw) else "edge")
    if mask is not None:
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
    return image, mask


def centred_origin(shape: tuple[int, int], size: int, pixels: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop centred (within a quarter crop) on one of ``pixels``
    (flat indices into an image of ``shape``), kept inside the image."""
    cy, cx = divmod(int(pixels[int(rng.integers(len(pixels)))]), shape[1])
    jiggle = rng.integers(-(size // 4), size // 4 + 1, size=2)
    return (int(np.clip(cy - size // 2 + jiggle[0], 0, shape[0] - size)),
            int(np.clip(cx - size // 2 + jiggle[1], 0, shape[1] - size)))


def jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness and contrast each scaled by a uniform draw in ±strength (around mid-grey)."""
    contrast = 1.0 + rng.uniform(-strength, strength)
    brightness = rng.uniform(-strength, strength) * 0.5
    return ((image - 0.5) * contrast + 0.5 + brightness).astype(np.float32)


SPARSE = 0.5  # an image with fewer of its pixels labelled is sparsely labelled (strokes)


class RandomCropDataset(Dataset):
    """``length`` random crops of ``size`` from the images, flipped and rotated by k*90° (as far as
    ``geometry`` allows: :mod:`pscl.data.orientation`), jittered.

    Item ``i`` is drawn from a generator seeded by (seed, i), whatever ``i`` is: with
    :class:`StreamSampler` (global sample indices) the stream is reproducible and a resumed run
    continues it exactly. Images are picked with probability proportional to their area. In a sparsely
    labelled image (strokes) every crop is centred on a labelled pixel (``centre_on_labels``).
    """

    def __init__(self, images: list[np.ndarray], masks: list[np.ndarray] | None, size: int, length: int,
                 seed: int = 0, jitter_strength: float = 0.1, augment: bool = True,
                 photometric: float = 0.0, geometry: str | None = None, centre_on_labels: bool = True):
        if not images or (masks is not None and len(images) != len(masks)):
            raise ValueError("need at least one image, and as many masks as images (or none)")
        self.with_masks = masks is not None
        masks = masks if masks is not None else [np.zeros((1, 1), np.uint8)] * len(images)
        pairs = [pad_to(im, m if self.with_masks else None, size) for im, m in zip(images, masks)]
        self.images = [p[0] for p in pairs]
        self.masks = [p[1] for p in pairs]
        area = np.array([im.size for im in self.images], dtype=np.float64)
        self.p = area / area.sum()
        self.size, self.length, self.seed, self.jitter, self.augment = size, length, seed, jitter_strength, augment
        self.transforms = orientation.transforms(geometry)  # the flips and quarter turns the structure allows
        # strong photometric augmentation (brightness, contrast, gamma, blur, noise; each effect with this
        # probability) on top of the jitter: one annotated image shows one detector setting, the others differ
        self.photometric = StrongPhotometric(p=photometric) if photometric > 0 else None
        # sparsely labelled images (strokes: under half the pixels labelled): crops centred on a labelled pixel
        # of a class drawn uniformly among those labelled there, so that no step trains on an unlabelled crop
        self.labelled = [[pixels for pixels in class_pixels(m, range(int(m[m != IGNORE_INDEX].max()) + 1)) if len(pixels)]
                         if centre_on_labels and self.with_masks and 0 < (m != IGNORE_INDEX).mean() < SPARSE else None
                         for m in self.masks]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """(image (1, S, S) float, mask (S, S) long), or only the image when there are no masks."""
        rng = np.random.default_rng([self.seed, i])
        k = rng.choice(len(self.images), p=self.p)
        image, mask = self.images[k], self.masks[k]
        y = rng.integers(0, image.shape[0] - self.size + 1)
        x = rng.integers(0, image.shape[1] - self.size + 1)
        if self.labelled[k] is not None:  # (no extra draw for a densely labelled image)
            classes = self.labelled[k]  # the labelled pixels of each class the image has
            y, x = centred_origin(image.shape, self.size, classes[int(rng.integers(len(classes)))], rng)
        image = image[y:y + self.size, x:x + self.size]
        if not self.with_masks:
            return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        mask = mask[y:y + self.size, x:x + self.size]
        if self.augment:
            flip = bool(rng.random() < 0.5)
            rot = int(rng.integers(4))
            # the same two draws whatever the geometry allows (pscl.data.orientation), mapped onto it
            transform = self.transforms[(flip * 4 + rot) % len(self.transforms)]  # (all 8: (flip, rot) itself)
            image, mask = orientation.apply(image, transform), orientation.apply(mask, transform)
            if self.jitter > 0:
                image = jitter(image, rng, self.jitter)
        crop = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        if self.augment and self.photometric is not None:  # (no extra draw when it is off)
            generator = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
            crop = self.photometric(crop[None], generator)[0]
        return crop, torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))


class StreamSampler(Sampler[int]):
    """An endless stream of global item indices that starts where the run stands.

    ``per_step`` items make one optimiser step (the batch size, or 1 for a dataset whose items are
    batches). Each time it is iterated the stream starts at item ``clock.global_step * per_step``
    (``clock``: the LightningModule being trained; 0 before it is set), so with an index-seeded
    dataset (:class:`RandomCropDataset`) step ``t`` always trains on the same crops, whether the
    run went straight through or was killed and resumed, however often. Under DDP (W processes)
    process r takes every W-th index of a W times faster stream, so processes never draw the same
    crops. It has no length: the run's step budget ends it.
    """

    def __init__(self, per_step: int, clock=None):
        self.per_step, self.clock = per_step, clock

    def __iter__(self):
        from pscl.distributed import world
        rank, size = world()
        step = int(getattr(self.clock, "global_step", 0) or 0)
        index = step * self.per_step * size + rank
        while True:
            yield index
            index += size


def stream_loader(dataset: Dataset, batch_size: int | None) -> DataLoader:
    """The training loader of an index-seeded dataset: ``batch_size`` items a step (None: each item is a
    batch), from a :class:`StreamSampler`."""
    return DataLoader(dataset, batch_size=batch_size, sampler=StreamSampler(batch_size or 1))


def pure_cells(mask: np.ndarray, num_classes: int, stride: int, purity: float) -> np.ndarray:
    """(C,) how many ``stride`` x ``stride`` cells of a square label crop each class covers at least
    ``purity`` of (unlabelled pixels count for no class; in a sparsely labelled crop, the share of the
    cell's labelled pixels, as :func:`pscl.data.views.cell_coverage` counts it)."""
    h, w = mask.shape[0] // stride * stride, mask.shape[1] // stride * stride
    cells = mask[:h, :w].reshape(h // stride, stride, w // stride, stride)
    share = np.stack([(cells == c).mean(axis=(1, 3)) for c in range(num_classes)])  # (C, h/s, w/s)
    if (mask == IGNORE_INDEX).any():
        from pscl.data.views import MIN_LABELLED
        labelled = share.sum(axis=0, keepdims=True)
        share = np.where(labelled >= MIN_LABELLED, share / np.maximum(labelled, 1e-6), 0.0)
    return (share >= purity).sum(axis=(1, 2))


def class_pixels(mask: np.ndarray, classes) -> list[np.ndarray]:
    """Flat indices of the pixels of each of ``classes`` (int32), for drawing crops centred on a class."""
    flat = mask.ravel()
    return [np.flatnonzero(flat == c).astype(np.int32) for c in classes]


def covering_origin(mask: np.ndarray, size: int, rng: np.random.Generator, num_classes: int, candidates: int,
                    min_cells: int, purity: float, pixels: list[np.ndarray] | None = None,
                    strides: tuple[int, ...] = (4, 2, 1)) -> tuple[int, int]:
    """The top-left corner of a ``size`` crop of ``mask`` that shows as many classes as it can with
    pure cells at every scale.

    The best of ``candidates`` positions: every other one uniform, the rest centred on a pixel of
    a class drawn uniformly among those present (``pixels``: :func:`class_pixels`), so a rare class
    is among the candidates. Scored first by how many classes have ``min_cells * 2^s`` cells of
    purity ``purity`` at each stride (scale s), then by how many of those cells the short classes
    have (partial credit for rare classes).
    """
    present = [p for p in (pixels or []) if len(p)]
    best, best_score = None, None
    for j in range(candidates):
        if j % 2 and present:
            y, x = centred_origin(mask.shape, size, present[int(rng.integers(len(present)))], rng)
        else:
            y = int(rng.integers(0, mask.shape[0] - size + 1))
            x = int(rng.integers(0, mask.shape[1] - size + 1))
        crop = mask[y:y + size, x:x + size]
        need = [min_cells * 2 ** s for s in range(len(strides))]
        counts = [pure_cells(crop, num_classes, stride, purity) for stride in strides]
        covered = np.all([c >= k for c, k in zip(counts, need)], axis=0)  # (C,)
        partial = sum(np.minimum(c, k).sum() / k for c, k in zip(counts, need))
        score = (int(covered.sum()), float(partial))
        if best_score is None or score > best_score:
            best, best_score = (y, x), score
    return best


class GuidedBatches(Dataset):
    """Whole batches for guided pretraining (PSCL): the annotated crop first, then unlabelled ones.

    Item ``i`` is a dict: ``image`` (B, 1, S, S), ``mask`` (1, S, S) long (the annotated crop's
    labels), ``annotated`` (1, or 0 when the annotated image is left out: the ablation). With K
    annotated images, one is drawn per step. Seeded by (seed, i) like :class:`RandomCropDataset`;
    use it with ``DataLoader(batch_size=None)``.
    """

    def __init__(self, annotated: list[np.ndarray], masks: list[np.ndarray], unlabeled: list[np.ndarray],
                 size: int, batch_size: int, length: int, seed: int = 0, annotated_in_batch: bool = True,
                 cover: dict | None = None):
        if batch_size < 2:
            raise ValueError(f"guided batches need batch_size >= 2 (annotated + unlabelled), got {batch_size}")
        self.labelled = RandomCropDataset(annotated, masks, size, length, seed, augment=False)
        self.unlabeled = RandomCropDataset(unlabeled, None, size, length * batch_size, seed + 1, augment=False)
        self.batch_size, self.length, self.with_annotated = batch_size, length, annotated_in_batch
        # class-covering annotated crops: keyword arguments of covering_origin (None: uniform crops)
        self.cover, self.seed = cover, seed
        if cover is not None:
            self.pixels = [class_pixels(m, range(cover["num_classes"])) for m in self.labelled.masks]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        n_unlabeled = self.batch_size - 1 if self.with_annotated else self.batch_size
        crops = [self.unlabeled[i * self.batch_size + j] for j in range(n_unlabeled)]
        if not self.with_annotated:
            return {"image": torch.stack(crops), "annotated": 0}
        image, mask = self.labelled[i] if self.cover is None else self._covering_crop(i)
        return {"image": torch.stack([image, *crops]), "mask": mask[None], "annotated": 1}

    def _covering_crop(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Step ``i``'s annotated crop by :func:`covering_origin`; with K images, over all of them."""
        rng = np.random.default_rng([self.seed, i, 1])
        data, size = self.labelled, self.labelled.size
        best, best_score = None, None
        per_image = max(1, self.cover["candidates"] // len(data.images))
        for k, mask in enumerate(data.masks):
            y, x = covering_origin(mask, size, rng, **{**self.cover, "candidates": per_image}, pixels=self.pixels[k])
            score = pure_cells(mask[y:y + size, x:x + size], self.cover["num_classes"], 4, self.cover["purity"])
            score = (int((score >= self.cover["min_cells"]).sum()), rng.random())
            if best_score is None or score > best_score:
                best, best_score = (k, y, x), score
        k, y, x = best
        image, mask = data.images[k][y:y + size, x:x + size], data.masks[k][y:y + size, x:x + size]
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
                torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)))
