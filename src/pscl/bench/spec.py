"""The bench's method language: ``NAME[+semi][:key=value...]``, and the folder names it maps to.

``parse_method`` reads a spec into (method, method options, pretraining fields, fine-tuning fields);
``pretraining_name`` names the pretraining a spec shares with its fine-tuning variants;
``folder_name`` is the spec as a portable folder name (no ``:`` or ``/``, which Windows or every
system refuses).
"""
from __future__ import annotations

from dataclasses import fields as dataclass_fields
from pathlib import Path

from pscl.methods import METHODS as PRETRAIN_METHODS

METHODS = ("scratch", "full", *PRETRAIN_METHODS, "forest")
SEMI_SUFFIX = "+semi"


def parse_value(text: str):
    """A variant's value: true/false, an int, a float, or the word itself."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def is_full(spec: str) -> bool:
    """Whether a bench method trains on the whole train split (``full`` and its variants, ``full:ft.steps=3000``):
    one run, made in round 0 and never paired with scratch."""
    return parse_method(spec)[0] == "full"


def parse_method(spec: str) -> tuple[str, dict, dict, dict]:
    """A bench method, optionally a variant: ``NAME[:key=value[:key=value...]]`` -> (NAME,
    method options, pretraining config fields, fine-tuning config fields). Values: numbers,
    true/false, words, or lists with "/" (``scales=0/2``). E.g. the PSCL ablations
    ``pscl-simclr:a=0``, ``pscl-simclr:scales=2``, ``pscl-simclr:sampling=random``,
    ``pscl-simclr:annotated_in_batch=false``; ``pscl-simclr:seed=1`` pretrains with another seed (the fine-tuning
    keeps the bench seed unless ``ft.seed`` is given); keys prefixed ``views.`` change the two views' augmentation
    (``simclr:views.jitter=0``: no brightness/contrast jitter); keys prefixed ``ft.`` change the fine-tuning
    (``simclr:ft.lr_contracting_init=0.001``), which then differs from the other methods' budget:
    the variant's name says so in every table. ``NAME+semi`` (``scratch+semi``,
    ``pscl-simclr+semi:a=0``) fine-tunes semi-supervised (``ft.semi=true``), on the same pretraining.
    Keys prefixed ``eval.`` change only the evaluation (:func:`evaluation_options`) and are skipped here.
    """
    from pscl.methods import PretrainConfig
    from pscl.train.finetune import FinetuneConfig

    evaluation_options(spec)  # malformed eval. keys fail here too
    name, *pairs = spec.split(":")
    semi = name.endswith(SEMI_SUFFIX)  # NAME+semi: semi-supervised fine-tuning (pscl.train.semi) on top
    name = name.removesuffix(SEMI_SUFFIX)
    if semi and name == "forest":
        raise ValueError(f"method {spec!r}: the forest has no semi-supervised fine-tuning")
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    options, fields, finetune_fields = {}, {}, {}
    finetune_keys = {f.name for f in dataclass_fields(FinetuneConfig)}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"method variant {spec!r}: expected key=value, got {pair!r}")
        if key.startswith(EVAL_PREFIX):
            continue
        parsed = [parse_value(t) for t in text.split("/")] if "/" in text else parse_value(text)
        if key.startswith("ft."):
            if key[3:] not in finetune_keys or name == "forest":
                raise ValueError(f"method variant {spec!r}: {key[3:]!r} is not a fine-tuning setting of {name}")
            finetune_fields[key[3:]] = parsed
            continue
        if name not in PRETRAIN_METHODS:
            raise ValueError(f"method variant {spec!r}: only pretraining methods take options")
        if key.startswith(VIEWS_PREFIX):  # the two views' augmentation (pscl.data.views.ViewConfig)
            fields.setdefault("views", {})[_view_key(spec, key)] = parsed
            continue
        (fields if key in PretrainConfig.__dataclass_fields__ else options)[key] = parsed
    if name in PRETRAIN_METHODS and "scales" in options and not isinstance(options["scales"], list):
        options["scales"] = [options["scales"]]
    if semi:
        finetune_fields = {"semi": True, **finetune_fields}
    return name, options, fields, finetune_fields


VIEWS_PREFIX = "views."


def _view_key(spec: str, key: str) -> str:
    """The ViewConfig field a ``views.`` key names (``views.jitter`` -> ``jitter``); unknown ones fail."""
    from pscl.data.views import ViewConfig
    name = key[len(VIEWS_PREFIX):]
    if name not in ViewConfig.__dataclass_fields__:
        raise ValueError(f"method variant {spec!r}: {key!r} is not a view setting "
                         f"(choose from {', '.join(VIEWS_PREFIX + k for k in ViewConfig.__dataclass_fields__)})")
    return name


EVAL_PREFIX = "eval."
EVAL_KEYS = ("tta",)  # pscl.inference.evaluate.evaluate's options a variant may set


def evaluation_options(spec: str) -> dict:
    """The evaluation settings of a spec (``scratch:eval.tta=true`` -> ``{"tta": True}``): the model is
    the one of the spec without them (:func:`run_name`), scored another way."""
    name, *pairs = spec.split(":")
    options = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        if key.startswith(EVAL_PREFIX):
            if key[len(EVAL_PREFIX):] not in EVAL_KEYS or name.removesuffix(SEMI_SUFFIX) == "forest":
                raise ValueError(f"method variant {spec!r}: {key!r} is not an evaluation setting of {name} "
                                 f"(the U-Net's: {', '.join(EVAL_PREFIX + k for k in EVAL_KEYS)})")
            options[key[len(EVAL_PREFIX):]] = parse_value(text)
    return options


def run_name(spec: str) -> str:
    """The spec whose fine-tuned model a method uses: evaluation settings (``eval.`` keys) do not change
    the model, so ``scratch:eval.tta=true`` scores the runs of ``scratch``."""
    head, *parts = spec.split(":")
    return ":".join([head, *(part for part in parts if not part.startswith(EVAL_PREFIX))])


def pretraining_name(spec: str) -> str:
    """The spec of the pretraining a method runs on: fine-tuning settings (``ft.`` keys, ``+semi``)
    do not change the pretraining, so variants that differ only in them share it."""
    head, *parts = run_name(spec).split(":")
    return ":".join([head.removesuffix(SEMI_SUFFIX), *(part for part in parts if not part.startswith("ft."))])


def method_run(out: Path, spec: str, tag: str) -> Path:
    """The folder of a bench method's fine-tuned model on one draw (``tag``: "round<R>" or "suggest-..."):
    ``OUT/runs/<run name>/<tag>``; ``eval.`` variants score the same model (:func:`run_name`)."""
    return Path(out) / "runs" / folder_name(run_name(spec)) / tag


def folder_name(spec: str) -> str:
    """``spec`` as a folder name every file system takes: ``:`` -> ``__``, ``/`` -> ``_``
    (``pscl-simclr:scales=0/2`` -> ``pscl-simclr__scales=0_2``). The result files record the spec."""
    return spec.replace(":", "__").replace("/", "_")


def method_order(spec: str) -> tuple[int, str]:
    """Sort key: the methods in :data:`METHODS` order, variants after their method."""
    order = {m: i for i, m in enumerate(METHODS)}
    return order.get(spec.split(":")[0], len(order)), spec
