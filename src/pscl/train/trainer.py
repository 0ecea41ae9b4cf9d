"""The Lightning set-up shared by fine-tuning and pretraining: one trainer recipe, one fit call.

Runs are budgeted in optimiser steps. A run is one endless Lightning epoch over a step-keyed
crop stream (:class:`pscl.data.crops.StreamSampler`); every ``every`` steps the run validates (when
it has a val split) and then saves its resume point, so a resumed run continues exactly where the
straight run would be, with the same best-so-far record.
"""
from __future__ import annotations

import logging
import os
import signal
import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from pscl.run_folder import BEST, LAST, RunFolder


class StepHook(Callback):
    """Calls ``hook(step, total, module)`` after every optimiser step (a progress display, a preview
    of the model being trained); it must leave the module and the random streams as it found them."""

    def __init__(self, hook):
        self.hook = hook

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero:
            self.hook(trainer.global_step, trainer.max_steps, module)


class CtrlC(Callback):
    """Makes a Ctrl-C (SIGINT) during :func:`fit` stop the run even if the KeyboardInterrupt it raises is lost on
    its way (raised while Python runs a finaliser, which ignores exceptions): :meth:`handler` remembers the signal
    and the next step's end raises it again."""

    def __init__(self):
        self.pressed = False

    def handler(self, signum, frame) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.pressed:
            raise KeyboardInterrupt


class RandomState(Callback):
    """Saves the global random streams (torch, CUDA, numpy, Python) in every checkpoint and restores
    them on resume: augmentations drawn in the modules (views, photometric effects) then continue as
    in the straight run. They are restored when training starts, after the loaders' iterators are made
    (each draws a seed), as they were when the checkpoint was saved. (Under DDP the checkpoint holds
    process 0's streams.)"""

    def __init__(self):
        self.pending: dict | None = None

    def state_dict(self) -> dict:
        import random

        import numpy as np
        import torch
        name, keys, position, has_gauss, gauss = np.random.get_state()
        # (tensors and plain values only: Lightning reads checkpoints with torch.load(weights_only=True))
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)]}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.pending = state

    def on_train_start(self, trainer, module) -> None:
        if self.pending is not None:
            self._restore(self.pending)
            self.pending = None

    @staticmethod
    def _restore(state: dict) -> None:
        import random

        import numpy as np
        import torch
        torch.set_rng_state(state["torch"])
        name, keys, position, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class StepsBar(RichProgressBar):
    """Lightning's rich progress bar, counting the run's steps (a run is one endless epoch)."""

    @property
    def total_train_batches(self) -> int:
        return self.trainer.max_steps

    def _get_train_description(self, current_epoch: int) -> str:
        return f"{'steps':{len(self.validation_description)}}"


