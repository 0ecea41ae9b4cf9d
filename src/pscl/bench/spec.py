"""The bench's method language: ``NAME[+semi][:key=value...]``, and the folder names it maps to.

:class:`Method` reads a spec once into what it sets (method options, pretraining, fine-tuning and
evaluation settings) and names the pretraining it shares with its fine-tuning variants;
``folder_name`` is the spec as a portable folder name (no ``:`` or ``/``, which Windows or every
system refuses).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields

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
    one run, made in round 0 and never paired with scratch. Read from the name alone, so the tables of results
    recorded with settings that no longer exist still rebuild."""
    return spec.split(":")[0] == "full"


@dataclass(frozen=True)
class Method:
    """A bench method, read once from its spec ``NAME[+semi][:key=value...]``.

    ``options``: the pretraining method's options; ``pretrain``: PretrainConfig fields (``views`` among
    them); ``finetune``: FinetuneConfig fields (``semi`` for ``+semi``); ``evaluation``: how its model is
    scored (:data:`EVAL_KEYS`). Values: numbers, true/false, words, or lists with "/" (``scales=0/2``).
    E.g. the PSCL ablations ``pscl-simclr:a=0``, ``pscl-simclr:scales=2``, ``pscl-simclr:sampling=random``;
    ``pscl-simclr:seed=1`` pretrains with another seed (the fine-tuning keeps the bench seed unless ``ft.seed``
    is given); ``simclr:views.jitter=0`` changes the views; ``scratch:ft.select=last`` the fine-tuning (which then
    differs from the other methods' budget: the name says so in every table); ``scratch+semi`` fine-tunes
    semi-supervised on the same pretraining; ``scratch:eval.tta=true`` scores scratch's models with TTA.
    """

    spec: str
    name: str
    options: dict = field(default_factory=dict)
    pretrain: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> "Method":
        """Read and check a spec: unknown names, keys and malformed pairs raise ValueError naming it."""
        from pscl.methods import PretrainConfig
        from pscl.train.finetune import FinetuneConfig

        head, *pairs = spec.split(":")
        semi = head.endswith(SEMI_SUFFIX)
        name = head.removesuffix(SEMI_SUFFIX)
        if semi and name == "forest":
            raise ValueError(f"method {spec!r}: the forest has no semi-supervised fine-tuning")
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
        options, fields, finetune_fields, evaluation = {}, {}, {}, {}
        finetune_keys = {f.name for f in dataclass_fields(FinetuneConfig)}
        for pair in pairs:
            key, sep, text = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"method variant {spec!r}: expected key=value, got {pair!r}")
            parsed = [parse_value(t) for t in text.split("/")] if "/" in text else parse_value(text)
            if key.startswith(EVAL_PREFIX):
                if key[len(EVAL_PREFIX):] not in EVAL_KEYS or name == "forest":
                    raise ValueError(f"method variant {spec!r}: {key!r} is not an evaluation setting of {name} "
                                     f"(the U-Net's: {', '.join(EVAL_PREFIX + k for k in EVAL_KEYS)})")
                evaluation[key[len(EVAL_PREFIX):]] = parsed
            elif key.startswith("ft."):
                if key[3:] not in finetune_keys or name == "forest":
                    raise ValueError(f"method variant {spec!r}: {key[3:]!r} is not a fine-tuning setting of {name}")
                finetune_fields[key[3:]] = parsed
            elif name not in PRETRAIN_METHODS:
                raise ValueError(f"method variant {spec!r}: only pretraining methods take options")
            elif key.startswith(VIEWS_PREFIX):  # the two views' augmentation (pscl.data.views.ViewConfig)
                fields.setdefault("views", {})[_view_key(spec, key)] = parsed
            else:
                (fields if key in PretrainConfig.__dataclass_fields__ else options)[key] = parsed
        if name in PRETRAIN_METHODS and "scales" in options and not isinstance(options["scales"], list):
            options["scales"] = [options["scales"]]
        if semi:
            finetune_fields = {"semi": True, **finetune_fields}
        return cls(spec, name, options, fields, finetune_fields, evaluation)

    @property
    def run_name(self) -> str:
        """The spec whose fine-tuned model this method uses: evaluation settings (``eval.`` keys) do not
        change the model, so ``scratch:eval.tta=true`` scores the runs of ``scratch``."""
        return run_name(self.spec)

    @property
    def pretraining_name(self) -> str:
        """The spec of the pretraining it runs on: fine-tuning settings (``ft.`` keys, ``+semi``) do not
        change the pretraining, so variants that differ only in them share it."""
        head, *parts = self.run_name.split(":")
        return ":".join([head.removesuffix(SEMI_SUFFIX), *(part for part in parts if not part.startswith("ft."))])

    @property
    def pretrains(self) -> bool:
        return self.name in PRETRAIN_METHODS


def parse_method(spec: str) -> tuple[str, dict, dict, dict]:
    """(name, method options, pretraining fields, fine-tuning fields) of a spec (:meth:`Method.parse`)."""
    method = Method.parse(spec)
    return method.name, method.options, method.pretrain, method.finetune


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


def run_name(spec: str) -> str:
    """The spec whose fine-tuned model a method uses: evaluation settings (``eval.`` keys) do not change
    the model, so ``scratch:eval.tta=true`` scores the runs of ``scratch``."""
    head, *parts = spec.split(":")
    return ":".join([head, *(part for part in parts if not part.startswith(EVAL_PREFIX))])


def folder_name(spec: str) -> str:
    """``spec`` as a folder name every file system takes: ``:`` -> ``__``, ``/`` -> ``_``
    (``pscl-simclr:scales=0/2`` -> ``pscl-simclr__scales=0_2``). The result files record the spec."""
    return spec.replace(":", "__").replace("/", "_")


def method_order(spec: str) -> tuple[int, str]:
    """Sort key: the methods in :data:`METHODS` order, variants after their method."""
    order = {m: i for i, m in enumerate(METHODS)}
    return order.get(spec.split(":")[0], len(order)), spec
