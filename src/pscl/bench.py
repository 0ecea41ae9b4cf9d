"""`pscl bench`: the paper's protocol on a dataset folder, resumable and cached.

For every method and round: (pretrain,) fine-tune on the round's annotated image(s), evaluate on
test. Every (method, round) result lands in ``OUT/results/<method>/round<R>.json`` as soon as it
exists; a rerun skips what is done, and a killed fine-tune resumes from its last checkpoint. A
cached result or run recorded with other settings than the bench would use now is refused, by
file and setting, rather than mixed into the same table.
``results.json`` and ``report.md`` are rebuilt from those files after each result, and at the end
``figure.png``: Dice (fg) per method over rounds as box plots, and one test image with the ground
truth and every method's prediction side by side (of the round most methods still have models of: round 0 after an uninterrupted run).

Methods: ``forest`` (random forest on filter features, :mod:`pscl.forest`), ``scratch`` (random init), ``full`` (scratch on the whole train split: the upper
reference; one "round" since it does not depend on the draw), and the label-free pretraining
methods of :mod:`pscl.methods` (pretrained once per dataset and profile, stored in
``OUT/pretrain/<method>``, then fine-tuned per round with the split learning rates).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from pscl.checkpoints import read_model_file
from pscl.data.folders import load_dataset
from pscl.data.io import DataError, write_text
from pscl.inference.evaluate import evaluate
from pscl.train.finetune import FinetuneConfig, finetune
from pscl.methods import GUIDED, METHODS as PRETRAIN_METHODS, PretrainConfig
from pscl.train.pretrain import pretrain
from pscl.profiles import method_options, profile_settings
from pscl.provenance import provenance
from pscl.run_folder import FOREST_FILE, RunFolder, check_recorded

METHODS = ("scratch", "full", *PRETRAIN_METHODS, "forest")


SEMI_SUFFIX = "+semi"


def parse_method(spec: str) -> tuple[str, dict, dict, dict]:
    """A bench method, optionally a variant: ``NAME[:key=value[:key=value...]]`` -> (NAME,
    method options, pretraining config fields, fine-tuning config fields). Values: numbers,
    true/false, words, or lists with "/" (``scales=0/2``). E.g. the PSCL ablations
    ``pscl-simclr:a=0``, ``pscl-simclr:scales=2``, ``pscl-simclr:sampling=random``,
    ``pscl-simclr:annotated_in_batch=false``; keys prefixed ``ft.`` change the fine-tuning
    (``simclr:ft.lr_contracting_init=0.001``), which then differs from the other methods' budget:
    the variant's name says so in every table. ``NAME+semi`` (``scratch+semi``,
    ``pscl-simclr+semi:a=0``) fine-tunes semi-supervised (``ft.semi=true``), on the same pretraining.
    """
    from dataclasses import fields as dataclass_fields

    name, *pairs = spec.split(":")
    semi = name.endswith(SEMI_SUFFIX)  # NAME+semi: semi-supervised fine-tuning (pscl.semi) on top
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
        def value(t: str):
            if t.lower() in ("true", "false"):
                return t.lower() == "true"
            for kind in (int, float):
                try:
                    return kind(t)
                except ValueError:
                    pass
            return t
        parsed = [value(t) for t in text.split("/")] if "/" in text else value(text)
        if key.startswith("ft."):
            if key[3:] not in finetune_keys or name == "forest":
                raise ValueError(f"method variant {spec!r}: {key[3:]!r} is not a fine-tuning setting of {name}")
            finetune_fields[key[3:]] = parsed
            continue
        if name not in PRETRAIN_METHODS:
            raise ValueError(f"method variant {spec!r}: only pretraining methods take options")
        (fields if key in PretrainConfig.__dataclass_fields__ else options)[key] = parsed
    if name in PRETRAIN_METHODS and "scales" in options and not isinstance(options["scales"], list):
        options["scales"] = [options["scales"]]
    if semi:
        finetune_fields = {"semi": True, **finetune_fields}
    return name, options, fields, finetune_fields


_SCORES = ("dice_fg", "dice_all", "miou", "acc")


def _pretrained(data: Path, method: str, profile: str, out: Path, seed: int, progress: bool, shots: int,
                round_index: int, tag: str, stems: list[str] | None = None) -> tuple[Path | None, float]:
    """The pretraining run of a method (made, or resumed, if missing) and its wall time.

    Label-free methods are pretrained once; guided ones (PSCL) once per draw of annotated images
    (``tag``: "round<R>" or "suggest"), since the annotated image guides them.
    """
    spec, (method, variant_options, variant_fields, _) = method, parse_method(method)
    if method not in PRETRAIN_METHODS:
        return None, 0.0
    # fine-tuning settings do not change the pretraining: variants that differ only in them share it
    head, *parts = spec.split(":")  # and NAME+semi shares NAME's pretraining
    pretrain_name = ":".join([head.removesuffix(SEMI_SUFFIX), *(part for part in parts if not part.startswith("ft."))])
    run = out / "pretrain" / pretrain_name / (tag if method in GUIDED else "")
    config = PretrainConfig(method=method, seed=seed, progress=progress, shots=shots, round=round_index,
                            annotated=list(stems or []) if method in GUIDED else [],
                            options={**method_options(profile, method), **variant_options},
                            **{**profile_settings(profile, "pretrain"), **variant_fields})
    # a label-free pretraining serves every round and shot count
    _check_run(run, config, ignore=() if method in GUIDED else ("shots", "round", "annotated_in_batch"))
    _check_method_options(run, config)
    folder = RunFolder(run)
    if folder.model_file.exists():
        return run, folder.wall_seconds()
    t0 = time.time()
    pretrain(data, run, config, resume=True)
    wall = time.time() - t0
    folder.write_wall(wall)
    return run, wall


def _check_run(run: Path, config, ignore: tuple[str, ...] = ()) -> None:
    """The recorded settings of a (finished or half-made) run folder, if any, against ``config``."""
    RunFolder(run).check_settings(config, ignore)


def _check_method_options(run: Path, config) -> None:
    """Refuse a pretraining whose recorded method options (as resolved for its run, e.g. queue sizes)
    differ from what this bench would resolve now."""
    folder = RunFolder(run)
    saved = folder.read_config()
    if saved is None:
        return
    from pscl.methods import METHODS
    recorded = saved.get("method_options", {})
    config = copy.copy(config)
    if config.method in GUIDED and not config.classes:
        config.classes = ["?"] * len(saved.get("classes") or [1])
    wanted = json.loads(json.dumps(asdict(METHODS[config.method].hparams_for(config)), default=list))
    differing = {k: (recorded[k], v) for k, v in wanted.items() if k in recorded and recorded[k] != v}
    if differing:
        details = "; ".join(f"{k} {old!r} there, {new!r} now" for k, (old, new) in differing.items())
        raise DataError(f"{folder.config_file}: pretrained with other method options than this bench runs "
                        f"({details}); bench into another --out, or delete it to redo it")


def _config(spec: str, round_index: int, shots: int, profile: str, seed: int, stems: list[str] | None = None,
            progress: bool = False, init: Path | None = None):
    """The fine-tuning (or forest) config the bench runs for ``spec`` on one draw."""
    method, _, _, finetune_fields = parse_method(spec)
    if method == "forest":
        from pscl.forest import ForestConfig
        return ForestConfig(shots=shots, round=round_index, seed=seed, stems=stems)
    settings = {**profile_settings(profile, "finetune"), **finetune_fields}
    return FinetuneConfig(shots=shots, round=round_index, all_train=method == "full", seed=seed, stems=stems,
                          progress=progress, init=str(init) if init else None, **settings)


def _run_one(data: Path, method: str, round_index: int, shots: int, profile: str, out: Path, seed: int,
             progress: bool, tag: str | None = None, stems: list[str] | None = None) -> dict:
    """Fine-tune (or train the forest) and evaluate one method on one draw of annotated images:
    the round's (``stems`` None) or explicit ``stems`` under the name ``tag``."""
    tag = tag or f"round{round_index}"
    run = out / "runs" / method / tag
    spec, method = method, parse_method(method)[0]
    head = {"method": spec, "round": round_index if stems is None else "suggest", "shots": shots, "profile": profile,
            "seed": seed}
    if method == "forest":
        from pscl.forest import evaluate_forest, train_forest
        t0 = time.time()
        train_forest(data, run, _config(method, round_index, shots, profile, seed, stems), overwrite=True)  # seconds
        t1 = time.time()
        scores = evaluate_forest(run, data, split="test")
        return {**head, "annotated": scores["config"]["annotated"], **{k: scores[k] for k in _SCORES},
                "per_class": scores["per_class"], "selected": "n/a", "config": scores["config"],
                "wall_s": {"pretrain": 0.0, "finetune": t1 - t0, "evaluate": time.time() - t1}}
    init, pretrain_s = _pretrained(data, spec, profile, out, seed, progress, shots, round_index, tag, stems)
    config = _config(spec, round_index, shots, profile, seed, stems, progress, init)
    _check_run(run, config)
    t0 = time.time()
    finetune(data, run, config, resume=True)
    t1 = time.time()
    scores = evaluate(run, data, split="test")
    return {**head, "annotated": scores["config"]["annotated"], **{k: scores[k] for k in _SCORES},
            "per_class": scores["per_class"],
            "selected": RunFolder(run).read_config()["select"],
            # the selection criterion: variants of a method are compared on it, never on test
            "val_dice_fg": read_model_file(run).get("val_dice_fg"),
            "config": scores["config"],
            "wall_s": {"pretrain": pretrain_s, "finetune": t1 - t0, "evaluate": time.time() - t1}}


