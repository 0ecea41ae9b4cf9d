"""Segmenting micrographs of any size: overlapping tiles blended smoothly, streamed by rows.

An image that fits in one tile is segmented in a single pass (exactly whole-image inference).
A larger one is cut into ``tile`` x ``tile`` tiles overlapping by ``overlap`` pixels; each tile's
class probabilities are weighted by a window that ramps linearly over the overlap (never zero,
so every pixel is covered) and the weighted sum is normalised. Tiles are processed one row of
tiles at a time and rows are finalised as soon as no later tile touches them, so memory holds
one strip of ``C x tile x width`` probabilities, not the whole image's: a 10000 x 10000
micrograph segments in a few hundred MB beyond the image itself.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pscl.checkpoints import load_model
from pscl.data.folders import list_images
from pscl.data.io import DataError, is_image_file, load_micrograph, write_png, write_text
from pscl.nn import UNet

PALETTE = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                    [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207]],
                   dtype=np.uint8)


@dataclass
class Segmentation:
    """Per-pixel labels (uint8, H x W) and the mean class probabilities over the image."""

    labels: np.ndarray
    mean_probabilities: np.ndarray

    def fractions(self, num_classes: int) -> np.ndarray:
        """Area fraction of every class (hard labels)."""
        return np.bincount(self.labels.ravel(), minlength=num_classes)[:num_classes] / self.labels.size


def _ramp(length: int, overlap: int) -> np.ndarray:
    i = np.arange(length, dtype=np.float32) + 0.5
    if overlap <= 0:
        return np.ones(length, dtype=np.float32)
    return np.minimum(1.0, np.minimum(i, length - i) / overlap)


def _origins(size: int, tile: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of the tiles along one axis; starts are multiples of the stride (itself a
    multiple of 8) so every tile sees the same pooling grid as whole-image inference."""
    spans, start = [], 0
    while True:
        spans.append((start, min(tile, size - start)))
        if start + tile >= size:
            return spans
        start += stride


@torch.no_grad()
def _probabilities(model: UNet, tiles: list[np.ndarray], device: torch.device) -> np.ndarray:
    x = torch.from_numpy(np.stack(tiles))[:, None].to(device)
    return model(x).softmax(1).float().cpu().numpy()


@torch.no_grad()
def segment(model: UNet, image: np.ndarray, tile: int = 512, overlap: int = 128, batch_size: int = 4,
            device: str | torch.device = "cpu") -> Segmentation:
    """Segment a normalised (H, W) float image with ``model`` by overlapping tiles (see module doc)."""
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
    if tile < 16 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 16 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    model = model.eval().to(device)
    device = torch.device(device)
    h, w = image.shape
    c = model.num_classes
    th, tw = min(tile, h), min(tile, w)
    if th == h and tw == w:
        probs = _probabilities(model, [image], device)[0]
        return Segmentation(probs.argmax(0).astype(np.uint8), probs.reshape(c, -1).mean(1))
    stride = max(8, (tile - overlap) // 8 * 8)
    ys, xs = _origins(h, th, stride), _origins(w, tw, stride)
    labels = np.empty((h, w), dtype=np.uint8)
    prob_sum = np.zeros(c, dtype=np.float64)
    acc = np.zeros((c, th, w), dtype=np.float32)  # strip of rows [y0, y0 + th)
    wsum = np.zeros((th, w), dtype=np.float32)
    for n, (y0, hh) in enumerate(ys):
        wy = _ramp(hh, overlap)
        for b in range(0, len(xs), batch_size):
            group = xs[b:b + batch_size]
            # tiles of one batch must share a shape: the short last tile goes alone
            for same in ([g for g in group if g[1] == tw], [g for g in group if g[1] != tw]):
                if not same:
                    continue
                probs = _probabilities(model, [image[y0:y0 + hh, x0:x0 + ww] for x0, ww in same], device)
                for (x0, ww), p in zip(same, probs):
                    window = wy[:, None] * _ramp(ww, overlap)[None, :]
                    acc[:, :hh, x0:x0 + ww] += p * window
                    wsum[:hh, x0:x0 + ww] += window
        done = (ys[n + 1][0] - y0) if n + 1 < len(ys) else hh
        p = acc[:, :done] / wsum[:done]
        labels[y0:y0 + done] = p.argmax(0)
        prob_sum += p.reshape(c, -1).sum(1)
        acc = np.concatenate([acc[:, done:], np.zeros((c, done, w), np.float32)], 1)
        wsum = np.concatenate([wsum[done:], np.zeros((done, w), np.float32)], 0)
    return Segmentation(labels, prob_sum / (h * w))


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """RGB uint8: the normalised grey image with class colours blended over it."""
    grey = (np.clip(image, 0, 1) * 255).astype(np.float32)[..., None]
    colour = PALETTE[labels % len(PALETTE)].astype(np.float32)
    return np.clip((1 - alpha) * grey + alpha * colour, 0, 255).astype(np.uint8)


def collect_inputs(source: str | Path) -> list[Path]:
    """An image file, or every image in a folder (a dataset folder's images/ and unlabeled/ too)."""
    source = Path(source)
    if source.is_file():
        if not is_image_file(source):
            raise DataError(f"{source}: not an image file (PNG, TIFF, JPEG, BMP)")
        return [source]
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    paths = list_images(source)
    if not paths and (source / "images").is_dir():
        paths = list_images(source / "images")
    if not paths:
        raise DataError(f"{source}: no images found")
    return paths


def fractions_table(rows: dict[str, np.ndarray], classes: list[str]) -> str:
    """CSV text: one row of class area fractions per image, then the mean and std over images."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["image", *classes])
    for name, f in rows.items():
        writer.writerow([name, *(f"{v:.6f}" for v in f)])
    stack = np.stack(list(rows.values()))
    writer.writerow(["mean", *(f"{v:.6f}" for v in stack.mean(0))])
    writer.writerow(["std", *(f"{v:.6f}" for v in (stack.std(0, ddof=1) if len(stack) > 1 else np.zeros(len(classes))))])
    return buf.getvalue()


def predict(run: str | Path, source: str | Path, out: str | Path, tile: int = 512, overlap: int = 128,
            device: str = "cpu") -> dict:
    """Segment an image or a folder with the model of ``run``; write masks, overlays, fractions.

    Writes ``OUT/<stem>_mask.png`` (class index per pixel), ``OUT/<stem>_overlay.png`` and
    ``OUT/phase_fractions.csv``, each atomically. Returns {stem: fractions}.
    """
    model, payload = load_model(run)
    classes = payload.get("classes") or [f"class{i}" for i in range(model.num_classes)]
    out = Path(out)
    results: dict[str, np.ndarray] = {}
    for path in collect_inputs(source):
        image = load_micrograph(path)
        seg = segment(model, image, tile=tile, overlap=overlap, device=device)
        write_png(out / f"{path.stem}_mask.png", seg.labels)
        write_png(out / f"{path.stem}_overlay.png", overlay(image, seg.labels))
        results[path.stem] = seg.fractions(len(classes))
    write_text(out / "phase_fractions.csv", fractions_table(results, classes))
    return results


__all__ = ["Segmentation", "segment", "overlay", "predict", "collect_inputs", "fractions_table"]
