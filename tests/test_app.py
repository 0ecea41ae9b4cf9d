"""`pscl app` through its HTTP API: annotation on disk, training jobs, and every security rule."""
from __future__ import annotations

import io
import json
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from pscl.app import security  # noqa: E402
from pscl.app.server import make_app  # noqa: E402
from pscl.app.workspace import stroke_footprint  # noqa: E402
from pscl.data.folders import load_dataset
from pscl.data.labels import check_dataset  # noqa: E402
from pscl.data.io import read_mask  # noqa: E402

H = {"X-Pscl": "1"}


def plain_folder(root: Path, n: int = 3, size: int = 96) -> Path:
    """Micrographs directly in a folder: two phases (dark left, bright right) with noise."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for i in range(n):
        image = np.full((size, size), 60, np.uint8)
        image[:, size // 2:] = 190
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / f"m{i}.png")
    return root


def client(folder: Path, **kwargs) -> TestClient:
    return TestClient(make_app(folder, **kwargs), base_url="http://127.0.0.1")


def wait_for_job(c: TestClient, timeout: float = 240) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = c.get("/api/job").json()
        if job["state"] not in ("starting", "training", "predicting"):
            return job
        time.sleep(0.5)
    c.post("/api/cancel", headers=H)  # a failing test leaves no training behind
    raise AssertionError(f"job still running after {timeout} s: {job}")


def test_a_stroke_is_a_capsule_of_the_brush_radius():
    y0, x0, hit = stroke_footprint(np.array([[10.5, 20.5], [40.5, 20.5]]), 4, (64, 64))
    mask = np.zeros((64, 64), bool)
    mask[y0:y0 + hit.shape[0], x0:x0 + hit.shape[1]] = hit
    yy, xx = np.mgrid[:64, :64] + 0.5
    distance = np.hypot(np.clip(xx, 10.5, 40.5) - xx, 20.5 - yy)  # to the segment y = 20.5, x in [10.5, 40.5]
    assert (mask == (distance <= 4)).all()
    assert stroke_footprint(np.array([[500.0, 500.0]]), 3, (64, 64)) is None  # off the image


def test_strokes_go_to_disk_and_keep_the_folder_a_valid_dataset(tmp_path):
    folder = plain_folder(tmp_path / "plain")
    c = client(folder)
    assert c.get("/api/state").json()["classes"] == []
    assert c.post("/api/stroke/m0", json={"label": 0, "radius": 3, "points": [[5, 5]]}, headers=H).status_code == 400
    assert c.post("/api/init", json={"classes": ["dark", "bright"]}, headers=H).status_code == 200
    c.post("/api/stroke/m0", json={"label": 0, "radius": 3, "points": [[10, 10], [10, 80]]}, headers=H)
    status = c.post("/api/stroke/m0", json={"label": 1, "radius": 3, "points": [[80, 10], [80, 80]]}, headers=H).json()
    assert status["split"] == "train" and status["labelled"][0] > 100 and status["labelled"][1] > 100
    mask = read_mask(folder / "masks" / "m0.png")
    assert mask[40, 10] == 0 and mask[40, 80] == 1 and mask[40, 45] == 255
    assert check_dataset(folder) == []  # `pscl data check` passes on the page's folder
    assert load_dataset(folder).stems("train") == ["m0"]
    assert load_dataset(folder).image_path("m0") == folder / "m0.png"
    assert [p.stem for p in load_dataset(folder).unlabeled_paths()] == ["m1", "m2"]
    undone = c.post("/api/undo/m0", headers=H).json()
    assert undone["labelled"][1] == 0 and read_mask(folder / "masks" / "m0.png")[40, 80] == 255
    assert c.post("/api/redo/m0", headers=H).json()["labelled"] == status["labelled"]
    big = c.post("/api/stroke/m0", json={"label": 255, "radius": 200, "points": [[48, 48]]}, headers=H).json()
    assert big["labelled"] == [0, 0] and big["split"] is None  # erased: no longer annotated
    assert json.loads((folder / "dataset.json").read_text())["splits"]["train"] == []
    bad = c.post("/api/stroke/m0", json={"label": 7, "radius": 3, "points": [[5, 5]]}, headers=H)
    assert bad.status_code == 400 and "class 7" in bad.json()["error"]


def test_classes_are_renamed_added_and_recoloured_never_removed(tmp_path):
    folder = plain_folder(tmp_path / "plain")
    c = client(folder)
    c.post("/api/init", json={"classes": ["a", "b"]}, headers=H)
    state = c.post("/api/classes", json={"classes": ["ferrite", "b", "carbide"],
                                         "colours": ["#ff0000", "#00ff00", "#0000ff"]}, headers=H).json()
    assert state["classes"] == ["ferrite", "b", "carbide"] and state["colours"][0] == "#ff0000"
    gone = c.post("/api/classes", json={"classes": ["ferrite"], "colours": ["#ff0000"]}, headers=H)
    assert gone.status_code == 400
    c.post("/api/stroke/m1", json={"label": 2, "radius": 2, "points": [[5, 5]]}, headers=H)
    tile = Image.open(io.BytesIO(c.get("/api/tile/mask/m1/0/0/0").content))
    assert tile.getpixel((5, 5)) == (0, 0, 255, 255) and tile.getpixel((50, 50))[3] == 0


def test_tiles_cover_a_large_micrograph_level_by_level(tmp_path):
    root = tmp_path / "big"
    root.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1100, 700), dtype=np.uint8)).save(root / "big.png")
    c = client(root)
    info = c.get("/api/micrographs/big").json()
    assert info["levels"] == 4 and info["tile"] == 256
    assert Image.open(io.BytesIO(c.get("/api/tile/image/big/0/2/4").content)).size == (700 - 512, 1100 - 1024)
    assert Image.open(io.BytesIO(c.get("/api/tile/image/big/3/0/0").content)).size == (88, 138)
    assert c.get("/api/tile/image/big/0/3/0").status_code == 204  # beyond the image
    assert c.get("/api/tile/image/big/9/0/0").status_code == 204


@pytest.mark.parametrize("path", ["/api/micrographs/..%2F..%2Fetc%2Fpasswd", "/api/thumb/%2Fetc%2Fpasswd",
                                  "/api/tile/image/..%5Cm0/0/0/0", "/api/micrographs/m0.png",
                                  "/api/export/..%2F..%2Fm0.zip", "/api/tile/image/%2e%2e/0/0/0"])
def test_no_request_reaches_a_file_by_path(tmp_path, path):
    folder = plain_folder(tmp_path / "plain")
    response = client(folder).get(path)
    assert response.status_code == 404, response.text


def test_symlinks_leading_out_of_the_folder_are_not_followed(tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(outside / "secret.png")
    folder = plain_folder(tmp_path / "plain")
    (folder / "leak.png").symlink_to(outside / "secret.png")
    stems = [m["stem"] for m in client(folder).get("/api/state").json()["micrographs"]]
    assert "leak" not in stems and stems == ["m0", "m1", "m2"]
    (folder / "masks").symlink_to(outside, target_is_directory=True)
    with pytest.raises(Exception, match="leads outside"):
        make_app(folder)


def test_other_hosts_need_the_token_and_changes_need_the_page_header(tmp_path):
    folder = plain_folder(tmp_path / "plain")
    local = client(folder)
    assert local.get("/api/state").status_code == 200
    rebound = TestClient(make_app(folder), base_url="http://evil.example")
    assert rebound.get("/api/state").status_code == 403  # DNS rebinding: a foreign Host name
    assert local.post("/api/init", json={"classes": ["a", "b"]}).status_code == 403  # no X-Pscl: cross-site form
    token = security.new_token()
    remote = TestClient(make_app(folder, token=token), base_url="http://10.0.0.5")
    assert remote.get("/api/state").status_code == 403
    assert remote.get("/api/state?token=wrong").status_code == 403
    assert remote.get(f"/api/state?token={token}").status_code == 200
    assert remote.get("/api/state", headers={"X-Pscl-Token": token}).status_code == 200
    page = remote.get(f"/?token={token}")
    assert page.status_code == 200 and "pscl_token" in page.headers["set-cookie"]
    assert remote.get("/api/state", cookies={"pscl_token": token}).status_code == 200


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress(b"\x00" * 1024)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name", ["../up.png", "/abs/x.png", "a/b.png", "a\\b.png", ".hidden.png", "x.txt",
                                  "m0.png", ""])
def test_upload_names_are_plain_new_image_files(tmp_path, name):
    folder = plain_folder(tmp_path / "plain")
    data = io.BytesIO()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(data, format="PNG")
    response = client(folder).post("/api/upload", params={"name": name}, content=data.getvalue(), headers=H)
    assert response.status_code == 400, response.text
    assert sorted(p.name for p in folder.iterdir()) == ["m0.png", "m1.png", "m2.png"] or (folder / ".pscl").exists()
    assert not (tmp_path / "up.png").exists() and not (folder / "x.txt").exists()


def test_uploads_are_capped_in_bytes_and_in_pixels(tmp_path, monkeypatch):
    folder = plain_folder(tmp_path / "plain")
    c = client(folder)
    bomb = c.post("/api/upload", params={"name": "bomb.png"}, content=_png_header_only(100_000, 100_000), headers=H)
    assert bomb.status_code == 400 and not (folder / "bomb.png").exists()
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 30), dtype=np.uint8)).save(data, format="PNG")
    monkeypatch.setattr("pscl.app.server.MAX_UPLOAD_BYTES", 100)
    assert c.post("/api/upload", params={"name": "new.png"}, content=data.getvalue(), headers=H).status_code == 413
    monkeypatch.setattr("pscl.app.server.MAX_UPLOAD_BYTES", 10 ** 6)
    ok = c.post("/api/upload", params={"name": "new.png"}, content=data.getvalue(), headers=H)
    assert ok.status_code == 201 and (folder / "new.png").is_file()
    assert "new" in [m["stem"] for m in c.get("/api/state").json()["micrographs"]]
    assert not any((folder / ".pscl" / "uploads").iterdir())  # nothing half-written left behind


def test_one_training_at_a_time_cancel_and_a_restart_that_says_what_happened(tmp_path):
    folder = plain_folder(tmp_path / "plain")
    c = client(folder, profile="smoke")
    assert c.post("/api/train", json={}, headers=H).status_code == 400  # nothing annotated
    c.post("/api/init", json={"classes": ["dark", "bright"]}, headers=H)
    c.post("/api/stroke/m0", json={"label": 0, "radius": 3, "points": [[10, 10], [10, 80]]}, headers=H)
    c.post("/api/stroke/m0", json={"label": 1, "radius": 3, "points": [[80, 10], [80, 80]]}, headers=H)
    first = c.post("/api/train", json={}, headers=H)
    assert first.status_code == 202
    second = c.post("/api/train", json={}, headers=H)
    assert second.status_code == 409 and "running" in second.json()["error"]
    c.post("/api/cancel", headers=H)
    job = wait_for_job(c, 60)
    assert job["state"] == "cancelled"
    assert read_mask(folder / "masks" / "m0.png")[40, 80] == 1  # every stroke still on disk
    # a job whose process died without a word (server killed, machine down): the restarted server says so
    dead = folder / ".pscl" / "jobs" / "0002"
    dead.mkdir()
    (dead / "job.json").write_text(json.dumps({"state": "training", "pid": 2 ** 22 + 7, "step": 12, "steps": 40}))
    restarted = client(folder, profile="smoke")
    job = restarted.get("/api/job").json()
    assert job["state"] == "interrupted" and "step 12 of 40" in job["message"]
    restarted.post("/api/classes", json={"classes": ["dark", "bright"], "colours": ["#ff0000", "#0000ff"]}, headers=H)
    assert restarted.post("/api/train", json={}, headers=H).status_code == 202
    done = wait_for_job(restarted)
    assert done["state"] == "done", (folder / ".pscl" / "jobs" / done["id"] / "log.txt").read_text()[-2000:]
    model = restarted.get("/api/state").json()["model"]
    assert set(model["fractions"]) == {"m0", "m1", "m2"} and model["next"] in ("m1", "m2")
    predictions = folder / ".pscl" / "jobs" / done["id"] / "predictions"
    assert os.path.isfile(predictions / "m1_unsure.png")
    assert json.loads((predictions / "predictions.json").read_text())["colours"] == [[255, 0, 0], [0, 0, 255]]
    labels = np.asarray(Image.open(predictions / "m0_mask.png"))
    tinted = np.asarray(Image.open(predictions / "m0_overlay.png")).astype(int)
    red, blue = tinted[labels == 0], tinted[labels == 1]  # the user's colours, not the default blue and orange
    assert len(red) + len(blue) == labels.size and (red[:, 0] > red[:, 2]).all() and (blue[:, 2] > blue[:, 0]).all()
    exported = restarted.post("/api/export", json={"stems": ["m0"]}, headers=H).json()
    assert "rgb(255, 0, 0)" in (Path(exported["folder"]) / "report" / "report.html").read_text()


def test_data_init_makes_a_plain_folder_a_dataset_in_place_and_refuses_what_it_cannot(tmp_path):
    from typer.testing import CliRunner

    from pscl.cli import app as cli
    runner = CliRunner()
    folder = plain_folder(tmp_path / "plain")
    (folder / "masks").mkdir()
    mask = np.full((96, 96), 255, np.uint8)
    mask[10:20, 10:20] = 1
    Image.fromarray(mask).save(folder / "masks" / "m2.png")  # a mask drawn elsewhere counts as annotation
    done = runner.invoke(cli, ["data", "init", str(folder), "--classes", "ferrite, pearlite"])
    assert done.exit_code == 0, done.output
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["classes"] == ["ferrite", "pearlite"] and meta["splits"] == {"train": ["m2"]}
    assert sorted(p.name for p in folder.iterdir()) == ["dataset.json", "m0.png", "m1.png", "m2.png", "masks"]
    assert runner.invoke(cli, ["data", "init", str(folder), "--classes", "ferrite,pearlite"]).exit_code == 0
    other = runner.invoke(cli, ["data", "init", str(folder), "--classes", "a,b"])
    assert other.exit_code == 1 and "already a dataset folder" in other.output
    for classes, needle in (("one", "at least two"), ("a,a", "more than once"), ("a,,b", "non-empty")):
        refused = runner.invoke(cli, ["data", "init", str(tmp_path / "plain"), "--classes", classes])
        assert refused.exit_code == 1 and needle in refused.output
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = runner.invoke(cli, ["data", "init", str(empty), "--classes", "a,b"])
    assert refused.exit_code == 1 and "no micrographs" in refused.output and not (empty / "dataset.json").exists()


def test_the_app_command_refuses_bad_options_before_serving(tmp_path):
    import socket

    from typer.testing import CliRunner

    from pscl.cli import app as cli
    runner = CliRunner()
    folder = plain_folder(tmp_path / "plain")
    missing = runner.invoke(cli, ["app", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "not a folder" in missing.output
    assert "--profile" in runner.invoke(cli, ["app", str(folder), "--profile", "paper"]).output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(cli, ["app", str(folder), "--port", str(port)])
    assert busy.exit_code == 1 and f"--port {port}" in busy.output
    assert not (folder / ".pscl").exists()  # nothing written
