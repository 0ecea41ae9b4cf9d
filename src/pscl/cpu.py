"""The machine's fast path: precision and memory layout, read from the CPU's flags and vendor.

Measured (``benchmarks/speed/*``), U-Net training and prediction steps:

- bf16 autocast pays where the CPU's oneDNN kernels multiply bf16 fast: Intel AMX tiles
  (``amx_bf16``) and AMD EPYC with AVX512-BF16 (Zen 4: 2.0-2.3x over fp32 channels_last at the
  paper's sizes, 3.15x over fp32 NCHW on a PSCL-SimCLR step; ``benchmarks/speed/epyc-zen4``; Zen 5:
  3.83x, fine-tuning 3.94x; ``benchmarks/speed/epyc-zen5``). An Intel Xeon that shows
  ``avx512_bf16`` but no AMX (tiles hidden by the hypervisor) gained nothing (fine-tuning 1.02x,
  PSCL 0.82x, prediction 0.94-1.06x), and CPUs without native bf16 emulate it, several times slower.
  ``precision="auto"`` therefore means bf16-mixed on GPUs, AMX and AMD AVX512-BF16; fp32 elsewhere.
- channels_last (NHWC) is faster for every convolution on AVX-512 CPUs (Intel Xeon: fine-tuning
  1.24-1.31x, PSCL 1.12x, prediction 1.6-1.7x), but its backward is slower on AVX2-only CPUs
  (AMD Zen 3: fine-tuning 0.79x, PSCL 0.85x; prediction still 1.2-2.1x). Prediction and encoder-only
  pretraining always use it; training through the decoder uses it where ``avx512f`` is present.
"""
from __future__ import annotations

import functools
import platform
from pathlib import Path

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "64-true")


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


def cpu_vendor() -> str:
    """'GenuineIntel', 'AuthenticAMD', ... ('' where unknown)."""
    return _cpuinfo().get("vendor_id", "")


def cpu_summary() -> dict:
    """Model, vendor, core count and the flags that decide the fast path, for speed tables and provenance."""
    import os
    flags = cpu_flags()
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "fma")
    return {"model": cpu_model(), "vendor": cpu_vendor(), "cores": os.cpu_count(),
            "flags": [f for f in wanted if f in flags], "bf16_native": bf16_native(flags),
            "channels_last_training": trains_channels_last("cpu", flags)}


def bf16_native(flags: set[str] | None = None, vendor: str | None = None) -> bool:
    """True if bf16 autocast runs faster than fp32 on this CPU: AMX tiles, or AVX512-BF16 on AMD
    (an Intel Xeon's AVX512-BF16 without AMX was measured no faster; see the module doc)."""
    flags = cpu_flags() if flags is None else flags
    vendor = cpu_vendor() if vendor is None else vendor
    return "amx_bf16" in flags or ("avx512_bf16" in flags and vendor == "AuthenticAMD")


def trains_channels_last(accelerator: str = "cpu", flags: set[str] | None = None) -> bool:
    """Whether training through the decoder runs faster in channels_last here: on CPUs with
    AVX-512 (measured faster), not on AVX2-only CPUs (backward measured slower) nor on GPUs
    (not measured; the modules' own choice stands there)."""
    if on_gpu(accelerator):
        return False
    return "avx512f" in (cpu_flags() if flags is None else flags)


def on_gpu(accelerator: str) -> bool:
    """Whether a run with this ``accelerator`` setting lands on a CUDA GPU."""
    import torch
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def resolve_precision(precision: str, accelerator: str = "auto", flags: set[str] | None = None,
                      vendor: str | None = None) -> str:
    """The Lightning precision for a setting: ``auto`` becomes bf16-mixed on a GPU that has bf16 and
    on a CPU where bf16 is faster (:func:`bf16_native`), 32-true elsewhere; any other setting is
    checked and kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    if on_gpu(accelerator):
        import torch
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if bf16_native(flags, vendor) else "32-true"


def fast_layout(module, channels_last: bool = True):
    """``module`` in the memory format its convolutions run fastest in on CPU: channels_last (NHWC),
    which oneDNN's convolutions take without reordering; returned for chaining. Inputs need no
    conversion: a convolution with channels_last weights returns channels_last output, and the
    U-Net's grey input has one channel, where both formats are the same."""
    import torch
    return module.to(memory_format=torch.channels_last) if channels_last else module
