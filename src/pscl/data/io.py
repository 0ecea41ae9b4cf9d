"""Reading micrographs and masks, intensity normalisation.

Conversion to grey float, documented once here and used everywhere:

* 8-bit integers are divided by 255, 16-bit by 65535, other integer types by their dtype's maximum;
  float images are taken as they are (NaN/inf are rejected).
* RGB is converted to luminance with the ITU-R BT.601 weights (0.299, 0.587, 0.114); the alpha
  channel of RGBA / LA images is dropped (micrographs carry no meaningful transparency).
* Multi-page TIFFs: the first page is read.

The model never sees these raw values: :func:`normalize_intensity` stretches each image's 1st..99th
percentile to 0..1, because brightness and contrast vary a lot between micrographs of one set.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pscl.data.databar import cut_data_bar
from pscl.errors import DataError  # re-exported: the project-wide input error

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
IGNORE_INDEX = 255
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def is_image_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


MIN_SIDE = 8  # px: the U-Net's coarsest grid; anything smaller is no micrograph


def require_segmentable(image: np.ndarray, path: str | Path) -> np.ndarray:
    """``image`` if each side has at least :data:`MIN_SIDE` pixels (after the data bar is cut); else a
    DataError naming ``path``: a 1x1 "micrograph" would be trained on and averaged into fractions."""
    if min(image.shape[:2]) < MIN_SIDE:
        raise DataError(f"{path}: image of {image.shape[1]}x{image.shape[0]} px is too small to segment "
                        f"(each side needs at least {MIN_SIDE} px)")
    return image


def _read_array(path: Path, palette_indices: bool = False) -> np.ndarray:
    if not path.exists():
        raise DataError(f"{path}: file does not exist")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                arr = tif.pages[0].asarray()
        else:
            with Image.open(path) as im:
                im.load()
                if im.mode == "P" and not palette_indices:  # (a mask's palette indices are its classes)
                    im = im.convert("RGBA" if "transparency" in im.info else "RGB")
                arr = np.array(im)
    except DataError:
        raise
    except Exception as exc:  # PIL and tifffile raise many kinds
        raise DataError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
    if arr.size == 0:
        raise DataError(f"{path}: empty image (shape {arr.shape})")
    return arr


def to_grey_float(arr: np.ndarray, source: str | Path = "<array>") -> np.ndarray:
    """Convert a 2-D grey or (H, W, 3|4) colour array to a float32 grey image (see module doc)."""
    if arr.ndim == 3 and arr.shape[-1] in (2, 3, 4):
        channels = arr.shape[-1]
        arr = arr[..., :1] if channels == 2 else arr[..., :3]
    elif arr.ndim != 2:
        raise DataError(f"{source}: expected a grey, RGB or RGBA image, got array of shape {arr.shape}")
    if arr.dtype == np.bool_:
        out = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        out = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max)
    elif np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise DataError(f"{source}: image contains NaN or infinite values")
    else:
        raise DataError(f"{source}: unsupported pixel type {arr.dtype}")
    if out.ndim == 3:
        out = out[..., 0] if out.shape[-1] == 1 else out @ _LUMA
    return np.ascontiguousarray(out, dtype=np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """Read a micrograph as a float32 (H, W) grey image in its raw scale (see module doc)."""
    path = Path(path)
    return to_grey_float(_read_array(path), path)


def read_mask(path: str | Path) -> np.ndarray:
    """Read a class-index mask as uint8 (H, W); 255 marks unlabelled pixels. A palette PNG (what paint
    programs write) holds the class indices as its palette indices, whatever colours they show."""
    path = Path(path)
    arr = _read_array(path, palette_indices=True)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if not (np.all(rgb[..., 0] == rgb[..., 1]) and np.all(rgb[..., 0] == rgb[..., 2])):
            raise DataError(f"{path}: mask must hold one class index per pixel, got a colour image")
        arr = rgb[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{path}: mask must be 2-D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise DataError(f"{path}: mask must hold integers, got {arr.dtype}")
    if arr.min() < 0 or arr.max() > IGNORE_INDEX:
        raise DataError(f"{path}: mask values must lie in 0..255, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


def normalize_intensity(image: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Stretch the image's `low`..`high` percentiles to 0..1 and clip (float32).

    A flat image (no contrast) maps to 0.5 everywhere rather than dividing by zero.
    """
    lo, hi = np.percentile(image, [low, high])
    if hi - lo < 1e-8:
        return np.full(image.shape, 0.5, dtype=np.float32)
    # in place, in float32: a large micrograph gets one working copy, not three float64 ones
    out = np.array(image, dtype=np.float32, copy=True)
    out -= np.float32(lo)
    out /= np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def load_micrograph(path: str | Path, crop_bottom: int | str | None = "auto") -> np.ndarray:
    """Read a micrograph, cut off its SEM data bar and normalise its intensity: what training and
    prediction feed the network. ``crop_bottom``: "auto" detects the band
    (:mod:`pscl.data.databar`), a number cuts that many rows, None keeps every row."""
    return normalize_intensity(require_segmentable(cut_data_bar(read_image(path), crop_bottom, path)[0], path))
