"""Segmenting micrographs of any size with a trained run (torch) or an exported ONNX model.

The tiling lives in :mod:`pscl.inference.tiling` (numpy only); this module feeds it either the U-Net of a run
or an ONNX Runtime session. Importing this module, and predicting with ``onnx=...``, never imports
torch: a workstation that only segments needs onnxruntime, numpy and Pillow.

Outputs per image: ``<stem>_mask.png`` (class index per pixel, data bar removed),
``<stem>_overlay.png``; per run: ``phase_fractions.csv`` and ``predictions.json`` (classes, model,
and per image the source, size, data-bar rows cut, calibration, fractions and expected fractions),
which ``pscl report`` reads.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from pscl.data.calibration import MAX_UM_PER_PX, MIN_UM_PER_PX, read_calibration
from pscl.data.databar import cut_data_bar
from pscl.data.folders import list_images
from pscl.data.io import is_image_file, normalize_intensity, read_image, require_segmentable
from pscl.errors import DataError
from pscl.files import check_writable, write_png, write_text
from pscl.lock import folder_lock
from pscl.data.orientation import ALL_TRANSFORMS, transforms
from pscl.inference.overlay import class_colours, overlay
from pscl.inference.tiling import Segmentation, TileModel, segment_tiled, with_tta

PREDICTIONS_FILE = "predictions.json"


def torch_tile_model(model, device="cpu", bf16: bool | None = None, channels_last: bool = True) -> TileModel:
    """A tile model from a U-Net: softmax probabilities, computed in inference mode, channels_last,
    in bf16 autocast where the hardware has bf16 (``bf16=None``: :func:`pscl.cpu.resolve_precision`)."""
    import torch

    from pscl.cpu import fast_layout
    device_type = torch.device(device).type
    if bf16 is None:
        bf16 = uses_bf16("auto", device)
    model = fast_layout(model.eval().to(device), channels_last)

    def run(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            x = torch.from_numpy(np.ascontiguousarray(tiles, dtype=np.float32))[:, None].to(device)
            return model(x).float().softmax(1).cpu().numpy()
    return run


def uses_bf16(precision: str, device: str = "cpu") -> bool:
    """Whether prediction at ``precision`` (``auto``, ``32-true``, ``bf16-mixed``) runs in bf16 autocast
    on ``device``: ``auto`` does where the hardware multiplies bf16 (:func:`pscl.cpu.resolve_precision`)."""
    from pscl.cpu import resolve_precision
    if precision not in ("auto", "32-true", "bf16-mixed"):
        raise ValueError(f"--precision for prediction must be auto, 32-true or bf16-mixed, got {precision!r}")
    return resolve_precision(precision, "gpu" if str(device).startswith("cuda") else "cpu") == "bf16-mixed"


def segment(model, image: np.ndarray, tile: int = 512, overlap: int = 128, batch_size: int = 4,
            device="cpu", bf16: bool | None = None, channels_last: bool = True, tta: bool | tuple = False) -> Segmentation:
    """Segment a normalised (H, W) float image with a U-Net by overlapping tiles (:mod:`pscl.inference.tiling`);
    ``tta``: averaged over the 8 flips and quarter turns (True) or over the given (flip, quarter turns)."""
    tile_model = torch_tile_model(model, device, bf16, channels_last)
    if tta:
        tile_model = with_tta(tile_model, ALL_TRANSFORMS if tta is True else tuple(tta))
    return segment_tiled(tile_model, image, model.num_classes, tile, overlap,
                         batch_size)


def onnx_tile_model(path: str | Path, threads: int = 0) -> tuple[TileModel, dict]:
    """A tile model from an exported ONNX file (see :mod:`pscl.inference.export`) and its metadata
    (``classes``, ``widths``, ``config``)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DataError("prediction with --onnx needs onnxruntime: pip install onnxruntime") from exc
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    # without the arena, peak memory stays flat in the image size (it kept buffers per tile shape:
    # +300 MB from 2000² to 10000² micrographs, benchmarks/speed/predict-memory), and it ran no slower
    options.enable_cpu_mem_arena = False
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise DataError(f"{path}: unreadable ONNX model ({exc})") from exc
    meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
    name = session.get_inputs()[0].name

    def run(tiles: np.ndarray) -> np.ndarray:
        logits = session.run(None, {name: np.ascontiguousarray(tiles, dtype=np.float32)[:, None]})[0]
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return run, meta


