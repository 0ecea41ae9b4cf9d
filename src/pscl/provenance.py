"""Where a figure came from: commit, machine (CPU model and its fast-path flags), date, torch.

Recorded with every benchmark figure and result.
"""
from __future__ import annotations

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path


def provenance() -> dict:
    """Commit (``-dirty`` with uncommitted changes), machine, date and torch version."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                    text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", False
    import torch

    from pscl.cpu import cpu_summary
    cpu = cpu_summary()
    flags = f" ({', '.join(cpu['flags'])})" if cpu["flags"] else ""
    return {"commit": (commit or "unknown") + ("-dirty" if dirty else ""),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": f"{cpu['model']}{flags}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
                       f"{platform.system()}",
            "torch": torch.__version__}
