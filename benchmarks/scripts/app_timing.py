"""`pscl app` against its goals, and the screenshots of the README's walk-through.

Usage: python benchmarks/scripts/app_timing.py WORKDIR OUT.json [SHOTS_DIR] [--profile cpu] [--micrographs 200]
       [--source ../shared/data/metaldam]

Builds WORKDIR/micrographs: MetalDAM's micrographs (images/, then unlabeled/ as u-<name>, read in place
from ../shared/data/metaldam) copied up to --micrographs files, a plain folder; one of them (round 0's) gets the
strokes `pscl data strokes` simulates (2 % of its pixels, seed 0), written through the page's own
annotation code. Then runs the real `pscl app` in a subprocess and headless Chromium on it, and measures:

* page load: from navigation until every micrograph's thumbnail entry is listed and the first image
  tile is drawn (the thumbnails themselves load lazily as they scroll into view);
* request latency while training runs: /api/state, /api/job, /api/micrographs/<stem> and image tiles,
  every 0.25 s from another thread (p50, p95, max);
* time from pressing Train to the first overlay of the micrograph on the page (a preview of the model
  in training), and to the final model's segmentation of every micrograph;
* screenshots (SHOTS_DIR): the strokes, the first overlay, the final overlay with phase fractions, the
  unsure layer, the export.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from pscl.app.workspace import Workspace
from pscl.data.annotation import save_mask
from pscl.data.folders import load_dataset
from pscl.data.strokes import stroke_mask
from pscl.provenance import provenance

def build(work: Path, count: int, source_folder: Path) -> tuple[Path, str]:
    folder = work / "micrographs"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    files = [(p, p.name) for p in sorted((source_folder / "images").iterdir())]
    files += [(p, f"u-{p.name}") for p in sorted((source_folder / "unlabeled").iterdir())]  # (names repeat there)
    for path, name in files[:count]:
        shutil.copy2(path, folder / name)
    source = load_dataset(source_folder)
    stem = source.shots(1, 0)[0]
    ws = Workspace(folder)
    ws.init(source.classes)
    mask = stroke_mask(source.load_mask(stem), 0.02, np.random.default_rng(0))  # (data bar rows: not stroked)
    full = np.full((ws.micrograph(stem).height, ws.micrograph(stem).width), 255, np.uint8)
    full[:mask.shape[0]] = mask
    save_mask(folder, stem, full)
    return folder, stem


def timed_get(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()
    return (time.perf_counter() - start) * 1000


def main(work: Path, out: Path, shots: Path | None, profile: str, count: int, source: Path) -> None:
    from playwright.sync_api import sync_playwright
    folder, stem = build(work, count, source)
    server = subprocess.Popen([sys.executable, "-m", "pscl.cli", "app", str(folder), "--port", "0", "--profile", profile],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = server.stdout.readline()
    url = line.strip().rsplit(" ", 1)[-1]
    result = {"micrographs": count, "stroked": stem, "profile": profile, "url": url}
    chromium = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium)
            page = browser.new_page(viewport={"width": 1400, "height": 860})
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function(f"() => document.querySelectorAll('.thumb').length === {count} && "
                                   "[...S.tiles.keys()].some(k => k.startsWith('image/') && S.tiles.get(k).ok)")
            result["page_load_s"] = round(time.perf_counter() - start, 3)
            page.click(f".thumb[data-stem={stem}]")
            page.wait_for_function(f"() => document.getElementById('stem').textContent === '{stem}'")
            page.wait_for_timeout(1500)
            if shots:
                page.screenshot(path=str(shots / "app-strokes.jpg"), quality=80)
            latencies: dict[str, list[float]] = {"state": [], "job": [], "micrograph": [], "tile": []}
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    for key, path in (("state", "/api/state"), ("job", "/api/job"), ("micrograph", f"/api/micrographs/{stem}"),
                                      ("tile", f"/api/tile/image/{stem}/1/0/0")):
                        latencies[key].append(timed_get(url.rstrip("/") + path))
                    time.sleep(0.25)
            page.click("#train")
            pressed = time.perf_counter()
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            page.wait_for_function("() => /^segmentation: /.test(document.getElementById('source').textContent)",
                                   timeout=30 * 60 * 1000)
            result["first_overlay_s"] = round(time.perf_counter() - pressed, 1)
            page.wait_for_timeout(1500)
            if shots:
                page.screenshot(path=str(shots / "app-first-overlay.jpg"), quality=80)
            page.wait_for_function("() => /job \\d+ ready|^(failed|interrupted|cancelled)/"
                                   ".test(document.getElementById('job-text').textContent)", timeout=60 * 60 * 1000)
            result["job_text"] = page.locator("#job-text").inner_text()
            result["trained_and_segmented_all_s"] = round(time.perf_counter() - pressed, 1)
            stop.set()
            sampler.join()
            result["latency_ms"] = {k: {"n": len(v), "p50": round(float(np.percentile(v, 50)), 1),
                                        "p95": round(float(np.percentile(v, 95)), 1), "max": round(max(v), 1)}
                                    for k, v in latencies.items() if v}
            job = json.loads(sorted((folder / ".pscl" / "jobs").iterdir())[-1].joinpath("job.json").read_text())
            result["job"] = {k: job.get(k) for k in ("steps", "semi", "init", "state", "message")}
            page.wait_for_timeout(2000)
            if shots:
                page.screenshot(path=str(shots / "app-overlay.jpg"), quality=80)
                page.check("#show-unsure")
                page.wait_for_timeout(2000)
                page.screenshot(path=str(shots / "app-unsure.jpg"), quality=80)
                page.uncheck("#show-unsure")
            page.click("#export")
            start = time.perf_counter()
            page.click("#export-go")
            page.wait_for_selector("#export-result a", timeout=30 * 60 * 1000)
            result["export_all_s"] = round(time.perf_counter() - start, 1)
            if shots:
                page.screenshot(path=str(shots / "app-export.jpg"), quality=80)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    result["provenance"] = provenance()
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    args = sys.argv[1:]
    profile = args[args.index("--profile") + 1] if "--profile" in args else "cpu"
    count = int(args[args.index("--micrographs") + 1]) if "--micrographs" in args else 200
    source = Path(args[args.index("--source") + 1]) if "--source" in args else Path("../shared/data/metaldam")
    positional = [a for i, a in enumerate(args) if not a.startswith("--") and (i == 0 or not args[i - 1].startswith("--"))]
    main(Path(positional[0]), Path(positional[1]), Path(positional[2]) if len(positional) > 2 else None, profile,
         count, source)
