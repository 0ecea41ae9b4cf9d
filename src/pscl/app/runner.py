"""One training job of the page, in a process of its own: ``python -m pscl.app.runner FOLDER JOB``.

The job folder holds ``job.json`` (the request, then the state this process writes atomically:
``training``, ``predicting``, ``done``, ``failed`` or ``cancelled``, with the step, the time left and a
message), ``run/`` (the fine-tuning run folder), ``preview/`` (segmentations of the micrograph on the
page and of the annotated ones by the model in training, from :data:`FIRST_PREVIEW_S` seconds on) and
``predictions/`` (every micrograph segmented by the final model, with how unsure it is per pixel, and
``unsure.json``: the micrographs ranked by it, with the most unsure place in each).

The pipeline is the one that holds without val masks (:func:`job_config`): the model of the last step;
self-training on the unlabelled micrographs (and the unstroked parts of the stroked ones) only where a
fifth of the strokes can be held out to check it, rolled back where it lowers their Dice (a rolled-back
run trains on all the strokes: :mod:`pscl.train.guard`); a correction
round starts from the last finished job's model with a third of the steps.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
import traceback
from collections import deque
from pathlib import Path

from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.io import load_micrograph
from pscl.errors import DataError
from pscl.files import write_png, write_text
from pscl.studies.unsure import unsure_ranking

JOB_FILE = "job.json"
UNSURE_FILE = "unsure.json"  # in predictions/: every micrograph, most unsure first (pscl.studies.unsure)
FIRST_PREVIEW_S = 30.0
PREVIEWS = 4  # further previews: at each quarter of the steps
RATE_WINDOW_S = 30.0
CORRECTION_SHARE = 3  # a correction round trains steps // 3
RUNNING = ("starting", "training", "predicting")


def read_job(job: Path) -> dict:
    try:
        return json.loads((job / JOB_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def write_job(job: Path, **changes) -> dict:
    state = {**read_job(job), **changes, "updated": time.time()}
    write_text(job / JOB_FILE, json.dumps(state, indent=1))
    return state


def job_config(ds: DatasetFolder, profile: str, init: str | None):
    """The fine-tuning settings of a job (module doc)."""
    from pscl.train.finetune import finetune_config, guard_holdout
    base = finetune_config(profile)
    stems = ds.stems("train")
    overrides = dict(stems=stems, select="last", progress=False)
    if init:
        overrides.update(init=init, steps=max(base.val_every, base.steps // CORRECTION_SHARE))
    try:  # (the hold-out depends on the crop and seed only, which overrides leave as the profile's)
        guard_holdout([ds.load_mask(s) for s in stems], base, len(ds.classes))
        overrides.update(semi=True, semi_align=True, semi_align_mix=1.0)
    except ValueError:
        pass
    return finetune_config(profile, **overrides)


class Progress:
    """The step hook: the job's step and time left, and previews of the model being trained."""

    def __init__(self, job: Path, ds: DatasetFolder, focus: Path):
        self.job, self.ds, self.focus = job, ds, focus
        self.start, self.last_write, self.previews = time.monotonic(), 0.0, 0
        self.marks: deque = deque()  # (time, step) of the last RATE_WINDOW_S seconds: the time left

    def __call__(self, step: int, total: int, module) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        due = (self.previews == 0 and elapsed >= FIRST_PREVIEW_S) or \
              (self.previews > 0 and step >= total * min(self.previews, PREVIEWS) / PREVIEWS and self.previews <= PREVIEWS)
        if due:
            self.preview(step, module)
        if due or now - self.last_write >= 1.0 or step == total:
            self.marks.append((now, step))
            while len(self.marks) > 2 and now - self.marks[0][0] > RATE_WINDOW_S:
                self.marks.popleft()
            (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
            rate = (t1 - t0) / (s1 - s0) if s1 > s0 else elapsed / max(step, 1)  # (self-training steps are slower)
            write_job(self.job, state="training", step=step, steps=total, seconds_left=round(rate * (total - step), 1))
            self.last_write = now

    def preview(self, step: int, module) -> None:
        from pscl.inference.predict import torch_tile_model
        from pscl.inference.tiling import segment_tiled
        self.previews += 1
        stems = focus_stems(self.focus)
        stems += [s for s in self.ds.stems("train")[:2] if s not in stems]
        model = copy.deepcopy(getattr(module, "model", module)).float().cpu().eval()
        tile_model = torch_tile_model(model)
        done = []
        for stem in stems:
            try:
                image = load_micrograph(self.ds.image_path(stem), self.ds.crop_bottom)
            except DataError:
                continue
            seg = segment_tiled(tile_model, image, len(self.ds.classes))
            write_png(self.job / "preview" / f"{stem}_unsure.png", seg.unsure)
            write_png(self.job / "preview" / f"{stem}_mask.png", seg.labels)
            done.append(stem)
        write_job(self.job, preview={"step": step, "stems": done})


def micrograph_paths(ds: DatasetFolder, first: list[str]) -> list[Path]:
    """Every micrograph of the folder (image folder and unlabeled/), those of ``first`` first."""
    paths: dict[str, Path] = {}
    for path in [*ds.image_files(), *ds.unlabeled_paths()]:
        paths.setdefault(path.stem, path)  # (a name repeated in unlabeled/ is shown and segmented once, as the page lists it)
    order = list(dict.fromkeys([s for s in first if s in paths] + list(paths)))
    return [paths[s] for s in order]


def run_job(folder: Path, job: Path) -> int:
    from pscl.inference.predict import predict
    from pscl.train.finetune import finetune
    request = read_job(job)
    write_job(job, state="training", pid=os.getpid(), step=0, started=time.time(), message="")
    try:
        ds = load_dataset(folder)
        config = job_config(ds, request.get("profile", "cpu"), request.get("init"))
        write_job(job, steps=config.steps, semi=config.semi, init=config.init)
        progress = Progress(job, ds, folder / ".pscl" / "focus.json")
        finetune(ds, job / "run", config, on_step=progress)
        paths = micrograph_paths(ds, [*focus_stems(progress.focus), *ds.stems("train")])
        write_job(job, state="predicting", done=0, total=len(paths), seconds_left=None)

        def predicted(position, total, name):
            write_job(job, done=int(position), total=total)
        predict(job / "run", paths, job / "predictions", unsure=True, progress=predicted,
                colours=request.get("colours"))
        ranking = unsure_ranking(job / "predictions", [p.stem for p in paths])
        write_text(job / "predictions" / UNSURE_FILE, json.dumps(ranking, indent=1))
        write_job(job, state="done", message=f"trained on {len(config.stems)} micrograph(s)", finished=time.time())
        return 0
    except KeyboardInterrupt:
        write_job(job, state="cancelled", message="cancelled", finished=time.time())
        return 130
    except Exception as exc:  # noqa: BLE001 (the page says what happened; the log has the traceback)
        traceback.print_exc()
        write_job(job, state="failed", message=f"{type(exc).__name__}: {exc}", finished=time.time())
        return 1


def focus_stems(focus: Path) -> list[str]:
    """The micrograph the page shows (written by the server), as a list of 0 or 1 stems."""
    try:
        return [str(json.loads(focus.read_text())["stem"])]
    except (OSError, ValueError, KeyError):
        return []


if __name__ == "__main__":
    sys.exit(run_job(Path(sys.argv[1]), Path(sys.argv[2])))
