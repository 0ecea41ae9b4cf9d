"""The page's web server (Starlette): the page itself, and a JSON API over one folder.

Handlers are plain functions run in Starlette's thread pool, so a slow tile never blocks another
request; training runs in its own process (:mod:`pscl.app.jobs`). Every micrograph is named by its stem
and looked up in the folder's listing (:class:`~pscl.app.workspace.Workspace`); no request names a path.
"""
from __future__ import annotations

import contextlib
import functools
import json
import tempfile
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from pscl.app import tiles
from pscl.app.export import ZIPS, export_results, export_zip
from pscl.app.jobs import Busy, Jobs
from pscl.app.runner import UNSURE_FILE
from pscl.app.security import MAX_UPLOAD_BYTES, Guard, check_upload, upload_name
from pscl.app.workspace import Workspace
from pscl.data.io import read_mask
from pscl.errors import DataError
from pscl.files import write_text

STATIC = Path(__file__).parent / "static"
PROFILES = ("smoke", "quick", "cpu")
LAYERS = ("image", "mask", "pred", "unsure")


@functools.lru_cache(maxsize=16)
def _segmentation_png(path: str, mtime_ns: int) -> np.ndarray:
    """A job's ``<stem>_mask.png`` or ``<stem>_unsure.png`` (8-bit, one channel), kept while unchanged."""
    return read_mask(path)


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(folder: str | Path, token: str | None = None, profile: str = "cpu") -> Starlette:
    """The ASGI app serving ``folder`` (``token``: required on every request, see :mod:`.security`;
    ``profile``: the training budget of the Train button)."""
    ws = Workspace(folder)
    jobs = Jobs(ws.root, ws.state)
    pyramids = tiles.PyramidCache()

    def guarded(handler):
        def run(request: Request):
            try:
                return handler(request)
            except KeyError as exc:
                return _error(f"no micrograph {exc.args[0]!r} in {ws.root}", 404)
            except Busy as exc:
                return _error(str(exc), 409)
            except (DataError, ValueError) as exc:
                return _error(str(exc))
        return run

    def body(request: Request) -> dict:
        import anyio.from_thread
        raw = anyio.from_thread.run(request.body)
        try:
            return json.loads(raw or b"{}")
        except json.JSONDecodeError:
            raise DataError("the request body is not JSON") from None

    def prediction(stem: str, kind: str) -> tuple[np.ndarray | None, str | None]:
        """(array, "preview at step N" | "final") of the newest segmentation of ``stem``."""
        active, done = jobs.active(), jobs.latest_done()
        sources = []
        if active and stem in (active.get("preview") or {}).get("stems", []):
            sources.append((jobs.path(active["id"]) / "preview", f"preview at step {active['preview']['step']}"))
        if done:
            sources.append((jobs.path(done["id"]) / "predictions", f"model of job {done['id']}"))
        for folder, label in sources:
            path = folder / f"{stem}_{kind}.png"
            if path.is_file():
                return _segmentation_png(str(path), path.stat().st_mtime_ns), label
        return None, None

    def model_info() -> dict | None:
        done = jobs.latest_done()
        if done is None:
            return None
        folder = jobs.path(done["id"]) / "predictions"
        try:
            meta = json.loads((folder / "predictions.json").read_text())
            ranking = json.loads((folder / UNSURE_FILE).read_text())
        except (OSError, ValueError):
            return None
        fractions = {s: info["fractions"] for s, info in meta["images"].items()}
        candidates = [r for r in ranking if ws.split_of(r["image"]) is None and r["image"] in ws.micrographs]
        return {"job": done["id"], "classes": meta["classes"], "fractions": fractions,
                "unsure": {r["image"]: r["mean_unsure"] for r in ranking},
                "next": candidates[0]["image"] if candidates else None, "where": candidates[0] if candidates else None}

    def state(request: Request):
        ws.refresh()
        items = [{"stem": m.stem, "width": m.width, "height": m.height, "split": ws.split_of(m.stem)}
                 for m in ws.micrographs.values()]
        return JSONResponse({"folder": str(ws.root), "name": ws.dataset.name if ws.dataset else ws.root.name,
                             "classes": ws.classes, "colours": ws.colours, "micrographs": items,
                             "job": jobs.latest(), "model": model_info(), "profile": profile})

    def micrograph(request: Request):
        stem = request.path_params["stem"]
        item = ws.micrograph(stem)
        _, source = prediction(stem, "mask")
        return JSONResponse({**ws.status(stem), "width": item.width, "height": item.height, "tile": tiles.TILE,
                             "levels": tiles.levels_for(item.height, item.width), "prediction": source})

    def thumb(request: Request):
        item = ws.micrograph(request.path_params["stem"])
        cache = ws.state / "thumbs" / f"{item.stem}-{item.path.stat().st_mtime_ns}.png"
        if not cache.is_file():
            data = tiles.thumbnail(item.path)
            from pscl.files import atomic_write
            atomic_write(cache, lambda p: p.write_bytes(data))
        return FileResponse(cache, media_type="image/png")

    def tile(request: Request):
        p = request.path_params
        layer, stem, level, tx, ty = p["layer"], p["stem"], p["level"], p["tx"], p["ty"]
        item = ws.micrograph(stem)
        if layer not in LAYERS:
            return _error(f"no layer {layer!r}", 404)
        if layer == "image":
            found = pyramids.get(item.path).tile(level, tx, ty)
        elif layer == "mask":
            found = tiles.label_tile(ws.mask(stem), level, tx, ty)
            found = None if found is None else tiles.colour_table(ws.colour_values())[found]
        else:
            array, _ = prediction(stem, "mask" if layer == "pred" else "unsure")
            found = None if array is None else tiles.label_tile(array, level, tx, ty)
            if found is not None:
                found = tiles.colour_table(ws.colour_values())[found] if layer == "pred" else tiles.unsure_rgba(found)
        if found is None:
            return Response(status_code=204)
        return Response(tiles.png(found), media_type="image/png", headers={"Cache-Control": "no-cache"})

    def init(request: Request):
        ws.init(list(body(request).get("classes") or []))
        return state(request)

    def classes(request: Request):
        data = body(request)
        ws.set_classes(list(data.get("classes") or []), list(data.get("colours") or []))
        return state(request)

    def stroke(request: Request):
        data = body(request)
        return JSONResponse(ws.stroke(request.path_params["stem"], int(data.get("label", -1)),
                                      float(data.get("radius", 0)), data.get("points") or []))

    def history(request: Request):
        stem, action = request.path_params["stem"], request.path_params["action"]
        if action not in ("undo", "redo"):
            return _error(f"no action {action!r}", 404)
        return JSONResponse(ws.undo(stem) if action == "undo" else ws.redo(stem))

    def focus(request: Request):
        stem = ws.micrograph(request.path_params["stem"]).stem
        write_text(ws.state / "focus.json", json.dumps({"stem": stem}))
        return JSONResponse({"stem": stem})

    def train(request: Request):
        chosen = body(request).get("profile") or profile
        if chosen not in PROFILES:
            raise DataError(f"profile {chosen!r}: one of {', '.join(PROFILES)}")
        if ws.dataset is None or not ws.dataset.splits.get("train"):
            raise DataError("stroke at least one micrograph first: nothing is annotated")
        return JSONResponse(jobs.start(chosen, ws.classes, ws.colour_values()), status_code=202)

    def job(request: Request):
        return JSONResponse(jobs.latest())

    def cancel(request: Request):
        return JSONResponse(jobs.cancel())

    def export(request: Request):
        done = jobs.latest_done()
        if done is None:
            raise DataError("train a model first: there is nothing to export")
        stems = body(request).get("stems") or None
        out = export_results(jobs.path(done["id"]) / "predictions", stems, ws.root / "exports")
        return JSONResponse({"folder": str(out), "name": out.name, "download": f"/api/export/{out.name}.zip"})

    def download(request: Request):
        name = request.path_params["name"]
        exports = {p.name: p for p in (ws.root / "exports").iterdir()} if (ws.root / "exports").is_dir() else {}
        if name not in exports or name.startswith(".") or not ws.inside(exports[name]):
            return _error(f"no export {name!r}", 404)
        return FileResponse(export_zip(exports[name], ws.state / ZIPS), filename=f"{name}.zip")

    def upload(request: Request):
        import anyio.from_thread
        name = upload_name(request.query_params.get("name", ""), set(ws.micrographs))
        if ws.dataset is not None and (ws.root / "images").is_dir():
            target = ws.root / "images"
        else:
            target = ws.root
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
            return _error(f"{name}: larger than {MAX_UPLOAD_BYTES // 2 ** 20} MB", 413)
        (ws.state / "uploads").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=ws.state / "uploads") as tmp:
            path = Path(tmp) / name

            async def receive() -> int:
                size = 0
                with open(path, "wb") as handle:
                    async for chunk in request.stream():
                        size += len(chunk)
                        if size > MAX_UPLOAD_BYTES:
                            return -1
                        handle.write(chunk)
                return size
            if anyio.from_thread.run(receive) < 0:
                return _error(f"{name}: larger than {MAX_UPLOAD_BYTES // 2 ** 20} MB", 413)
            check_upload(path)
            path.rename(target / name)
        ws.refresh()
        return JSONResponse({"stem": Path(name).stem}, status_code=201)

    def index(request: Request):
        response = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})
        if token and request.query_params.get("token") == token:
            response.set_cookie("pscl_token", token, httponly=True, samesite="strict")
        return response

    routes = [
        Route("/", index),
        Route("/api/state", guarded(state)),
        Route("/api/micrographs/{stem}", guarded(micrograph)),
        Route("/api/thumb/{stem}", guarded(thumb)),
        Route("/api/tile/{layer}/{stem}/{level:int}/{tx:int}/{ty:int}", guarded(tile)),
        Route("/api/init", guarded(init), methods=["POST"]),
        Route("/api/classes", guarded(classes), methods=["POST"]),
        Route("/api/stroke/{stem}", guarded(stroke), methods=["POST"]),
        Route("/api/focus/{stem}", guarded(focus), methods=["POST"]),
        Route("/api/{action:str}/{stem}", guarded(history), methods=["POST"]),
        Route("/api/train", guarded(train), methods=["POST"]),
        Route("/api/job", guarded(job)),
        Route("/api/cancel", guarded(cancel), methods=["POST"]),
        Route("/api/export", guarded(export), methods=["POST"]),
        Route("/api/export/{name}.zip", guarded(download)),
        Route("/api/upload", guarded(upload), methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        jobs.shutdown()  # a job this server started stops with it

    app = Starlette(routes=routes, lifespan=lifespan)
    guard = Guard(app, token)
    guard.workspace, guard.jobs = ws, jobs
    return guard


__all__ = ["make_app"]