def suggested_stems(data: Path, out: Path, shots: int, profile: str, seed: int, progress: bool) -> list[str]:
    """The image(s) `pscl suggest` picks (a joint set of ``shots``), with the bench's SimCLR
    pretraining as the label-free feature extractor; cached in ``OUT/suggest`` while its
    settings are those of the current code."""
    from pscl.suggest import SuggestConfig, suggest

    config = SuggestConfig(k=shots, seed=seed)
    cached = out / "suggest" / "suggestions.json"
    if cached.exists():
        saved = json.loads(cached.read_text())
        if all(saved["config"].get(k) == v for k, v in asdict(config).items() if k != "init"):
            return saved["chosen"]
    init, _ = _pretrained(data, "simclr", profile, out, seed, progress, shots, 0, "round0")
    config.init = str(init)
    return suggest(data, out / "suggest", config)["chosen"]


def run_bench(data: str | Path, out: str | Path, methods: list[str] = list(METHODS), shots: int = 1,
              rounds: int = 5, profile: str = "quick", seed: int = 0, progress: bool = False,
              log: Callable[[str], None] = print, command: str = "", pick: str = "random") -> dict:
    """Run (or resume) the protocol; return and write ``results.json`` and ``report.md``.

    ``pick="suggest"`` also fine-tunes every method on the image(s) `pscl suggest` picks
    (``results/<method>/suggest.json``), reported beside the random rounds.
    """
    if pick not in ("random", "suggest"):
        raise ValueError(f"pick must be 'random' or 'suggest', got {pick!r}")
    data, out = Path(data), Path(out)
    for m in methods:
        parse_method(m)  # unknown names and malformed variants fail before any work
    ds = load_dataset(data)
    # round-major, so that an interrupted bench already compares every method on its first rounds
    for r in range(rounds):
        for method in methods:
            if method == "full" and r > 0:  # trained on the whole train split: one run
                continue
            path = out / "results" / method / f"round{r}.json"
            if path.exists():
                check_recorded(path, json.loads(path.read_text())["config"], _config(method, r, shots, profile, seed))
                log(f"[skip] {method} round {r}: done")
                continue
            log(f"[run ] {method} round {r}")
            result = {**_run_one(data, method, r, shots, profile, out, seed, progress), **provenance()}
            write_text(path, json.dumps(result, indent=1, default=float))
            log(f"       dice_fg {result['dice_fg']:.4f}  ({result['wall_s']['finetune']:.0f} s)")
            collect(out, ds.name, ds.classes, methods, shots, profile, command)  # partial report
    if pick == "suggest":
        stems = suggested_stems(data, out, shots, profile, seed, progress)
        # runs are named by the picked images, so a pick that changes (new suggest settings) never
        # resumes or reuses the runs of the old one
        tag = "suggest-" + "+".join(stems)
        for method in methods:
            path = out / "results" / method / "suggest.json"
            if method == "full":
                continue
            cached = json.loads(path.read_text()) if path.exists() else None
            if cached is not None and cached["annotated"] == stems:
                check_recorded(path, cached["config"], _config(method, 0, shots, profile, seed, stems))
                continue
            log(f"[run ] {method} on the suggested image(s) {stems}")
            result = {**_run_one(data, method, 0, shots, profile, out, seed, progress, tag, stems),
                      **provenance()}
            write_text(path, json.dumps(result, indent=1, default=float))
            log(f"       dice_fg {result['dice_fg']:.4f}")
            collect(out, ds.name, ds.classes, methods, shots, profile, command)
    summary = collect(out, ds.name, ds.classes, methods, shots, profile, command)
    figure(out, ds, summary)
    return summary


