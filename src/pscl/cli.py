"""The ``pscl`` command line: parse, call the Python API, print. Nothing else lives here."""
from __future__ import annotations

import importlib
import json
import sys
from functools import wraps
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pscl.data.io import DataError, write_text
from pscl.profiles import PROFILES


class _LazyAPI:
    """``pscl.api`` on first use: `pscl predict --onnx` and `pscl report` must run without torch."""

    def __getattr__(self, name: str):
        return getattr(importlib.import_module("pscl.api"), name)


api = _LazyAPI()

_HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, context_settings=_HELP,
                  help="Segment metal microstructures from one annotated micrograph (PSCL).")
data_app = typer.Typer(no_args_is_help=True, context_settings=_HELP, help="Dataset folders: check, synthesise.")
app.add_typer(data_app, name="data")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages carry paths: never break them


def _errors_exit(fn):
    """Bad input ends in one clear message naming the file and problem, and exit status 1; Ctrl-C
    in a short note (exit 130): every output is written atomically, runs resume."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DataError, ValueError, FloatingPointError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            err.print("interrupted; nothing half-written is left. A training run continues with the same "
                      "command and --resume.", highlight=False)
            raise typer.Exit(130)
    return wrapper


def _version(value: bool) -> None:
    if value:
        from pscl import __version__
        console.print(f"pscl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Segment metal microstructures from one annotated micrograph (PSCL)."""


def _ints(text: str, option: str = "--widths") -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"{option} must be comma-separated integers, got {text!r}") from None


def print_scores(result: dict, title: str) -> None:
    """A rich table of per-class Dice/IoU and the summary scores."""
    table = Table(title=title)
    for col in ("class", "dice", "iou", "pixels"):
        table.add_column(col, justify="right" if col != "class" else "left")
    for name, s in result["per_class"].items():
        table.add_row(name, f"{s['dice']:.4f}", f"{s['iou']:.4f}", str(s["pixels"]))
    console.print(table)
    console.print(f"dice_fg {result['dice_fg']:.4f}   dice_all {result['dice_all']:.4f}   "
                  f"miou {result['miou']:.4f}   acc {result['acc']:.4f}")


@data_app.command("check")
@_errors_exit
def data_check(directory: Path = typer.Argument(..., help="dataset folder or plain image folder")) -> None:
    """Validate a dataset folder and report every problem at once."""
    problems = api.check_dataset(directory)
    for p in problems:
        err.print(f"[red]problem:[/] {p}", highlight=False)
    if problems:
        err.print(f"{len(problems)} problem(s) in {directory}")
        raise typer.Exit(1)
    console.print(f"{directory}: OK")


@data_app.command("synth")
@_errors_exit
def data_synth(out: Path = typer.Option(..., "--out", help="dataset folder to write"),
               n: int = typer.Option(12, "--n", help="labelled images"),
               seed: int = 0, size: int = 256,
               unlabeled: Optional[int] = typer.Option(None, help="unlabelled images (default 2n)"),
               overwrite: bool = False) -> None:
    """Write a synthetic dataset folder with exact ground truth."""
    path = api.synthesize_dataset(out, n=n, seed=seed, size=size, n_unlabeled=unlabeled, overwrite=overwrite)
    console.print(f"wrote {path}")


_PRECISION = typer.Option("auto", help="auto: bf16-mixed on GPUs and on CPUs with AMX or AVX512-BF16, "
                                         "fp32 elsewhere; or 32-true, bf16-mixed")
_PROFILE = typer.Option("quick", help="budget preset (" + ", ".join(PROFILES) + "): quick for a 2-core CPU, paper for "
                                         "a GPU; options below override it")


def _opt(what: str):
    """An option whose default comes from --profile (so the help says so)."""
    return typer.Option(None, help=f"{what} (default: from --profile)", show_default=False)


_RESUME = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint (same settings)")
_OVERWRITE = typer.Option(False, "--overwrite", help="replace the run already in --out")
_TILE = typer.Option(512, help="tile side in px (memory grows with it)")
_OVERLAP = typer.Option(128, help="overlap of neighbouring tiles in px (blended)")
_PREDICT_PRECISION = typer.Option("auto", help="auto: bf16 autocast where the hardware has it (masks may differ from "
                                                "fp32 on ~0.1 % of pixels); 32-true: fp32, the same on every CPU")


