"""Where and how a run executes (accelerator, devices, precision, seed): the settings every training
config shares, checked before anything is written."""
from __future__ import annotations

import math
from dataclasses import dataclass


# what Lightning runs pscl on: CPUs and CUDA GPUs (mps, tpu and the rest are not tested, so not offered)
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


@dataclass
class RuntimeConfig:
    """Where and how a run executes; shared by the fine-tuning and pretraining configs."""

    seed: int = 0
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "auto"  # pscl.cpu.resolve_precision: bf16-mixed where the hardware has bf16, else fp32
    progress: bool = True

    def check_runtime(self) -> None:
        """Refuse, naming the option, an accelerator pscl does not run on, a device count that is not
        a positive number (or auto), a learning rate that is not a positive finite number."""
        if self.accelerator not in ACCELERATORS:
            raise ValueError(f"--accelerator must be one of {', '.join(ACCELERATORS)}, got {self.accelerator!r}")
        devices = self.devices
        if not (devices == "auto" or (isinstance(devices, int) and devices >= 1)
                or (isinstance(devices, str) and devices.isdigit() and int(devices) >= 1)):
            raise ValueError(f"--devices must be a number of devices >= 1 (or auto), got {devices!r}")
        if hasattr(self, "lr") and not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"--lr must be a positive number, got {self.lr!r}")

    def resolve_runtime(self) -> None:
        """Replace ``precision='auto'`` by what this machine runs, so the saved config says what was used."""
        from pscl.cpu import resolve_precision
        if self.accelerator in ("gpu", "cuda"):
            import torch
            if not torch.cuda.is_available():
                raise ValueError(f"--accelerator {self.accelerator}: no CUDA GPU is visible on this machine; "
                                 "use --accelerator cpu (or auto)")
        self.precision = resolve_precision(self.precision, self.accelerator)

    def check_positive(self, *names: str) -> None:
        """Raise ValueError naming the first of ``names`` that is below 1."""
        for name in names:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def check_range(self, name: str, low: float, high: float = math.inf, ends: str = "[]") -> None:
        """Raise ValueError naming ``name`` when it lies outside the interval; ``ends`` '(' or ')' opens an end."""
        value = getattr(self, name)
        if not ((value > low if ends[0] == "(" else value >= low) and (value < high if ends[1] == ")" else value <= high)):
            raise ValueError(f"{name} must lie in {ends[0]}{low:g}, {high:g}{ends[1]}, got {value!r}")


def trainer_devices(devices: int | str) -> int:
    """How many processes a ``devices`` setting asks for (1 for 'auto' or a single device)."""
    if isinstance(devices, int):
        return devices
    if isinstance(devices, str) and devices.isdigit():
        return int(devices)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    return 1