def rebuild_report(data: str | Path, out: str | Path) -> dict:
    """Rebuild ``results.json``, ``report.md`` and ``figure.png`` from the cached results in OUT,
    running nothing (after a killed run, or when the report itself has changed). The command,
    shots and profile stay those recorded in ``OUT/results.json``."""
    data, out = Path(data), Path(out)
    if not (out / "results.json").exists():
        raise DataError(f"{out}: no results.json to rebuild a report from (run the bench first)")
    recorded = json.loads((out / "results.json").read_text())
    ds = load_dataset(data)
    summary = collect(out, ds.name, ds.classes, [], recorded["shots"], recorded["profile"], recorded["command"])
    figure(out, ds, summary)
    return summary


def _model_file(out: Path, method: str, round_index: int) -> Path:
    folder = RunFolder(out / "runs" / method / f"round{round_index}")
    return folder.forest_file if method.split(":")[0] == "forest" else folder.model_file


def _prediction(out: Path, method: str, round_index: int, image: np.ndarray) -> np.ndarray | None:
    path = _model_file(out, method, round_index)
    if not path.exists():
        return None
    if path.name == FOREST_FILE:
        import pickle

        from pscl.forest import segment_forest
        return segment_forest(pickle.loads(path.read_bytes())["forest"], image)
    from pscl.checkpoints import load_model
    from pscl.inference.predict import segment
    return segment(load_model(path.parent)[0], image).labels