@app.command()
@_errors_exit
def finetune(data: Path, out: Path = typer.Option(..., "--out", help="run folder"),
             shots: int = 1, round: int = typer.Option(0, "--round", help="which annotated image(s)"),
             all_train: bool = typer.Option(False, help="train on the whole train split"),
             init: Optional[Path] = typer.Option(None, help="pretrained run to start from"),
             profile: str = _PROFILE,
             steps: Optional[int] = _opt("optimiser steps"), batch_size: Optional[int] = _opt("crops per step"),
             crop: Optional[int] = _opt("crop side in px"), lr: Optional[float] = _opt("learning rate (Adam)"),
             widths: Optional[str] = _opt("U-Net channel widths, e.g. 32,64,128,256"),
             val_every: Optional[int] = _opt("steps between validations and checkpoints"),
             select: str = typer.Option("val", help="val: the best val Dice (fg); last: the last step"), seed: int = 0,
             lr_contracting_init: Optional[float] = typer.Option(None, help="with --init: lr of the contracting path"),
             lr_schedule: Optional[str] = typer.Option(None, help="constant (default) or poly: lr x (1 - step/steps)^0.9"),
             head_warmup: Optional[int] = typer.Option(None, help="with --init: first steps train only the classifier (LP-FT)"),
             bn_frozen_steps: Optional[int] = typer.Option(
                 None, help="with --init: BatchNorm keeps the pretrained statistics for the first N steps (default 0)"),
             class_weight_power: Optional[float] = typer.Option(
                 None, help="cross-entropy weight ∝ pixel share^-power (default 0.5; 0 = unweighted)"),
             dice_weight: Optional[float] = typer.Option(None, help="loss = (1 - d) CE + d soft Dice (default 0.5)"),
             jitter: Optional[float] = typer.Option(None, help="brightness/contrast augmentation strength (default 0.1)"),
             rare_crops: Optional[float] = typer.Option(
                 None, help="share of crops centred on the annotated image's rarest classes (default 0)"),
             rare_classes: Optional[int] = typer.Option(None, help="how many of the rarest classes --rare-crops targets (default 2)"),
             semi: bool = typer.Option(False, "--semi", help="semi-supervised: also learn from unlabeled/ and train images"),
             semi_weight: Optional[float] = typer.Option(None, help="--semi: weight of the unlabelled loss (default 1)"),
             semi_threshold: Optional[float] = typer.Option(None, help="--semi: confidence cap of the surest class (default 0.9)"),
             semi_ema: Optional[float] = typer.Option(None, help="--semi: teacher momentum (default 0.99)"),
             accelerator: str = "auto", devices: str = "1", precision: str = _PRECISION,
             resume: bool = _RESUME, overwrite: bool = _OVERWRITE, progress: bool = True) -> None:
    """Train a segmentation U-Net on K annotated train images (fine-tune with --init)."""
    if init is not None and widths is not None:
        from pscl.checkpoints import read_model_file
        init_widths = tuple(read_model_file(init)["widths"])
        if _ints(widths) != init_widths:
            raise ValueError(f"--widths {widths} differs from the widths of --init {init} "
                             f"({','.join(map(str, init_widths))}): the pretrained U-Net decides them")
    overrides = {k: v for k, v in dict(steps=steps, batch_size=batch_size, crop=crop, lr=lr, val_every=val_every,
                                       lr_contracting_init=lr_contracting_init, head_warmup=head_warmup,
                                       lr_schedule=lr_schedule,
                                       bn_frozen_steps=bn_frozen_steps,
                                       class_weight_power=class_weight_power,
                                       dice_weight=dice_weight, jitter=jitter, rare_crops=rare_crops,
                                       rare_classes=rare_classes, semi_weight=semi_weight,
                                       semi_threshold=semi_threshold, semi_ema=semi_ema, widths=_ints(widths) if widths else None).items() if v is not None}
    config = api.finetune_config(profile, shots=shots, round=round, all_train=all_train, semi=semi,
                                 init=str(init) if init else None, select=select, seed=seed,
                                 accelerator=accelerator, devices=int(devices) if devices.isdigit() else devices,
                                 precision=precision, progress=progress, **overrides)
    summary = api.finetune(data, out, config, resume=resume, overwrite=overwrite)
    console.print_json(json.dumps(summary))