def quiet_lightning() -> None:
    """Silence Lightning's start-up banners (GPU/TPU availability, tips); warnings still show."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)


class QuietProcesses(Callback):
    """Keeps the processes that ``--devices N`` spawns as quiet as this one: when a spawned process
    unpickles the trainer, this callback silences Lightning's banners and the libraries' warnings
    there (the parent's settings do not reach a spawned process)."""

    def __init__(self):
        self.quiet = True  # (an object without state is unpickled without __setstate__)

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        quiet_lightning()
        logging.getLogger("torch.distributed").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")


def fit(module: L.LightningModule, out: Path, train: DataLoader, steps: int, every: int, *,
        accelerator: str = "auto", devices: int | str = 1, precision: str = "auto", progress: bool = True,
        val: DataLoader | None = None, monitor: str | None = None, resume: bool = False,
        callbacks: list[Callback] | None = None, sync_batchnorm: bool = False, processes: int = 1,
        start_from: Path | None = None, on_step=None) -> L.Trainer:
    """Train ``module`` for ``steps`` optimiser steps, logging to ``out/logs/metrics.csv``.

    With ``resume`` the run continues from its ``last.ckpt``, or, where there is none, from ``start_from``
    (a checkpoint of another phase of the run: its weights, optimiser, step count and random streams).
    ``on_step(step, total, module)`` is called after every step (:class:`StepHook`).

    Checkpoints go to ``out/checkpoints``: ``last.ckpt`` every ``every`` steps, after that step's
    validation (the resume point), and, with ``monitor``, ``best.ckpt`` (maximum of that validation
    metric). The train loaders' :class:`StreamSampler` s are tied to the module's step count.
    """
    quiet_lightning()
    from pscl.cpu import fast_layout, resolve_precision, trains_channels_last
    from pscl.data.crops import StreamSampler
    precision = resolve_precision(precision, accelerator)
    # channels_last where it was measured faster (pscl.cpu): encoder-only training always; through
    # the decoder on AVX-512 CPUs (its backward ran 0.8x in it on an AVX2 EPYC)
    fast_layout(module, getattr(module, "channels_last", False) or trains_channels_last(accelerator))
    for loader in (train.values() if isinstance(train, dict) else [train]):
        if isinstance(loader.sampler, StreamSampler):
            loader.sampler.clock = module
    folder = RunFolder(out)
    ckpt_dir, last = folder.checkpoints, folder.last_checkpoint
    resuming = resume and last.exists()
    start = str(last) if resuming else (str(start_from) if resume and start_from is not None else None)
    log_version = folder.log_name(start is not None)
    ctrl_c = CtrlC()
    cbs = [*(callbacks or []), ctrl_c, RandomState(), QuietProcesses(), *([StepsBar()] if progress else []),
           *([StepHook(on_step)] if on_step else [])]
    if monitor:  # (before `last`: the resume point then records the best score of its own validation)
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename=BEST, monitor=monitor, mode="max", save_top_k=1,
                                   enable_version_counter=False))
    # with validation, `last` is saved when each validation ends; without, every `every` steps
    cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename=LAST, save_top_k=1, enable_version_counter=False,
                               every_n_train_steps=None if val is not None else every))
    # several processes are spawned from this one (not re-run from the command line, which would meet
    # the run folder this process holds); pretraining leaves parts unused (the classifier; the decoder
    # in global-only methods; the dense heads of ablated scales): DDP must be told
    strategy = "auto"
    if processes > 1:
        strategy = "ddp_spawn_find_unused_parameters_true" if getattr(module, "unused_parameters", True) else "ddp_spawn"
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")  # (C++ warnings of the spawned processes)
    trainer = L.Trainer(accelerator=accelerator, devices=devices, precision=precision, strategy=strategy,
                        max_steps=steps, max_epochs=-1, val_check_interval=every if val is not None else None,
                        check_val_every_n_epoch=None, logger=CSVLogger(out, name="", version=log_version),
                        callbacks=cbs, enable_progress_bar=progress, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=1.0 if val is not None else 0,
                        log_every_n_steps=min(10, every), use_distributed_sampler=False,
                        sync_batchnorm=sync_batchnorm)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*treespec.*")
        warnings.filterwarnings("ignore", ".*no `val_dataloader`.*")
        warnings.filterwarnings("ignore", ".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
        handler = signal.getsignal(signal.SIGINT)
        if handler is signal.default_int_handler:
            signal.signal(signal.SIGINT, ctrl_c.handler)  # (a process started with Ctrl-C ignored keeps ignoring it)
        try:
            trainer.fit(module, train, val, ckpt_path=start)
        except SystemExit:
            # Lightning turns Ctrl-C into exit status 1 after its teardown; it is an interrupt
            if trainer.interrupted:
                raise KeyboardInterrupt from None
            raise
        finally:
            signal.signal(signal.SIGINT, handler)  # (Lightning ignores further Ctrl-C after the first)
    return trainer


def selected_checkpoint(folder, monitor: str) -> tuple[dict, float] | None:
    """(state dict, score) of the run's ``best.ckpt`` (the best ``monitor`` so far, as :func:`fit` saves
    it), or None where no validation has run. Read from the file, so it holds whatever ran the
    training (one process, or DDP processes that ended)."""
    import torch
    path = RunFolder(folder).best_checkpoint
    if not path.is_file():
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    scores = [state.get("best_model_score") for key, state in checkpoint.get("callbacks", {}).items()
              if key.startswith("ModelCheckpoint") and state.get("monitor") == monitor]
    score = next((float(s) for s in scores if s is not None), None)
    return checkpoint["state_dict"], score