def _shown_round(out: Path, methods: list[str], rounds: int) -> int:
    """The round whose models are shown: the one most methods still have on disk (runs are not
    committed, so a bench resumed on another machine may lack the first rounds'), lowest first."""
    return max(range(rounds), key=lambda r: (sum(_model_file(out, m, r).exists() for m in methods), -r))


def figure(out: str | Path, ds, summary: dict, stem: str | None = None) -> Path | None:
    """``OUT/figure.png``: box plots of Dice (fg) over rounds, and predictions on one test image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    from pscl.data.io import atomic_write
    from pscl.inference.predict import PALETTE

    out = Path(out)
    methods = list(summary["methods"])
    if not methods:
        return None
    stem = stem or ds.stems("test")[0]
    image, mask = ds.load_pair(stem)
    shown = _shown_round(out, methods, max(len(summary["methods"][m]["rounds"]) for m in methods))
    panels = [(m, _prediction(out, m, shown if m != "full" else 0, image)) for m in methods]
    panels = [(m, p) for m, p in panels if p is not None]
    columns = max(4, len(panels) + 2)
    fig = plt.figure(figsize=(2.4 * columns, 6.2))
    grid = fig.add_gridspec(2, columns, height_ratios=[1.1, 1])
    ax = fig.add_subplot(grid[0, :])
    values = [[r["dice_fg"] for r in summary["methods"][m]["rounds"]] for m in methods]
    ax.boxplot(values, showmeans=True)
    ax.set_xticks(range(1, len(methods) + 1), methods, fontsize=8)
    for i, v in enumerate(values, 1):
        ax.scatter(np.full(len(v), i), v, s=10, color="black", zorder=3)
    ax.set_ylabel("Dice (fg), test")
    ax.set_title(f"{summary['dataset']}: {summary['shots']} annotated image(s), rounds as points, "
                 f"profile {summary['profile']}", fontsize=9)
    cmap = ListedColormap(PALETTE[:max(len(ds.classes), 2)] / 255)
    truth = np.where(mask == 255, 0, mask)
    tiles = [("image", None), ("ground truth", truth)] + [(f"{m} (round {0 if m == 'full' else shown})", p)
                                                           for m, p in panels]
    for i, (title, labels) in enumerate(tiles):
        a = fig.add_subplot(grid[1, i])
        if labels is None:
            a.imshow(image, cmap="gray")
        else:
            a.imshow(labels, cmap=cmap, vmin=0, vmax=cmap.N - 1, interpolation="nearest")
        a.set_title(title, fontsize=8)
        a.axis("off")
    fig.suptitle(f"test image {stem}", fontsize=8, y=0.02)
    fig.tight_layout()
    path = atomic_write(out / "figure.png", lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    return path


def collect(out: Path, name: str, classes: list[str], methods: list[str], shots: int, profile: str,
            command: str) -> dict:
    """Aggregate the per-round files into results.json and report.md: every method with results in
    OUT, so that a later run of a few methods (e.g. ``--pick suggest``) keeps the others' rows."""
    table = {}
    found = sorted(p.name for p in (out / "results").iterdir() if p.is_dir()) if (out / "results").is_dir() else []
    order = {m: i for i, m in enumerate(METHODS)}
    methods = sorted(set(methods) | set(found), key=lambda m: (order.get(m.split(":")[0], len(order)), m))
    for method in methods:
        rows = [json.loads(p.read_text()) for p in sorted((out / "results" / method).glob("round*.json"))]
        if not rows:
            continue
        agg = {k: [r[k] for r in rows] for k in ("dice_fg", "acc", "miou", "dice_all")}
        table[method] = {"rounds": rows, **{f"{k}_mean": float(np.mean(v)) for k, v in agg.items()},
                         **{f"{k}_std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for k, v in agg.items()},
                         "per_class_dice_mean": {c: float(np.nanmean([r["per_class"][c]["dice"] for r in rows]))
                                                 for c in classes}}
        if (out / "results" / method / "suggest.json").exists():
            table[method]["suggested"] = json.loads((out / "results" / method / "suggest.json").read_text())
    for method, t in table.items():
        if method not in ("scratch", "full") and "scratch" in table:
            paired = paired_difference(t["rounds"], table["scratch"]["rounds"])
            if paired:
                t["vs_scratch"] = paired
    summary = {"dataset": name, "shots": shots, "profile": profile,
               "profile_settings": {stage: profile_settings(profile, stage) for stage in ("pretrain", "finetune")},
               "command": command, **provenance(), "methods": table}
    write_text(out / "results.json", json.dumps(summary, indent=1, default=float))
    write_text(out / "report.md", report(summary, classes))
    return summary


def paired_difference(rounds: list[dict], reference: list[dict], key: str = "dice_fg") -> dict | None:
    """``key`` of a method minus the reference's, round by round (the same annotated image).

    The annotated image moves Dice more than the method does, so the per-round difference is the
    fair comparison: its mean, sample std, a Student-t 95 % interval of the mean (none for one
    round) and how many rounds the method wins. None when the two share no round.
    """
    from scipy import stats

    by_round = {r["round"]: r[key] for r in reference}
    diffs = [r[key] - by_round[r["round"]] for r in rounds if r["round"] in by_round]
    if not diffs:
        return None
    n, mean = len(diffs), float(np.mean(diffs))
    std = float(np.std(diffs, ddof=1)) if n > 1 else 0.0
    half = float(stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)) if n > 1 else float("nan")
    return {"rounds": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half],
            "wins": int(sum(d > 0 for d in diffs)), "differences": [float(d) for d in diffs]}