def collect_inputs(source: str | Path | list[Path]) -> list[Path]:
    """An image file, every image in a folder (a dataset folder's images/ where the folder holds none),
    or a list of image files."""
    if isinstance(source, (list, tuple)):
        paths = [p for s in source for p in collect_inputs(Path(s))]
        stems = [p.stem for p in paths]
        twice = sorted({s for s in stems if stems.count(s) > 1})
        if twice:
            raise DataError(f"images share the stem {twice[0]!r}, and outputs are named by stem")
        if not paths:
            raise DataError("no images given")
        return paths
    source = Path(source)
    if source.is_file():
        if not is_image_file(source):
            raise DataError(f"{source}: not an image file (PNG, TIFF, JPEG, BMP)")
        return [source]
    if not source.is_dir():
        raise DataError(f"{source}: no such file or folder")
    paths = list_images(source, unique_stems=True)
    if not paths and (source / "images").is_dir():
        paths = list_images(source / "images", unique_stems=True)
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


def check_predict_options(source: str | Path, out: str | Path, um_per_px: float | None) -> list[Path]:
    """The images to segment, once every option is checked (before anything is written): a pixel
    size that is a positive finite number, an ``out`` that is a
    folder and not the input folder (a second run would segment the first one's masks)."""
    import math
    if um_per_px is not None and not (math.isfinite(um_per_px) and MIN_UM_PER_PX <= um_per_px <= MAX_UM_PER_PX):
        raise ValueError(f"--um-per-px must be a pixel size in micrometres between {MIN_UM_PER_PX:g} and "
                         f"{MAX_UM_PER_PX:g}, got {um_per_px}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: --out is a file; give a folder for the masks and overlays")
    check_writable(out / PREDICTIONS_FILE)
    paths = collect_inputs(source)
    if any(out.resolve() == p.parent.resolve() for p in paths):
        raise DataError(f"{out}: --out is the folder of the input images; a later run would segment these "
                        "outputs as micrographs: choose another folder")
    return paths


def predict(run: str | Path | None, source: str | Path, out: str | Path, tile: int = 512, overlap: int = 128,
            device: str = "cpu", onnx: str | Path | None = None, um_per_px: float | None = None,
            crop_bottom: int | str | None = "auto", tta: bool = False, precision: str = "auto",
            progress=None, unsure: bool = False, colours: list | None = None) -> dict:
    """Segment an image or a folder with the model of ``run`` (or the ONNX file ``onnx``);
    ``tta``: probabilities averaged over the 8 flips and quarter turns (:func:`pscl.inference.tiling.with_tta`);
    ``precision``: ``auto`` (bf16 where the hardware has it), ``32-true`` or ``bf16-mixed`` (torch only:
    ONNX Runtime runs the exported fp32 graph); ``progress(position, total, name)`` is called as
    the work advances (``position``: images done, fractional within a large one); ``unsure``: also
    write ``<stem>_unsure.png``, how unsure the model is per pixel (:class:`Segmentation`); ``colours``: an
    RGB triple per class for the overlays (recorded in predictions.json; default :data:`PALETTE`).

    Each image's SEM data bar is cut off first (``crop_bottom``: "auto", a row count, or None)
    and its pixel size read (``um_per_px`` overrides the file's). Writes the files listed in the
    module doc, each atomically. An unreadable image does not stop the others: every readable one
    is segmented, then a DataError names every failure. Returns {stem: class fractions}.
    """
    paths = check_predict_options(source, out, um_per_px)
    if onnx is not None:
        tile_model, meta = onnx_tile_model(onnx)
        classes, model_info = meta["classes"], {"onnx": str(onnx), "config": meta.get("config"), "precision": "32-true"}
    else:
        if run is None:
            raise ValueError("give a run folder or an ONNX file")
        from pscl.checkpoints import load_model

        bf16 = uses_bf16(precision, device)
        model, payload = load_model(run)
        tile_model = torch_tile_model(model, device, bf16)
        classes = payload.get("classes") or [f"class{i}" for i in range(model.num_classes)]
        model_info = {"run": str(run), "config": payload.get("config"), "precision": "bf16-mixed" if bf16 else "32-true",
                      "val_dice_fg": payload.get("val_dice_fg"), "selected": payload.get("selected")}
    if tta:  # over the flips and quarter turns the run's geometry allows (pscl.data.orientation)
        tile_model = with_tta(tile_model, transforms((model_info.get("config") or {}).get("geometry")))
    with folder_lock(out):
        return _segment_all(paths, tile_model, classes, model_info, Path(out), tile, overlap, um_per_px, crop_bottom,
                            tta, progress, unsure, class_colours(len(classes), colours))


