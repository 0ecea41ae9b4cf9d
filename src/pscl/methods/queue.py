"""The FIFO of normalised keys that MoCo, DenseCL and PSCL-MoCo contrast against, and its sizing rule.

A queue longer than the keys a run pushes holds mostly its random initial vectors: a 200-step run
of 16 crops pushes 3200 keys, so a 4096 queue never holds a real key from more than 80 % of its
slots. By default (``size=0``) a queue is therefore sized so that the run refills it
:data:`REFILLS` times over, capped at the method's maximum (4096 for keys, 1024 for prototypes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pscl.distributed import gather_no_grad
from pscl.runtime import trainer_devices

REFILLS = 8  # the run pushes at least this many queues' worth of keys (the paper's queue: 504)


def queue_length(requested: int, steps: int, keys_per_step: int, maximum: int) -> int:
    """The queue length a run uses: ``requested`` if > 0, else ``steps * keys_per_step / REFILLS``
    clipped to [keys_per_step, maximum].

    >>> queue_length(0, 200, 16, 4096), queue_length(0, 20000, 16, 4096), queue_length(32, 200, 16, 4096)
    (400, 4096, 32)
    """
    if requested < 0:
        raise ValueError(f"queue size must be >= 0 (0 = sized to the run), got {requested}")
    if requested:
        return requested
    return int(min(maximum, max(keys_per_step, steps * keys_per_step // REFILLS)))


def run_queue_length(requested: int, config, maximum: int, keys_per_image: int = 1) -> int:
    """:func:`queue_length` for a pretraining config: the run pushes ``keys_per_image`` keys per
    crop of the global batch (every process) each step."""
    per_step = config.batch_size * trainer_devices(config.devices) * keys_per_image
    return queue_length(requested, config.steps, per_step, maximum)


class KeyQueue(torch.nn.Module):
    """A FIFO of normalised keys (K, D) with its pointer, both buffers (saved in checkpoints)."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def push(self, keys: torch.Tensor, gathered: bool = False) -> torch.Tensor:
        """Enqueue the keys of every process (the newest ``size`` if more); return their slots.
        ``gathered``: the keys already come from every process."""
        keys = keys if gathered else gather_no_grad(keys)
        n, size = keys.shape[0], self.keys.shape[0]
        idx = ((self.ptr + torch.arange(n, device=keys.device)) % size)[-size:]
        self.keys[idx] = F.normalize(keys[-size:].float(), dim=1).to(self.keys.dtype)
        self.ptr.fill_(int((self.ptr + n) % size))
        return idx
