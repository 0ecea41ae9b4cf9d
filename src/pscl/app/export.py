"""Export the last finished job's results for all or chosen micrographs: ``FOLDER/exports/<time>/``
with each micrograph's mask and overlay, ``phase_fractions.csv``, ``predictions.json`` and the HTML
report of :func:`pscl.metallography.report.make_report` (``report/``); also as one zip file."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from pscl.errors import DataError
from pscl.files import publish_folder, write_text
from pscl.inference.predict import PREDICTIONS_FILE, fractions_table
from pscl.metallography.report import make_report

ZIPS = "exports-zip"


def export_results(predictions: Path, stems: list[str] | None, exports: Path) -> Path:
    """Write the export folder (module doc) of ``stems`` (None: all) from a job's predictions folder."""
    meta = json.loads((predictions / PREDICTIONS_FILE).read_text())
    images = meta["images"]
    chosen = list(images) if not stems else list(dict.fromkeys(stems))
    unknown = [s for s in chosen if s not in images]
    if unknown:
        raise DataError(f"not segmented by the last model: {', '.join(unknown[:5])}")
    exports.mkdir(parents=True, exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S")
    while (exports / name).exists():
        name += "-1"
    tmp = Path(tempfile.mkdtemp(dir=exports, prefix=f".{name}."))
    try:
        for stem in chosen:
            for kind in ("mask", "overlay"):
                shutil.copy2(predictions / f"{stem}_{kind}.png", tmp / f"{stem}_{kind}.png")
        subset = {**meta, "images": {s: images[s] for s in chosen}}
        write_text(tmp / PREDICTIONS_FILE, json.dumps(subset, indent=1))
        write_text(tmp / "phase_fractions.csv",
                   fractions_table({s: np.asarray(images[s]["fractions"]) for s in chosen}, meta["classes"]))
        make_report(tmp, tmp / "report")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return publish_folder(tmp, exports / name)


def export_zip(folder: Path, zips: Path) -> Path:
    """A zip of an export folder (made once, atomically)."""
    target = zips / f"{folder.name}.zip"
    if not target.is_file():
        zips.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=zips, prefix=".zip."))
        try:
            made = shutil.make_archive(str(tmp / folder.name), "zip", root_dir=folder.parent, base_dir=folder.name)
            Path(made).rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


__all__ = ["export_results", "export_zip"]
