"""The files of a bench folder, in one place.

Layout::

    OUT/results.json, report.md, figure.png     the aggregate (rebuilt after every result)
    OUT/results/<method>/round<R>.json           one method's result on one round (suggest.json: the pick)
    OUT/runs/<method>/round<R>/                  its fine-tuned run (a RunFolder; not committed)
    OUT/pretrain/<pretraining>/[round<R>/]       the pretraining it starts from: per round when the
                                                 annotation guides it, once when label-free
    OUT/suggest/                                 `pscl suggest`'s pick (``--pick suggest``)

``<method>`` is the spec as a folder name (:func:`pscl.bench.spec.folder_name`); an ``eval.`` variant
uses the runs of the spec without it, and variants that differ only in fine-tuning share a pretraining.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pscl.bench.spec import Method, folder_name, run_name


@dataclass(frozen=True)
class BenchFolder:
    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def results_json(self) -> Path:
        return self.path / "results.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    @property
    def figure(self) -> Path:
        return self.path / "figure.png"

    @property
    def results(self) -> Path:
        return self.path / "results"

    @property
    def suggest(self) -> Path:
        return self.path / "suggest"

    def result(self, spec: str, name: str) -> Path:
        """A method's result of one round (``round<R>``) or of the suggested pick (``suggest``)."""
        return self.results / folder_name(spec) / f"{name}.json"

    def run(self, spec: str, tag: str) -> Path:
        """The fine-tuned run of a method on one draw (``tag``: "round<R>" or "suggest-...")."""
        return self.path / "runs" / folder_name(run_name(spec)) / tag

    def pretraining(self, spec: str, tag: str) -> Path:
        """The pretraining a method fine-tunes from: per draw for guided methods, once for label-free ones."""
        from pscl.methods import GUIDED
        method = Method.parse(spec)
        return self.path / "pretrain" / folder_name(method.pretraining_name) / (tag if method.name in GUIDED else "")
