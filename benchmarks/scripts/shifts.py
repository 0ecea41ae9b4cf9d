"""Score a bench's runs on distribution shifts of the test split: micrographs darker, lower in contrast
(and noisier), or taken at another magnification than the annotated one.

    python benchmarks/scripts/shifts.py DATA OUT.md BENCH:METHOD [BENCH:METHOD ...]

Each shift is a dataset folder written next to OUT.md's folder in ``shifted/<set>-<shift>/`` (test split
only; the masks follow the geometry; not committed). Shifts (applied to the 8-bit test images):

- ``dark``: gamma 2 (``I^2`` on 0..1): midtones darker, a nonlinear change that the per-image percentile
  stretch does not undo;
- ``low-contrast``: the grey levels squeezed to a third around the image mean, with detector noise
  (sigma 1.5 grey levels) and 8-bit quantisation, so after the stretch the noise is 3x stronger;
- ``zoom-out`` / ``zoom-in``: resampled by 0.7 / 1.4 (bilinear image, nearest mask): another magnification.

Every run of every METHOD of its BENCH folder (``BENCH/runs/<method>/round<R>``, the bench's own run folders) is
scored on the plain test split and on each shift; OUT.md gets the table, paired with the first one round by round.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from pscl.bench.layout import BenchFolder
from pscl.data.folders import load_dataset
from pscl.files import write_text
from pscl.inference.evaluate import evaluate
from pscl.provenance import provenance

SHIFTS = ("dark", "low-contrast", "zoom-out", "zoom-in")


def shifted(image: np.ndarray, mask: np.ndarray, shift: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image, uint8 mask) of one test pair under ``shift``."""
    x = image.astype(np.float64) / 255.0
    if shift == "dark":
        return np.round(255 * x ** 2).astype(np.uint8), mask
    if shift == "low-contrast":
        y = x.mean() + (x - x.mean()) / 3 + rng.normal(0, 1.5 / 255, x.shape)
        return np.clip(np.round(255 * y), 0, 255).astype(np.uint8), mask
    factor = {"zoom-out": 0.7, "zoom-in": 1.4}[shift]
    size = (max(8, round(image.shape[1] * factor)), max(8, round(image.shape[0] * factor)))
    return (np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR)),
            np.asarray(Image.fromarray(mask).resize(size, Image.NEAREST)))


def make_shift(data: Path, folder: Path, shift: str) -> Path:
    """The test split of ``data`` under ``shift`` as a dataset folder (made once)."""
    if (folder / "dataset.json").exists():
        return folder
    ds = load_dataset(data)
    rng = np.random.default_rng(0)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    stems = ds.stems("test")
    for stem in stems:
        image = np.asarray(Image.open(ds.image_path(stem)).convert("L"))
        mask = np.asarray(Image.open(ds.mask_path(stem)))
        image, mask = shifted(image, mask, shift, rng)
        Image.fromarray(image).save(folder / "images" / f"{stem}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{stem}.png")
    meta = json.loads((Path(data) / "dataset.json").read_text())
    meta.update(name=f"{meta['name']}-{shift}", splits={"train": [], "val": [], "test": stems}, notes=f"test split, {shift}")
    meta.pop("crop_bottom", None)
    write_text(folder / "dataset.json", json.dumps(meta, indent=1))
    return folder


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    data, out, methods = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    name = load_dataset(data).name
    sets = {"test": data, **{s: make_shift(data, out.parent / "shifted" / f"{data.name}-{s}", s) for s in SHIFTS}}
    scores: dict = {m: {s: {} for s in sets} for m in methods}
    for method in methods:
        bench, spec = method.split(":", 1)
        for run in sorted(r for r in BenchFolder(bench).run(spec, "").glob("round*") if (r / "model.pt").exists()):
            r = int(run.name[5:])
            for label, folder in sets.items():
                cached = run / f"eval_{name}_shift_{label}.json"  # (made by an earlier call: reused)
                result = json.loads(cached.read_text()) if cached.exists() else evaluate(run, folder, split="test",
                                                                                          out=cached)
                scores[method][label][r] = result["dice_fg"]
            print(method, r, {k: round(v[r], 4) for k, v in scores[method].items()}, flush=True)
    first = methods[0]
    lines = [f"# Test Dice (fg) under distribution shifts: {name}", "",
             f"- command: `python benchmarks/scripts/shifts.py {' '.join(sys.argv[1:])}`",
             *(f"- {k}: {v}" for k, v in provenance().items()), "",
             "| method | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for method in methods:
        cells = []
        for label in sets:
            own = scores[method][label]
            mean = np.mean(list(own.values())) if own else float("nan")
            if method == first or not own:
                cells.append(f"{mean:.3f}")
                continue
            rounds = sorted(set(own) & set(scores[first][label]))
            diff = [own[r] - scores[first][label][r] for r in rounds]
            cells.append(f"{mean:.3f} ({np.mean(diff):+.3f}, {sum(d > 0 for d in diff)} of {len(diff)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines += ["", f"In brackets: paired with `{first}` round by round (mean difference, rounds better)."]
    write_text(out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
