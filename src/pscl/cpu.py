"""The machine's fast path: which precision a run trains and predicts in, read from the CPU's flags.

bf16 autocast pays only where the CPU multiplies bf16 natively (Intel AMX tiles, AVX512-BF16 on
AMD EPYC and Intel Xeon); elsewhere PyTorch emulates it and it runs several times slower than
fp32. ``precision="auto"`` therefore means bf16-mixed on such CPUs and on GPUs, fp32 otherwise.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's entry of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    entry: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        entry[key.strip()] = value.strip()
    return entry


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    return set(_cpuinfo().get("flags", "").split())


def cpu_model() -> str:
    """The CPU's model name, e.g. 'AMD EPYC 9R14' (platform's processor string elsewhere)."""
    return _cpuinfo().get("model name") or platform.processor() or "unknown CPU"


def cpu_summary() -> dict:
    """Model, core count and the flags that decide the fast path, for speed tables and provenance."""
    import os
    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "fma")
    return {"model": cpu_model(), "cores": os.cpu_count(), "flags": [f for f in wanted if f in flags],
            "bf16_native": bf16_native(flags)}


def bf16_native(flags: set[str] | None = None) -> bool:
    """True if the CPU multiplies bf16 in hardware (AMX or AVX512-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return any(f in flags for f in BF16_FLAGS)


def on_gpu(accelerator: str) -> bool:
    """Whether a run with this ``accelerator`` setting lands on a CUDA GPU."""
    import torch
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str = "auto", flags: set[str] | None = None) -> str:
    """The Lightning precision for a setting: ``auto`` becomes bf16-mixed on a GPU that has bf16 and
    on a CPU with native bf16, 32-true elsewhere; any other setting is checked and kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if on_gpu(accelerator):
        import torch
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if bf16_native(flags) else "32-true"


def fast_layout(module, channels_last: bool = True):
    """``module`` in the memory format its convolutions run fastest in on CPU: channels_last (NHWC),
    which oneDNN's convolutions take without reordering; returned for chaining. Inputs need no
    conversion: a convolution with channels_last weights returns channels_last output, and the
    U-Net's grey input has one channel, where both formats are the same."""
    import torch
    return module.to(memory_format=torch.channels_last) if channels_last else module
