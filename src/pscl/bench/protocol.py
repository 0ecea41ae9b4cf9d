"""`pscl bench run`: the paper's protocol on a dataset folder, resumable and cached.

For every method and round: (pretrain,) train on the round's annotated image(s) (a
:class:`~pscl.bench.learners.Learner`), evaluate on test. Every (method, round) result lands in
``OUT/results/<method folder>/round<R>.json`` as soon as it exists; a rerun skips what is done, and
a killed fine-tune resumes from its last checkpoint. A cached result or run recorded with other
settings than the bench would use now is refused, by file and setting, rather than mixed into the
same table. ``results.json`` and ``report.md`` are rebuilt after each result, ``figure.png`` at the
end (:mod:`pscl.bench.tables`, :mod:`pscl.bench.figure`).

Methods (:mod:`pscl.bench.spec`): ``forest`` (random forest on filter features), ``scratch``
(random init), ``full`` (scratch on the whole train split: the upper reference; one "round" since
it does not depend on the draw), and the pretraining methods of :mod:`pscl.methods` (label-free
ones pretrained once per dataset and profile, PSCL once per round, in ``OUT/pretrain/<method>``,
then fine-tuned per round with the split learning rates).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from pscl.bench.figure import figure
from pscl.bench.learners import learner_for
from pscl.bench.tables import collect
from pscl.bench.layout import BenchFolder
from pscl.bench.spec import METHODS, Method, is_full
from pscl.data.folders import load_dataset
from pscl.errors import DataError
from pscl.files import check_writable, write_text
from pscl.lock import FolderInUse, wait_until_free
from pscl.methods import GUIDED, PretrainConfig
from pscl.profiles import method_options, profile_settings
from pscl.provenance import provenance
from pscl.run_folder import RunFolder, check_recorded

_SCORES = ("dice_fg", "dice_all", "miou", "acc")


def _pretrained(data: Path, spec: str, profile: str, out: Path, seed: int, progress: bool, shots: int,
                round_index: int, tag: str, stems: list[str] | None = None) -> tuple[Path | None, float]:
    """The pretraining run of a method (made, or resumed, if missing) and its wall time.

    Label-free methods are pretrained once; guided ones (PSCL) once per draw of annotated images
    (``tag``: "round<R>" or "suggest"), since the annotated image guides them.
    """
    config = pretraining_config(spec, profile, seed, shots, round_index, stems, progress)
    if config is None:
        return None, 0.0
    run = BenchFolder(out).pretraining(spec, tag)
    folder = RunFolder(run)
    # a label-free pretraining serves every round and shot count
    folder.check_settings(config, () if config.method in GUIDED else ("shots", "round", "annotated_in_batch"))
    _check_method_options(folder, config)
    from pscl.train.pretrain import pretrain
    while not folder.model_file.exists():
        t0 = time.time()
        try:  # a label-free pretraining is shared: another bench process may be making it
            pretrain(data, run, config, resume=True)
        except FolderInUse:
            wait_until_free(run)
            continue
        folder.write_wall(time.time() - t0)
    return run, folder.wall_seconds()


def pretraining_config(spec: str, profile: str, seed: int, shots: int = 1, round_index: int = 0,
                       stems: list[str] | None = None, progress: bool = False) -> PretrainConfig | None:
    """The pretraining a bench method makes (None for scratch, full and forest). A variant's ``seed``
    (``pscl-simclr:seed=1``) overrides the bench seed for the pretraining only: the fine-tuning keeps the
    bench seed unless ``ft.seed`` says otherwise, so the two sources of noise can be measured apart."""
    method = Method.parse(spec)
    if not method.pretrains:
        return None
    settings = {"seed": seed, **profile_settings(profile, "pretrain"), **method.pretrain}
    return PretrainConfig(method=method.name, progress=progress, shots=shots, round=round_index,
                          annotated=list(stems or []) if method.name in GUIDED else [],
                          options={**method_options(profile, method.name), **method.options}, **settings)


def _check_method_options(folder: RunFolder, config) -> None:
    """Refuse a pretraining whose recorded method options (as resolved for its run, e.g. queue sizes)
    differ from what this bench would resolve now."""
    saved = folder.read_config()
    if saved is None:
        return
    from pscl.methods import METHODS as BUILDERS
    recorded = saved.get("method_options", {})
    config = copy.copy(config)
    if config.method in GUIDED and not config.classes:
        config.classes = ["?"] * len(saved.get("classes") or [1])
    wanted = json.loads(json.dumps(asdict(BUILDERS[config.method].hparams_for(config)), default=list))
    differing = {k: (recorded[k], v) for k, v in wanted.items() if k in recorded and recorded[k] != v}
    if differing:
        details = "; ".join(f"{k} {old!r} there, {new!r} now" for k, (old, new) in differing.items())
        raise DataError(f"{folder.config_file}: pretrained with other method options than this bench runs "
                        f"({details}); bench into another --out, or delete it to redo it")


def method_config(spec: str, round_index: int, shots: int, profile: str, seed: int,
                  stems: list[str] | None = None, progress: bool = False, init: Path | None = None):
    """The config the bench trains ``spec`` with on one draw (fine-tuning, or the forest's)."""
    method = Method.parse(spec)
    return learner_for(method.name).config(method.finetune, round_index, shots, profile, seed, stems, progress, init)


def _run_one(data: Path, spec: str, round_index: int, shots: int, profile: str, out: Path, seed: int,
             progress: bool, tag: str | None = None, stems: list[str] | None = None) -> dict:
    """Train and evaluate one method on one draw of annotated images: the round's (``stems`` None)
    or explicit ``stems`` under the name ``tag``."""
    tag = tag or f"round{round_index}"
    run, method = BenchFolder(out).run(spec, tag), Method.parse(spec)
    learner = learner_for(method.name)
    init, pretrain_s = _pretrained(data, spec, profile, out, seed, progress, shots, round_index, tag, stems)
    config = method_config(spec, round_index, shots, profile, seed, stems, progress, init)
    evaluation = method.evaluation
    t0 = time.time()
    learner.train(data, run, config)
    t1 = time.time()
    scores = learner.evaluate(run, data, "test", **evaluation)
    return {"method": spec, "round": round_index if stems is None else "suggest", "shots": shots, "profile": profile,
            "seed": seed, "annotated": scores["config"]["annotated"], **{k: scores[k] for k in _SCORES},
            "per_class": scores["per_class"], **learner.selection(run), "config": scores["config"],
            "evaluation": evaluation,
            "wall_s": {"pretrain": pretrain_s, "finetune": t1 - t0, "evaluate": time.time() - t1}}


def suggested_stems(data: Path, out: Path, shots: int, profile: str, seed: int, progress: bool) -> list[str]:
    """The image(s) `pscl suggest` picks (a joint set of ``shots``), with the bench's SimCLR
    pretraining as the label-free feature extractor; cached in ``OUT/suggest`` while its
    settings are those of the current code."""
    from pscl.studies.suggest import SuggestConfig, suggest

    config = SuggestConfig(k=shots, seed=seed)
    cached = BenchFolder(out).suggest / "suggestions.json"
    if cached.exists():
        saved = json.loads(cached.read_text())
        if all(saved["config"].get(k) == v for k, v in asdict(config).items() if k != "init"):
            return saved["chosen"]
    init, _ = _pretrained(data, "simclr", profile, out, seed, progress, shots, 0, "round0")
    config.init = str(init)
    return suggest(data, BenchFolder(out).suggest, config)["chosen"]


def run_bench(data: str | Path, out: str | Path, methods: list[str] = list(METHODS), shots: int = 1,
              rounds: int = 5, profile: str = "quick", seed: int = 0, progress: bool = False,
              log: Callable[[str], None] = print, command: str = "", pick: str = "random",
              only_rounds: list[int] | None = None) -> dict:
    """Run (or resume) the protocol; return and write ``results.json`` and ``report.md``.

    ``only_rounds`` runs just these of the ``rounds`` (and not the suggested pick): two processes
    given disjoint sets fill one bench folder side by side, one core each. Label-free pretrainings are
    shared by every round: one process makes each, another that needs it waits for it.

    ``pick="suggest"`` also fine-tunes every method on the image(s) `pscl suggest` picks
    (``results/<method>/suggest.json``), reported beside the random rounds.
    """
    if pick not in ("random", "suggest"):
        raise ValueError(f"pick must be 'random' or 'suggest', got {pick!r}")
    if only_rounds is not None and not set(only_rounds) <= set(range(rounds)):
        raise ValueError(f"only_rounds {sorted(only_rounds)} must lie in 0..{rounds - 1} (rounds {rounds})")
    data, out = Path(data), Path(out)
    for m in methods:
        Method.parse(m)  # unknown names and malformed variants fail before any work
    ds = load_dataset(data)
    check_writable(BenchFolder(out).results_json)
    report = lambda: collect(out, ds.name, ds.classes, shots, profile, command)  # noqa: E731
    # round-major, so that an interrupted bench already compares every method on its first rounds
    for r in (r for r in range(rounds) if only_rounds is None or r in only_rounds):
        for method in methods:
            if is_full(method) and r > 0:  # trained on the whole train split: one run
                continue
            path = BenchFolder(out).result(method, f"round{r}")
            if path.exists():
                check_recorded(path, json.loads(path.read_text())["config"],
                               method_config(method, r, shots, profile, seed))
                log(f"[skip] {method} round {r}: done")
                continue
            log(f"[run ] {method} round {r}")
            result = {**_run_one(data, method, r, shots, profile, out, seed, progress), **provenance()}
            write_text(path, json.dumps(result, indent=1, default=float))
            log(f"       dice_fg {result['dice_fg']:.4f}  ({result['wall_s']['finetune']:.0f} s)")
            report()  # partial report
    if pick == "suggest" and only_rounds is None:
        stems = suggested_stems(data, out, shots, profile, seed, progress)
        # runs are named by the picked images, so a pick that changes (new suggest settings) never
        # resumes or reuses the runs of the old one
        tag = "suggest-" + "+".join(stems)
        for method in (m for m in methods if not is_full(m)):
            path = BenchFolder(out).result(method, "suggest")
            cached = json.loads(path.read_text()) if path.exists() else None
            if cached is not None and cached["annotated"] == stems:
                check_recorded(path, cached["config"], method_config(method, 0, shots, profile, seed, stems))
                continue
            log(f"[run ] {method} on the suggested image(s) {stems}")
            result = {**_run_one(data, method, 0, shots, profile, out, seed, progress, tag, stems), **provenance()}
            write_text(path, json.dumps(result, indent=1, default=float))
            log(f"       dice_fg {result['dice_fg']:.4f}")
            report()
    summary = report()
    figure(out, ds, summary)
    return summary


def _as_written(budget: dict | None) -> dict | None:
    """A budget read back from JSON as the profile holds it (widths as tuples), so the report reads the same."""
    if budget is None:
        return None
    return {stage: {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
            for stage, settings in budget.items()}


def rebuild_report(data: str | Path, out: str | Path) -> dict:
    """Rebuild ``results.json``, ``report.md`` and ``figure.png`` from the cached results in OUT,
    running nothing (after a killed run, or when the report itself has changed). The command,
    shots, profile and its budget stay those recorded in ``OUT/results.json`` (a profile changed since
    does not rewrite what the results were made with)."""
    data, out = Path(data), Path(out)
    if not BenchFolder(out).results_json.exists():
        raise DataError(f"{out}: no results.json to rebuild a report from (run the bench first)")
    recorded = json.loads(BenchFolder(out).results_json.read_text())
    ds = load_dataset(data)
    summary = collect(out, ds.name, ds.classes, recorded["shots"], recorded["profile"], recorded["command"],
                      _as_written(recorded.get("profile_settings")))
    figure(out, ds, summary)
    return summary