def report(summary: dict, classes: list[str]) -> str:
    """The table in the paper's form (Dice fg and ACC mean ± std), plus mIoU and per-class Dice."""
    lines = [f"# {summary['dataset']}: {summary['shots']} annotated image(s), profile `{summary['profile']}`", "",
             f"- command: `{summary['command']}`", f"- report written at commit: {summary['commit']}",
             f"- results produced at commit(s): {', '.join(sorted({r['commit'] for t in summary['methods'].values() for r in t['rounds']}))}",
             f"- machine: {summary['machine']}",
             f"- date: {summary['date']}", f"- budget: {summary['profile_settings']}", "",
             "| method | rounds | Dice (fg) | ACC | mIoU | " + " | ".join(classes) + " |",
             "|---|---|---|---|---|" + "---|" * len(classes)]
    for method, t in summary["methods"].items():
        per_class = " | ".join(f"{t['per_class_dice_mean'][c]:.3f}" for c in classes)
        lines.append(f"| {method} | {len(t['rounds'])} | {t['dice_fg_mean']:.4f} ± {t['dice_fg_std']:.4f} | "
                     f"{t['acc_mean']:.4f} ± {t['acc_std']:.4f} | {t['miou_mean']:.4f} | {per_class} |")
    paired = {m: t["vs_scratch"] for m, t in summary["methods"].items() if "vs_scratch" in t}
    if paired:
        lines += ["", "Paired against scratch (same annotated image each round; Dice (fg) of the method minus scratch's):",
                  "", "| method | rounds | mean difference ± std | 95 % interval | rounds better than scratch |",
                  "|---|---|---|---|---|"]
        for m, d in paired.items():
            interval = f"{d['ci95'][0]:+.4f} .. {d['ci95'][1]:+.4f}" if d["rounds"] > 1 else "–"
            lines.append(f"| {m} | {d['rounds']} | {d['mean']:+.4f} ± {d['std']:.4f} | {interval} | "
                         f"{d['wins']} of {d['rounds']} |")
    lines += ["", "Per round (Dice fg; annotated images):", ""]
    suggested = {m: t for m, t in summary["methods"].items() if "suggested" in t}
    if suggested:
        lines[-2:-2] = ["", "Fine-tuned on the image(s) `pscl suggest` picks, beside the random rounds:", "",
                        "| method | suggested image(s) | Dice (fg) | random rounds: mean ± std | difference / std |",
                        "|---|---|---|---|---|"]
        for m, t in suggested.items():
            sdice, std = t["suggested"]["dice_fg"], t["dice_fg_std"]
            ratio = f"{(sdice - t['dice_fg_mean']) / std:+.2f}" if std > 0 else "n/a"
            lines[-2:-2] = [f"| {m} | {', '.join(t['suggested']['annotated'])} | {sdice:.4f} | "
                            f"{t['dice_fg_mean']:.4f} ± {std:.4f} | {ratio} |"]
        lines[-2:-2] = [""]
    lines[-2:-2] = ["![Dice per round and predictions](figure.png)", ""]
    for method, t in summary["methods"].items():
        for r in t["rounds"]:
            ann = ", ".join(r["annotated"]) if len(r["annotated"]) <= 3 else f"{len(r['annotated'])} images"
            val = f"; best val {r['val_dice_fg']:.4f}" if r.get("val_dice_fg") is not None else ""
            lines.append(f"- {method} round {r['round']}: {r['dice_fg']:.4f} ({ann}; fine-tune {r['wall_s']['finetune']:.0f} s{val})")
    return "\n".join(lines) + "\n"
