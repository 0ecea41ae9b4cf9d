"""Random augmented square crops of annotated images: the training stream of fine-tuning."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pscl.data.io import IGNORE_INDEX


def pad_to(image: np.ndarray, mask: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Pad an image (reflect) and mask (ignore label) so both sides are at least ``size``."""
    ph, pw = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if ph == 0 and pw == 0:
        return image, mask
    image = np.pad(image, ((0, ph), (0, pw)), mode="reflect" if min(image.shape) > max(ph, pw) else "edge")
    if mask is not None:
        mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
    return image, mask


def jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness and contrast each scaled by a uniform draw in ±strength (around mid-grey)."""
    contrast = 1.0 + rng.uniform(-strength, strength)
    brightness = rng.uniform(-strength, strength) * 0.5
    return ((image - 0.5) * contrast + 0.5 + brightness).astype(np.float32)


class RandomCropDataset(Dataset):
    """``length`` random crops of ``size`` from the images, flipped, rotated by k*90°, jittered.

    Item ``i`` is drawn from a generator seeded by (seed, i), whatever ``i`` is: with
    :class:`StreamSampler` (global sample indices) the stream is reproducible and a resumed run
    continues it exactly. Images are picked with probability proportional to their area.
    """

    def __init__(self, images: list[np.ndarray], masks: list[np.ndarray] | None, size: int, length: int,
                 seed: int = 0, jitter_strength: float = 0.1, augment: bool = True):
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

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor] | torch.Tensor:
        """(image (1, S, S) float, mask (S, S) long), or only the image when there are no masks."""
        rng = np.random.default_rng([self.seed, i])
        k = rng.choice(len(self.images), p=self.p)
        image, mask = self.images[k], self.masks[k]
        y = rng.integers(0, image.shape[0] - self.size + 1)
        x = rng.integers(0, image.shape[1] - self.size + 1)
        image = image[y:y + self.size, x:x + self.size]
        if not self.with_masks:
            return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        mask = mask[y:y + self.size, x:x + self.size]
        if self.augment:
            if rng.random() < 0.5:
                image, mask = image[:, ::-1], mask[:, ::-1]
            rot = int(rng.integers(4))
            image, mask = np.rot90(image, rot), np.rot90(mask, rot)
            if self.jitter > 0:
                image = jitter(image, rng, self.jitter)
        return (torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],
                torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)))


class StreamSampler(Sampler[int]):
    """Yields the global sample indices ``epoch * length + i``; Lightning calls ``set_epoch``.

    With the index-seeded :class:`RandomCropDataset`, every epoch draws fresh crops and a resumed
    run draws exactly the crops the uninterrupted run would have drawn. Under DDP (W processes)
    process r takes every W-th index of a W times longer stream, so processes never draw the
    same crops.
    """

    def __init__(self, length: int):
        self.length, self.epoch = length, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        from pscl.losses.distributed import world
        rank, size = world()
        start = self.epoch * self.length * size
        return iter(range(start + rank, start + self.length * size, size))


class GuidedBatches(Dataset):
    """Whole batches for guided pretraining (PSCL): the annotated crop first, then unlabelled ones.

    Item ``i`` is a dict: ``image`` (B, 1, S, S), ``mask`` (1, S, S) long (the annotated crop's
    labels), ``annotated`` (1, or 0 when the annotated image is left out: the ablation). With K
    annotated images, one is drawn per step. Seeded by (seed, i) like :class:`RandomCropDataset`;
    use it with ``DataLoader(batch_size=None)``.
    """

    def __init__(self, annotated: list[np.ndarray], masks: list[np.ndarray], unlabeled: list[np.ndarray],
                 size: int, batch_size: int, length: int, seed: int = 0, annotated_in_batch: bool = True):
        if batch_size < 2:
            raise ValueError(f"guided batches need batch_size >= 2 (annotated + unlabelled), got {batch_size}")
        self.labelled = RandomCropDataset(annotated, masks, size, length, seed, augment=False)
        self.unlabeled = RandomCropDataset(unlabeled, None, size, length * batch_size, seed + 1, augment=False)
        self.batch_size, self.length, self.with_annotated = batch_size, length, annotated_in_batch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict:
        n_unlabeled = self.batch_size - 1 if self.with_annotated else self.batch_size
        crops = [self.unlabeled[i * self.batch_size + j] for j in range(n_unlabeled)]
        if not self.with_annotated:
            return {"image": torch.stack(crops), "annotated": 0}
        image, mask = self.labelled[i]
        return {"image": torch.stack([image, *crops]), "mask": mask[None], "annotated": 1}