@app.command()
@_errors_exit
def pretrain(data: Path, out: Path = typer.Option(..., "--out", help="run folder"),
             method: str = typer.Option("simclr", help="simclr, moco, byol, densecl, pscl-simclr, pscl-moco"),
             shots: int = typer.Option(1, help="PSCL: annotated images guiding pretraining"),
             round: int = typer.Option(0, "--round", help="PSCL: which annotated image(s), as in finetune"),
             a: Optional[float] = typer.Option(None, help="PSCL: patch-loss share (0 = no patch loss)"),
             top_k: Optional[int] = typer.Option(None, help="PSCL: cells per class at scale 0"),
             scales: Optional[str] = typer.Option(None, help="PSCL: decoder scales, e.g. 0,1,2 or 2"),
             sampling: Optional[str] = typer.Option(None, help="PSCL: similarity or random"),
             annotated_in_batch: bool = typer.Option(True, help="PSCL: keep the annotated image in every batch"),
             profile: str = _PROFILE,
             steps: Optional[int] = _opt("optimiser steps"), batch_size: Optional[int] = _opt("crops per step"),
             crop: Optional[int] = _opt("crop side in px"), lr: Optional[float] = _opt("learning rate"),
             widths: Optional[str] = _opt("U-Net channel widths, e.g. 32,64,128,256"),
             temperature: Optional[float] = None, momentum: Optional[float] = None,
             queue_size: Optional[int] = None, seed: int = 0,
             accelerator: str = "auto", devices: str = "1", precision: str = _PRECISION,
             resume: bool = _RESUME, overwrite: bool = _OVERWRITE, progress: bool = True) -> None:
    """Pretrain the U-Net without labels (unlabeled/ + train images, or a plain image folder)."""
    overrides = {k: v for k, v in dict(steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                                       widths=_ints(widths) if widths else None).items() if v is not None}
    options = {k: v for k, v in dict(temperature=temperature, momentum=momentum, queue_size=queue_size, a=a,
                                     top_k=top_k, sampling=sampling,
                                     scales=_ints(scales, '--scales') if scales else None).items() if v is not None}
    config = api.pretrain_config(profile, method=method, options=options, seed=seed, accelerator=accelerator,
                                 shots=shots, round=round, annotated_in_batch=annotated_in_batch,
                                 devices=int(devices) if devices.isdigit() else devices, precision=precision,
                                 progress=progress, **overrides)
    console.print_json(json.dumps(api.pretrain(data, out, config, resume=resume, overwrite=overwrite)))


@app.command()
@_errors_exit
def evaluate(run: Path, data: Path, split: str = "test",
             out: Optional[Path] = typer.Option(None, help="folder for eval_<dataset>_<split>.json (default: the run "
                                                           "folder; a name ending in .json: that file)"),
             tile: int = _TILE, overlap: int = _OVERLAP,
             tta: bool = typer.Option(False, "--tta", help="average over the 8 flips and quarter turns (8x the time)"),
             precision: str = _PREDICT_PRECISION) -> None:
    """Score a run on a split of a dataset folder; print a table, write JSON."""
    result = api.evaluate(run, data, split=split, out=out, tile=tile, overlap=overlap, tta=tta, precision=precision)
    print_scores(result, f"{run} on {data} [{split}]")
    console.print(f"written: {result['out']}")


