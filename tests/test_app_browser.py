"""`pscl app` in a real browser: headless Chromium driven by Playwright, mouse strokes on a synthetic folder,
training, overlays and fractions, a correction round, the export with its report.

Runs on the system Chromium (``.ci/run`` installs ``chromium-headless-shell``; no browser download). CI sets
``PSCL_REQUIRE_BROWSER=1``, under which a missing browser fails instead of skipping.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pscl.data.io import read_mask

REQUIRED = os.environ.get("PSCL_REQUIRE_BROWSER") == "1"


def _chromium() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _need(condition: bool, reason: str) -> None:
    if not condition:
        if REQUIRED:
            pytest.fail(f"{reason} (PSCL_REQUIRE_BROWSER=1: the browser tests must run)")
        pytest.skip(reason)


def _folder(root: Path, n: int = 3, size: int = 160) -> Path:
    """Three classes: a dark left band, a bright right band, grey discs."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(n):
        image = np.full((size, size), 50.0)
        image[:, size // 2:] = 200
        yy, xx = np.mgrid[:size, :size]
        for cy, cx in rng.integers(20, size - 20, (3, 2)):
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < 64] = 125
        Image.fromarray(np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)).save(root / f"m{i}.png")
    return root


@pytest.fixture
def served(tmp_path):
    """(base URL, folder) of a page server on a free port, training at the smoke budget."""
    pytest.importorskip("uvicorn")
    import uvicorn

    from pscl.app.server import make_app
    folder = _folder(tmp_path / "micrographs")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(make_app(folder, profile="smoke"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started and time.monotonic() < end:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", folder
    server.should_exit = True
    thread.join(timeout=30)


def _drag(page, box, points):
    """A mouse stroke through ``points`` (fractions of the canvas)."""
    x0, y0 = box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"]
    page.mouse.move(x0, y0)
    page.mouse.down()
    for fx, fy in points[1:]:
        page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"], steps=8)
    page.mouse.up()


def _wait_job_done(page, job: str, timeout_s: float = 240) -> None:
    """Until the page says job ``job`` is ready, or that a job ended otherwise (then fail with its words)."""
    page.wait_for_function(f"() => /job {job} ready|^(failed|interrupted|cancelled)/"
                           ".test(document.getElementById('job-text').textContent)", timeout=timeout_s * 1000)
    text = page.locator("#job-text").inner_text()
    assert text == f"model of job {job} ready", text


def test_annotate_train_inspect_correct_and_export_in_a_browser(served, tmp_path):
    _need(_chromium() is not None, "no headless Chromium here (.ci/run installs chromium-headless-shell)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need(False, "playwright is not installed (pip install -e '.[test]')")
    url, folder = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium())
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url)
        # a plain folder: the page asks for the classes first
        page.wait_for_selector("#init-dialog[open]")
        page.fill("#init-classes", "dark, bright, disc")
        page.click("#init-ok")
        page.wait_for_selector(".cls >> nth=2")
        assert json.loads((folder / "dataset.json").read_text())["classes"] == ["dark", "bright", "disc"]
        assert page.locator(".thumb").count() == 3
        box = page.locator("#view").bounding_box()
        page.wait_for_function("() => document.getElementById('stem').textContent === 'm0'")
        # strokes for every class: keys pick the class, the mouse draws
        page.keyboard.press("1")
        _drag(page, box, [(0.42, 0.15), (0.42, 0.85)])  # inside the dark band (the image is centred, square)
        page.keyboard.press("2")
        _drag(page, box, [(0.62, 0.15), (0.62, 0.85)])
        mask = None
        for _ in range(100):
            mask = read_mask(folder / "masks" / "m0.png") if (folder / "masks" / "m0.png").exists() else None
            if mask is not None and (mask == 1).any():
                break
            time.sleep(0.05)
        assert mask is not None and (mask == 0).sum() > 50 and (mask == 1).sum() > 50
        # undo and redo from the keyboard
        page.keyboard.press("Control+z")
        page.wait_for_function("() => document.querySelector('#labelled tr:nth-child(2) td.num').textContent === '0'")
        page.keyboard.press("Control+Shift+z")
        page.wait_for_function("() => document.querySelector('#labelled tr:nth-child(2) td.num').textContent !== '0'")
        # a disc: its centre in image pixels, stroked as a dot
        image = np.asarray(Image.open(folder / "m0.png"))
        ys, xs = np.nonzero(np.abs(image.astype(int) - 125) < 20)
        cy, cx = int(np.median(ys)), int(np.median(xs))
        page.keyboard.press("3")
        page.evaluate("r => { document.getElementById('size').value = r; document.getElementById('size').dispatchEvent(new Event('input')); }", 2)
        side = min(box["width"], box["height"]) * 0.98
        left, top = box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2
        page.mouse.click(left + (cx + 0.5) / 160 * side, top + (cy + 0.5) / 160 * side)
        page.wait_for_function("() => document.querySelector('#labelled tr:nth-child(3) td.num').textContent !== '0'")
        assert set(np.unique(read_mask(folder / "masks" / "m0.png"))) == {0, 1, 2, 255}
        assert page.locator(".thumb[data-stem=m0] .badge").inner_text() == "stroked"
        # train; the overlay and the fractions appear
        page.click("#train")
        _wait_job_done(page, "0001")
        page.wait_for_function("() => document.querySelector('#fractions td.num') !== null")
        fractions = page.locator("#fractions td.num").all_inner_texts()
        assert len(fractions) == 3 and abs(sum(float(f.rstrip(" %")) for f in fractions) - 100) < 0.5
        assert "model of job 0001" in page.locator("#source").inner_text()
        assert page.evaluate("() => [...S.tiles.keys()].some(k => k.startsWith('pred/m0/') && S.tiles.get(k).ok)")
        page.check("#show-unsure")
        page.wait_for_function("() => [...S.tiles.keys()].some(k => k.startsWith('unsure/m0/') && S.tiles.get(k).ok)")
        assert page.locator("#next button").count() == 1  # the micrograph to stroke next
        # correct on another micrograph, train again: the round starts from the last model
        page.click("#next button")
        page.wait_for_function("() => document.getElementById('stem').textContent !== 'm0'")
        corrected = page.locator("#stem").inner_text()
        page.keyboard.press("2")
        _drag(page, box, [(0.65, 0.2), (0.65, 0.8)])
        page.wait_for_function(f"() => document.querySelector('.thumb[data-stem={corrected}] .badge').textContent === 'stroked'")
        page.keyboard.press("t")
        _wait_job_done(page, "0002")
        job = json.loads((folder / ".pscl" / "jobs" / "0002" / "job.json").read_text())
        assert job["init"].endswith("0001/run") and job["state"] == "done"
        assert set(json.loads((folder / "dataset.json").read_text())["splits"]["train"]) == {"m0", corrected}
        # export every micrograph: the report is written and offered as a download
        page.click("#export")
        page.click("#export-go")
        page.wait_for_selector("#export-result a")
        written = Path(page.locator("#export-result code").inner_text())
        assert written.parent == folder / "exports" and (written / "report" / "report.html").is_file()
        assert (written / "phase_fractions.csv").read_text().count("\n") == 3 + 3  # header, 3 images, mean, std
        with page.expect_download() as download:
            page.click("#export-result a")
        saved = tmp_path / "export.zip"
        download.value.save_as(saved)
        assert saved.stat().st_size > 1000
        page.keyboard.press("Escape")
        # or only the micrographs chosen in the list
        page.click(".thumb[data-stem=m1]", modifiers=["Control"])
        page.click(".thumb[data-stem=m2]", modifiers=["Shift"])
        assert page.locator("#stem").inner_text() == corrected  # choosing does not open
        page.click("#export")
        assert page.locator("#chosen-count").inner_text() == "2"
        page.check("#export-chosen")
        page.click("#export-go")
        page.wait_for_function(f"() => document.querySelector('#export-result code') && "
                               f"document.querySelector('#export-result code').textContent !== '{written}'")
        chosen = Path(page.locator("#export-result code").inner_text())
        assert sorted(p.name for p in chosen.glob("*_mask.png")) == ["m1_mask.png", "m2_mask.png"]
        assert not errors, errors
        browser.close()
