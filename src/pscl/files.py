"""Writing outputs atomically: a reader (or a killed run) never sees a half-written file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from pscl.errors import DataError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it into place.

    Readers never see a half-written file; on error the temporary file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; results are for sharing
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path``, atomically."""
    return atomic_write(path, lambda p: p.write_text(text))


def write_png(path: str | Path, array: np.ndarray) -> Path:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG, atomically."""
    from PIL import Image
    return atomic_write(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


def ensure_folder(folder: str | Path, option: str = "--out") -> bool:
    """Create ``folder`` (and its parents); True where it was created. Refuses, naming the path and
    ``option``, a folder that is a file, lies under a file, loops through symlinks or cannot be written."""
    folder = Path(folder)
    existed = folder.is_dir()
    # (asked afresh, not from ``existed``: another process may make the folder in between)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: {option} is a file, not a folder")
    if folder.is_symlink() and not folder.is_dir():
        raise DataError(f"{folder}: {option} is a symlink that loops or leads nowhere")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _probe(folder)
    except OSError as exc:
        raise DataError(f"{folder}: {option} cannot be written ({exc.strerror or exc})") from None
    return not existed


def check_writable(path: str | Path, option: str = "--out") -> Path:
    """Refuse, before any work, an output file ``path`` that could not be written: a folder in its
    place, a file or a symlink loop on its way, a folder that refuses new files. Writes nothing."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: {option} is a folder; give a file name")
    ancestor = path.parent
    try:
        while not ancestor.exists():
            if ancestor.is_symlink():  # (exists() is False for a loop or a dangling link)
                raise OSError(40, "a symlink that loops or leads nowhere")
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OSError(20, f"{ancestor} is a file, not a folder")
        _probe(ancestor)
    except OSError as exc:
        raise DataError(f"{path}: {option} cannot be written ({exc.strerror or exc})") from None
    return path


def _probe(folder: Path) -> None:
    """Create and delete a file in ``folder`` (OSError where it refuses new files)."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".pscl-write-test-")
    os.close(fd)
    os.unlink(tmp)


def publish_folder(tmp: Path, out: Path) -> Path:
    """Move a folder built in ``tmp`` (a ``tempfile.mkdtemp``, private to its owner) to ``out`` with the
    permissions a plain ``mkdir`` would give it (the umask's)."""
    import os
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    tmp.rename(out)
    return out