@app.command()
@_errors_exit
def probe(data: Path, init: Optional[Path] = typer.Option(None, help="pretrained or fine-tuned run; none: random features"),
          shots: int = 1, round: int = typer.Option(0, "--round"), split: str = "val", steps: int = 150,
          crop: int = 128, lr: float = 1e-2, seed: int = 0,
          widths: str = typer.Option("16,32,64,128", help="U-Net widths of the random features (without --init)"),
          out: Optional[Path] = typer.Option(None, help="also write the result as probe_<split>.json into this folder "
                                                          "(a name ending in .json: that file)")) -> None:
    """Linear probe: freeze the U-Net, train only its classifier on the round's annotated image(s), score a split."""
    config = api.ProbeConfig(shots=shots, round=round, steps=steps, crop=crop, lr=lr, seed=seed,
                             widths=_ints(widths))
    result = api.linear_probe(data, init, config, split=split)
    print_scores(result, f"linear probe of {init or 'random features'} on {data} [{split}]")
    if out:
        from pscl.run_folder import output_file
        out = output_file(out, f"probe_{split}.json")
        write_text(out, json.dumps(result, indent=1, default=float))
        console.print(f"written: {out}")


@app.command()
@_errors_exit
def predict(run: Path = typer.Argument(..., help="run folder (with --onnx: the images)"),
            source: Optional[Path] = typer.Argument(None, help="image or folder of images"),
            out: Path = typer.Option(..., "--out"),
            onnx: Optional[Path] = typer.Option(None, help="exported model: ONNX Runtime, no torch"),
            um_per_px: Optional[float] = typer.Option(None, help="pixel size (overrides the file's metadata)"),
            crop_bottom: str = typer.Option("auto", help="SEM data bar: auto, none, or a number of rows"),
            tile: int = _TILE, overlap: int = _OVERLAP,
            tta: bool = typer.Option(False, "--tta", help="average over the 8 flips and quarter turns (8x the time)"),
            precision: str = _PREDICT_PRECISION) -> None:
    """Segment micrographs of any size; write masks, overlays, phase_fractions.csv, predictions.json."""
    from pscl.inference.predict import predict as run_predict

    if onnx is not None and source is None:  # `pscl predict --onnx MODEL IMAGES`: no run folder
        run, source = None, run
    if source is None:
        raise ValueError("give a run folder and the images: pscl predict RUN IMAGES --out DIR")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:.1f}/{task.total} images"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("segmenting", total=None)

        def advance(position: float, total: int, name: str) -> None:
            bar.update(task, completed=position, total=total, description=name or "done")
        results = run_predict(run, source, out, tile=tile, overlap=overlap, onnx=onnx, um_per_px=um_per_px, tta=tta,
                              precision=precision, crop_bottom=None if crop_bottom == "none" else crop_bottom,
                              progress=advance)
    console.print(f"segmented {len(results)} image(s); outputs in {out} (phase_fractions.csv, predictions.json)")


