"""The page's training jobs: one at a time, each in a process of its own (:mod:`pscl.app.runner`).

Jobs live in ``FOLDER/.pscl/jobs/<n>/``. What a job's state is comes from its ``job.json``, which its
process writes; a job whose file says it runs while its process is gone (the server or the process was
killed, the machine went down) is marked ``interrupted``, so a restarted server shows what happened.
A job still running when the server restarts is picked up (its process is not a child of the server).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pscl.app.runner import RUNNING, read_job, write_job
from pscl.errors import DataError

CANCEL_GRACE_S = 20.0
CANCELLED = "cancel-requested"


class Busy(Exception):
    """A second training was asked for while one runs."""


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Jobs:
    """Start, follow and cancel the training jobs of one folder."""

    def __init__(self, root: Path, state: Path):
        self.root, self.folder = root, state / "jobs"
        self.lock = threading.Lock()
        self.children: dict[str, subprocess.Popen] = {}

    def ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted((p.name for p in self.folder.iterdir() if p.name.isdigit()), key=int)

    def path(self, job_id: str) -> Path:
        return self.folder / job_id

    def status(self, job_id: str) -> dict:
        """The job's state; one recorded as running whose process is gone becomes ``interrupted``."""
        job = self.path(job_id)
        state = read_job(job)
        if state.get("state") in RUNNING and not self._running(job_id, state):
            step = f" at step {state['step']} of {state.get('steps')}" if state.get("step") else ""
            if (job / CANCELLED).exists():  # (cancelled before its process could say so)
                return {**write_job(job, state="cancelled", message="cancelled", finished=time.time()), "id": job_id}
            state = write_job(job, state="interrupted", finished=time.time(),
                              message=f"the training process stopped{step} without finishing (killed, or the "
                                      "server went down); every stroke is saved: press Train to train again")
        return {**state, "id": job_id}

    def _running(self, job_id: str, state: dict) -> bool:
        child = self.children.get(job_id)
        if child is not None:
            return child.poll() is None
        return _alive(state.get("pid"))

    def active(self) -> dict | None:
        ids = self.ids()
        if not ids:
            return None
        last = self.status(ids[-1])
        return last if last.get("state") in RUNNING else None

    def latest(self) -> dict | None:
        ids = self.ids()
        return self.status(ids[-1]) if ids else None

    def latest_done(self) -> dict | None:
        for job_id in reversed(self.ids()):
            state = self.status(job_id)
            if state.get("state") == "done":
                return state
        return None

    def start(self, profile: str = "cpu", classes: list[str] | None = None, colours: list | None = None) -> dict:
        """Start a job (a correction round from the last finished model where it has the same classes);
        ``colours`` (an RGB triple per class) colour its overlays and report."""
        with self.lock:
            active = self.active()
            if active is not None:
                raise Busy(f"a training is running (job {active['id']}, {active.get('state')}); "
                           "wait for it or cancel it")
            done = self.latest_done()
            init = None
            if done is not None and (self.path(done["id"]) / "run" / "model.pt").is_file() \
                    and done.get("classes") == classes and done.get("profile") == profile:
                init = str(self.path(done["id"]) / "run")
            job_id = f"{int(self.ids()[-1]) + 1 if self.ids() else 1:04d}"
            job = self.path(job_id)
            job.mkdir(parents=True)
            write_job(job, state="starting", profile=profile, init=init, classes=classes, colours=colours,
                      created=time.time())
            # a process group of its own (cancel signals the group; Ctrl-C in the server's terminal does not
            # reach it), in the server's session: on Linux a new session is a scheduling group of its own,
            # and a job's threads then ran 10x slower beside another busy process
            group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
            with open(job / "log.txt", "ab") as log:
                child = subprocess.Popen([sys.executable, "-m", "pscl.app.runner", str(self.root), str(job)],
                                         stdout=log, stderr=subprocess.STDOUT, **group,
                                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
            self.children[job_id] = child
            write_job(job, pid=child.pid)
            return self.status(job_id)

    def cancel(self) -> dict:
        """Interrupt the running job (its process records ``cancelled``); killed after a grace period."""
        with self.lock:
            active = self.active()
            if active is None:
                raise DataError("no training is running")
            pid = active.get("pid")
            (self.path(active["id"]) / CANCELLED).touch()
            try:
                os.killpg(pid, signal.SIGINT)
            except (ProcessLookupError, PermissionError, TypeError):
                pass
            threading.Thread(target=self._reap, args=(active["id"], pid), daemon=True).start()
            return active

    def _reap(self, job_id: str, pid: int | None) -> None:
        end = time.monotonic() + CANCEL_GRACE_S
        while time.monotonic() < end:
            if not self._running(job_id, {"pid": pid}):
                break
            time.sleep(0.2)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError, TypeError):
                pass
        child = self.children.get(job_id)
        if child is not None:
            child.wait()
        self.status(job_id)  # (records the end of a process that could not say so)

    def shutdown(self) -> None:
        """Cancel a job this server started (the server is stopping)."""
        active = self.active()
        if active is not None and active["id"] in self.children:
            self.cancel()
            self._reap(active["id"], active.get("pid"))


__all__ = ["Busy", "Jobs"]
