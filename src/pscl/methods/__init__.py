"""Pretraining methods, one file each over :mod:`pscl.methods.base`."""
from __future__ import annotations

from pscl.methods.base import PretrainConfig, PretrainMethod
from pscl.profiles import method_options, profile_settings
from pscl.methods.byol import BYOL
from pscl.methods.densecl import DenseCL
from pscl.methods.moco import MoCo
from pscl.methods.pscl_moco import PSCLMoCo
from pscl.methods.pscl_simclr import PSCLSimCLR
from pscl.methods.simclr import SimCLR

METHODS: dict[str, type[PretrainMethod]] = {"simclr": SimCLR, "moco": MoCo, "byol": BYOL, "densecl": DenseCL,
                                            "pscl-simclr": PSCLSimCLR, "pscl-moco": PSCLMoCo}
GUIDED = ("pscl-simclr", "pscl-moco")  # need annotated images: pretrained per round


def build_method(config: PretrainConfig) -> PretrainMethod:
    """The method named by ``config.method``; an unknown name lists the choices."""
    if config.method not in METHODS:
        raise ValueError(f"unknown method {config.method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[config.method](config)


def pretrain_config(profile: str | None = None, **overrides) -> PretrainConfig:
    """A PretrainConfig from a named profile's budget, with explicit overrides on top."""
    method = overrides.get("method", "simclr")
    options = {**method_options(profile, method), **overrides.pop("options", {})}
    return PretrainConfig(**{**profile_settings(profile, "pretrain"), **overrides, "options": options})


__all__ = ["GUIDED", "METHODS", "PretrainConfig", "PretrainMethod", "build_method", "pretrain_config"]