@app.command()
@_errors_exit
def export(run: Path, onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write")) -> None:
    """Export a run's U-Net to ONNX (for `pscl predict --onnx`, without torch)."""
    from pscl.inference.export import export_onnx

    console.print(f"wrote {export_onnx(run, onnx)}")


@app.command()
@_errors_exit
def report(pred_dir: Path, out: Optional[Path] = typer.Option(None, help="default PRED_DIR/report"),
           truth: Optional[Path] = typer.Option(None, help="ground-truth masks (folder or dataset folder)"),
           groups: Optional[Path] = typer.Option(None, help="CSV image,sample: which images form a sample"),
           min_area_px: int = typer.Option(5, help="smaller objects are specks: counted, not sized"),
           continuous: Optional[list[str]] = typer.Option(
               None, help="a continuous phase (no number density); repeatable (default: classes named like 'matrix')")) -> None:
    """Phase fractions with 95 % CIs, particle statistics, histograms: report.html + JSON/CSV."""
    from pscl.report import make_report, read_groups

    result = make_report(pred_dir, out, groups=read_groups(groups) if groups else None, truth=truth,
                         min_area_px=min_area_px, continuous=continuous)
    table = Table(title="phase fractions, % (mean ± 95 % CI)")
    table.add_column("sample")
    for c in result["classes"]:
        table.add_column(c, justify="right")
    for name, s in result["samples"].items():
        fr = s["fractions"]
        table.add_row(name, *(f"{100 * fr['mean'][c]:.2f}" + (f" ± {100 * fr['ci95'][c]:.2f}" if fr["ci95"][c] is not None else "")
                              for c in result["classes"]))
    console.print(table)
    console.print(f"written: {Path(result['out']) / 'report.html'}")


@app.command()
@_errors_exit
def bench(data: str = typer.Argument(..., help="dataset folder, or 'speed' for the speed benchmark"),
          out: Path = typer.Option(..., "--out"),
          methods: str = typer.Option("scratch,full", help="comma-separated methods; variants as NAME:key=value, "
                                                             "e.g. pscl-simclr:a=0 or pscl-simclr:scales=2"),
          shots: int = 1, rounds: int = 5, profile: str = "quick", seed: int = 0, progress: bool = False,
          pick: str = typer.Option("random", help="random: the rounds only; suggest: also `pscl suggest`'s pick"),
          settings: str = typer.Option("quick,paper", help="speed: size settings (quick, paper)"),
          paper_methods: Optional[str] = typer.Option(None, help="speed: methods of the slow paper-size rows "
                                                                "(default: --methods)"),
          modes: str = typer.Option("fp32,default", help="speed: fp32 (NCHW), fp32-cl (channels_last), default"),
          report_only: bool = typer.Option(False, "--report-only", help="rebuild report and figure from OUT's results; run nothing")) -> None:
    """Run the paper's protocol (resumable) and write a report; `pscl bench speed` measures speed."""
    command = "pscl " + " ".join(sys.argv[1:])
    if report_only:
        from pscl.bench import rebuild_report
        rebuild_report(data, out)
        console.print(f"written: {out / 'report.md'}")
        return
    if data == "speed":
        from pscl.speed import write_speed
        pre = [m for m in methods.split(",") if m in api.METHODS] or list(api.METHODS)
        console.print(write_speed(out, pre, settings.split(","), paper_methods.split(",") if paper_methods else None,
                                  command, log=console.print, modes=modes.split(",")))
        return
    from pscl.bench import run_bench
    run_bench(Path(data), out, methods.split(","), shots=shots, rounds=rounds, profile=profile, seed=seed,
              progress=progress, log=console.print, command=command, pick=pick)
    console.print((Path(out) / "report.md").read_text())


@app.command()
@_errors_exit
def suggest(data: Path, out: Path = typer.Option(..., "--out"),
            init: Optional[Path] = typer.Option(None, help="label-free pretrained run (default: pretrain SimCLR now)"),
            k: int = typer.Option(1, "--k", help="images to annotate, chosen jointly"),
            patch: int = 32, clusters: int = 16, seed: int = 0,
            examples: Optional[int] = typer.Option(
                None, help="patches per feature cluster that count (default 8; 1: presence only)"),
            profile: str = typer.Option("quick", help="pretraining budget when --init is absent")) -> None:
    """Rank the images by how well annotating them would serve the rest; write a contact sheet."""
    from pscl.suggest import SuggestConfig, suggest as run_suggest

    overrides = {"examples": examples} if examples is not None else {}
    result = run_suggest(data, out, SuggestConfig(k=k, patch=patch, clusters=clusters, seed=seed, **overrides,
                                                  init=str(init) if init else None, pretrain_profile=profile))
    table = Table(title=f"annotate first (of {result['candidates']} candidates)")
    for col in ("rank", "image", "score", "reason"):
        table.add_column(col)
    for r in result["ranking"][:10]:
        table.add_row(str(r["rank"]), r["image"], f"{r['score']:.3f}", r["reason"])
    console.print(table)
    console.print(f"chosen set (k={k}): {', '.join(result['chosen'])}; outputs in {out} (contact_sheet.png)")


@app.command()
@_errors_exit
def demo(out: Path = typer.Option(Path("pscl-demo"), "--out"), seed: int = 0,
         progress: bool = True) -> None:
    """Synthesise micrographs, PSCL-pretrain, fine-tune on 1 annotated image, evaluate, predict (minutes on CPU)."""
    summary = api.demo(out, seed=seed, progress=progress, log=console.print)
    print_scores(summary["test"], "demo: 1 annotated image, synthetic test split")
    console.print(f"outputs: {summary['out']}")


def main() -> None:  # console script entry
    app(prog_name="pscl")


if __name__ == "__main__":
    sys.exit(main())
