"""One process per output folder: an advisory lock that names its holder.

Every command that writes a folder (a run, predictions, a report) holds :func:`folder_lock` on it
while it works. A second process asking for the same folder is refused at once with the holder's
process id and command, instead of both writing interleaved files. The lock is an ``flock`` on
``FOLDER/.pscl.lock``: the kernel releases it when its process ends, however it ends (a killed run
never leaves a stale lock behind), and the file is removed on a clean exit.
"""
from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from pscl.errors import DataError
from pscl.files import ensure_folder

try:
    import fcntl
except ImportError:  # not POSIX: no locking (the folder's reuse rules still apply)
    fcntl = None

LOCK_FILE = ".pscl.lock"


class FolderInUse(DataError):
    """The folder is held by another process (the message names it)."""


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as the holder wrote it."""
    try:
        info = json.loads(path.read_text())
        return f"process {info['pid']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextmanager
def folder_lock(folder: str | Path, option: str = "--out"):
    """Hold the folder's lock while the block runs (creating the folder where needed); a folder
    that this call created and that is still empty at the end is removed again."""
    folder = Path(folder)
    created = ensure_folder(folder, option)
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, folder, option)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield folder
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)  # (releases the lock)
        if created:
            try:
                folder.rmdir()  # only when empty: nothing was written
            except OSError:
                pass


def _acquire(fd: int, path: Path, folder: Path, option: str) -> None:
    """Lock ``fd`` (the open lock file ``path``) or refuse naming the holder; then sign it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderInUse(f"{folder}: in use by {_holder(path)}; wait for it to end, "
                            f"or choose another {option}") from None
        # the holder before us may have removed the file between our open and our lock
        if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
            raise FolderInUse(f"{folder}: another process took it just now; try again, or choose another {option}")
    info = {"pid": os.getpid(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(info).encode())


def wait_until_free(folder: str | Path) -> None:
    """Block until no process holds ``folder`` (at once where none does); takes nothing."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # (granted once the holder's exclusive lock is gone)
    finally:
        os.close(fd)