def _segment_all(paths: list[Path], tile_model: TileModel, classes: list[str], model_info: dict, out: Path,
                 tile: int, overlap: int, um_per_px: float | None, crop_bottom, tta: bool, progress,
                 unsure: bool, palette: np.ndarray) -> dict:
    """:func:`predict`'s work once its inputs are checked, holding the ``out`` folder."""
    results: dict[str, np.ndarray] = {}
    images, failures = {}, []
    for done, path in enumerate(paths):
        on_strip = (lambda k, n, done=done, name=path.name: progress(done + k / n, len(paths), name)) if progress else None
        if progress:
            progress(done, len(paths), path.name)
        try:
            raw = read_image(path)
            specimen, cut = cut_data_bar(raw, crop_bottom, path)
            require_segmentable(specimen, path)
            calibration = read_calibration(path, um_per_px).to_dict()
        except DataError as exc:
            failures.append(str(exc))
            continue
        image = normalize_intensity(specimen)
        seg = segment_tiled(tile_model, image, len(classes), tile, overlap, on_strip=on_strip)
        write_png(out / f"{path.stem}_mask.png", seg.labels)
        write_png(out / f"{path.stem}_overlay.png", overlay(image, seg.labels, palette=palette))
        if unsure:
            write_png(out / f"{path.stem}_unsure.png", seg.unsure)
        results[path.stem] = seg.fractions(len(classes))
        images[path.stem] = {"source": str(path.absolute()), "height": int(raw.shape[0]), "width": int(raw.shape[1]),
                             "data_bar_rows": int(cut), "calibration": calibration,
                             "fractions": results[path.stem].tolist(),
                             "expected_fractions": seg.mean_probabilities.tolist()}
    if progress:
        progress(len(paths), len(paths), "")
    if results:
        write_text(out / "phase_fractions.csv", fractions_table(results, classes))
        write_text(out / PREDICTIONS_FILE, json.dumps({"classes": classes, "model": model_info, "tile": tile,
                                                       "overlap": overlap, "tta": tta, "images": images,
                                                       "colours": palette.tolist(),
                                                       "failed": failures}, indent=1, default=str))
    if failures:
        raise DataError(f"{len(failures)} of {len(paths)} image(s) not segmented"
                        + (f" (the other {len(results)} are in {out})" if results else "") + ":\n  "
                        + "\n  ".join(failures))
    return results


__all__ = ["check_predict_options", "Segmentation", "uses_bf16", "segment", "segment_tiled", "torch_tile_model", "onnx_tile_model",
           "predict", "collect_inputs", "fractions_table"]
