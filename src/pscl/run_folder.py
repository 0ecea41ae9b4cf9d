"""A run folder: the one owner of the files a training run leaves, and of the rules for reusing it.

Layout::

    RUN/config.json              the full config of the run (written once its inputs are checked)
    RUN/model.pt                 the selected U-Net (pscl.checkpoints); its presence means "finished"
    RUN/forest.pkl               the random forest's model file (pscl.train.forest), likewise
    RUN/checkpoints/last.ckpt    Lightning's resume point; best.ckpt: best on val (or on the held-out annotation);
                                 pre-semi.ckpt: before self-training; guard.json: the guard's decision;
                                 semi-last.ckpt: a self-training phase rolled back (pscl.train.guard)
    RUN/logs/metrics.csv         the log; logs-resumed-<N>/metrics.csv: one per resumed session
    RUN/seed<S>/                 a member run of a several-seed fine-tuning
    RUN/wall.json                wall-clock seconds (the bench)
    RUN/eval_<dataset>_<split>.json

Reuse rules (:meth:`RunFolder.prepare`): a finished run is never overwritten unless asked
(``overwrite``); an unfinished one is continued with ``resume`` or replaced with ``overwrite``;
``resume`` refuses a run recorded with other settings than those asked now.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from pscl.errors import DataError
from pscl.files import write_text
from pscl.lock import folder_lock

CONFIG_FILE = "config.json"
MODEL_FILE = "model.pt"
FOREST_FILE = "forest.pkl"
WALL_FILE = "wall.json"
CHECKPOINTS = "checkpoints"
LAST, BEST = "last", "best"  # the checkpoints' names (Lightning adds .ckpt)
LOGS = "logs"

# run-time choices, paths and what a run fills in from the data: not settings of the run
NOT_SETTINGS = frozenset({"progress", "init", "dataset", "accelerator", "devices", "jobs", "annotated", "classes",
                          "geometry"})
# settings whose default changed after runs that lack them were recorded: the value those runs used
LEGACY_DEFAULTS = {"photometric": 0.0, "semi_guard": False}


@dataclass(frozen=True)
class RunFolder:
    """The files of one run (see the module doc)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    def __fspath__(self) -> str:
        """A RunFolder is a path-like: every stage that takes a run folder's path takes the folder."""
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def forest_file(self) -> Path:
        return self.path / FOREST_FILE

    @property
    def wall_file(self) -> Path:
        return self.path / WALL_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / f"{LAST}.ckpt"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / f"{BEST}.ckpt"

    @property
    def pre_semi_checkpoint(self) -> Path:
        """The model at the end of a semi-supervised run's supervised-only phase (pscl.train.guard)."""
        return self.checkpoints / "pre-semi.ckpt"

    @property
    def semi_last_checkpoint(self) -> Path:
        """The end of a rolled-back self-training phase (its ``last.ckpt``, set aside by pscl.train.guard)."""
        return self.checkpoints / "semi-last.ckpt"

    @property
    def guard_record(self) -> Path:
        """Written when a guarded run's guard decides: its scores and whether the run rolled back (pscl.train.guard)."""
        return self.checkpoints / "guard.json"

    def log_name(self, resuming: bool) -> str:
        """The log folder of a training session: ``logs``, or a new ``logs-resumed-<N>`` for a resumed one
        (Lightning's CSV logger would wipe the earlier log)."""
        if not resuming:
            return LOGS
        return f"{LOGS}-resumed-{len(list(self.path.glob(f'{LOGS}-resumed-*'))) + 1}"

    def member(self, seed: int) -> "RunFolder":
        """The run of seed ``seed`` in a several-seed fine-tuning."""
        return RunFolder(self.path / f"seed{seed}")

    def lock(self):
        """Hold the folder for this process while the ``with`` block runs (:func:`pscl.lock.folder_lock`):
        a second process on the same folder is refused, naming this one."""
        return folder_lock(self.path)

    def eval_file(self, dataset: str, split: str) -> Path:
        return self.path / f"eval_{dataset}_{split}.json"

    @property
    def finished(self) -> bool:
        return self.model_file.exists() or self.forest_file.exists()

    @property
    def resumable(self) -> bool:
        return self.last_checkpoint.exists()

    def read_config(self) -> dict | None:
        """The recorded config, or None where the run has none yet."""
        if not self.config_file.exists():
            return None
        try:
            return json.loads(self.config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{self.config_file}: unreadable run config ({exc})") from exc

    def write_config(self, config: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_text(self.config_file, json.dumps(config, indent=1))

    def wall_seconds(self) -> float:
        return float(json.loads(self.wall_file.read_text())["seconds"]) if self.wall_file.exists() else 0.0

    def write_wall(self, seconds: float) -> None:
        write_text(self.wall_file, json.dumps({"seconds": seconds}))

    def check_settings(self, expected, ignore: tuple[str, ...] = ()) -> None:
        """Refuse a run recorded with other settings than ``expected`` (a config dataclass); a run
        with no config yet passes. See :func:`check_recorded`."""
        recorded = self.read_config()
        if recorded is not None:
            check_recorded(self.config_file, recorded, expected, ignore)

    def prepare(self, expected=None, resume: bool = False, overwrite: bool = False,
                ignore: tuple[str, ...] = ()) -> bool:
        """Make the folder ready for a run; True where it continues from :attr:`last_checkpoint`.

        ``--out`` that is a file, a finished run without ``overwrite`` or ``resume``, and an
        unfinished one without either are refused with what to do; ``resume`` checks the recorded
        settings against ``expected`` (all but ``steps``, which may grow: a run may be extended, never
        shortened); ``overwrite`` deletes the run's files (and only those). Call it holding :meth:`lock`.
        """
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"{self.path}: --out is a file, not a run folder")
        if overwrite:
            self.clear()
            return False
        recorded = self.read_config()
        if recorded is None and not self.finished:
            return False
        if not resume:
            state = "a finished run" if self.finished else "an unfinished run (--resume continues it)"
            raise DataError(f"{self.path}: holds {state}; pass --overwrite to replace it, or choose another --out")
        if expected is not None:  # more steps than recorded: the run is extended
            self.check_settings(expected, (*ignore, "steps"))
            recorded_steps, steps = (recorded or {}).get("steps"), getattr(expected, "steps", None)
            if recorded_steps is not None and steps is not None and steps < recorded_steps:
                raise DataError(f"{self.path}: the run there was started for {recorded_steps} steps; --resume "
                                f"continues or extends it (--steps {recorded_steps} or more), it cannot shorten it "
                                f"to {steps}; choose another --out, or --overwrite to redo it")
        return self.resumable

    def finished_with(self, steps: int) -> bool:
        """Whether the run is finished at ``steps`` steps (then resuming it has nothing to do)."""
        return self.finished and (self.read_config() or {}).get("steps") == steps

    def clear(self) -> None:
        """Delete the files a run writes (see the module doc); anything else in the folder stays."""
        if not self.path.is_dir():
            return
        for name in (CONFIG_FILE, MODEL_FILE, FOREST_FILE, WALL_FILE):
            (self.path / name).unlink(missing_ok=True)
        for path in [self.checkpoints, *self.path.glob("logs*")]:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        for path in self.path.glob("eval_*.json"):
            path.unlink()


def output_file(out: str | Path, name: str) -> Path:
    """Where a command writes its JSON result: ``out`` is a folder, as in every command (``name``
    inside it), unless it ends in ``.json``, which is the file itself."""
    out = Path(out)
    return out if out.suffix == ".json" else out / name


def check_recorded(path: Path, recorded: dict, expected, ignore: tuple[str, ...] = ()) -> None:
    """Refuse to reuse (or resume) a run or result recorded with other settings than ``expected``
    (a config dataclass), so that one table never mixes two budgets. Settings the record lacks
    (added to the code after it was made) and those in ``ignore`` are not compared, except those in
    ``LEGACY_DEFAULTS``, which compare as the value such records were made with."""
    wanted = json.loads(json.dumps(asdict(expected), default=list))
    recorded = {**{k: v for k, v in LEGACY_DEFAULTS.items() if k in wanted}, **recorded}
    if "precision" in wanted:  # recorded resolved ('auto' -> what ran), so compare what would run now
        from pscl.cpu import resolve_precision
        wanted["precision"] = resolve_precision(wanted["precision"], wanted.get("accelerator", "auto"))
    differing = {key: (recorded[key], value) for key, value in wanted.items()
                 if key in recorded and key not in NOT_SETTINGS and key not in ignore and recorded[key] != value}
    if differing:
        details = "; ".join(f"{key} {old!r} there, {new!r} now" for key, (old, new) in differing.items())
        raise DataError(f"{path}: made with other settings than asked now ({details}); "
                        "choose another --out, or --overwrite to redo it")
