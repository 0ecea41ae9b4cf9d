"""Training commands: `pscl finetune`, `pscl pretrain`, `pscl demo`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from pscl.cli.common import (ACCELERATOR, DEVICES, OVERWRITE, PRECISION, PROFILE, RESUME, SEED, api, app, console,
                             err, errors_exit, ints, print_scores, profile_option)



@app.command()
@errors_exit
def finetune(data: Path = typer.Argument(..., help="dataset folder (dataset.json, images/, masks/)"),
             out: Path = typer.Option(..., "--out", help="run folder"),
             shots: int = typer.Option(1, help="how many annotated train images to train on (chosen by --round)"), round: int = typer.Option(0, "--round", help="which annotated image(s)"),
             all_train: bool = typer.Option(False, help="train on the whole train split"),
             init: Optional[Path] = typer.Option(None, help="pretrained run to start from"),
             profile: str = PROFILE,
             steps: Optional[int] = profile_option("optimiser steps", "steps"), batch_size: Optional[int] = profile_option("crops per step", "batch_size"),
             crop: Optional[int] = profile_option("crop side in px", "crop"), lr: Optional[float] = typer.Option(None, help="learning rate (Adam; default 0.001)"),
             widths: Optional[str] = profile_option("U-Net channel widths, e.g. 32,64,128,256", "widths"),
             val_every: Optional[int] = profile_option("steps between validations and checkpoints", "val_every"),
             orientation: str = typer.Option("auto", help="flips and quarter turns in training and TTA: auto (all, "
                                              "unless the annotation's classes are stacked along one axis, as in a "
                                              "cross-section: then only the mirror that keeps the layers), free, fixed"),
             select: Optional[str] = typer.Option(
                 None, help="val: the checkpoint best on the val masks (the default where DATA has a val split); "
                            "last: the last step (the default without one)"), seed: int = SEED,
             lr_contracting_init: Optional[float] = typer.Option(
                 None, help="with --init: lr of the contracting path (default: --lr; the paper: 1e-4)"),
             lr_schedule: Optional[str] = typer.Option(None, help="constant (default) or poly: lr x (1 - step/steps)^0.9"),
             class_weight_power: Optional[float] = typer.Option(
                 None, help="cross-entropy weight ∝ pixel share^-power (default 0.5; 0 = unweighted)"),
             dice_weight: Optional[float] = typer.Option(None, help="loss = (1 - d) CE + d soft Dice (default 0.5)"),
             affinity: Optional[float] = typer.Option(
                 None, help="weight of a loss that gives neighbouring pixels that look alike the same class, carrying "
                            "strokes out to phase borders: 1 helped strokes of wide phases, hurt thin grain boundaries "
                            "(default 0)"),
             jitter: Optional[float] = typer.Option(None, help="brightness/contrast augmentation strength (default 0.1)"),
             photometric: Optional[float] = typer.Option(
                 None, help="strong photometric augmentation (brightness, contrast, gamma, blur, noise): probability of "
                            "each effect on a crop (default 0.8; 0: the mild jitter only)"),
             seeds: Optional[int] = typer.Option(
                 None, help="fine-tune this many seeds (--seed, +1, ...) in OUT/seed<S> and keep the one best on val"),
             semi: bool = typer.Option(False, "--semi", help="semi-supervised: also learn from unlabeled/ and train images"),
             semi_weight: Optional[float] = typer.Option(None, help="--semi: weight of the unlabelled loss (default 1)"),
             semi_threshold: Optional[float] = typer.Option(None, help="--semi: confidence cap of the surest class (default 0.9)"),
             semi_ema: Optional[float] = typer.Option(None, help="--semi: teacher momentum (default 0.99)"),
             semi_floor: Optional[float] = typer.Option(None, help="--semi: lowest confidence threshold (default 0.6)"),
             semi_class_thresholds: Optional[bool] = typer.Option(
                 None, "--semi-class-thresholds/--no-semi-class-thresholds",
                 help="--semi: lower thresholds for the classes the teacher is less sure of (default on)"),
             semi_start: Optional[int] = typer.Option(
                 None, help="--semi: supervised-only steps before the teacher labels (default -1: half the steps)"),
             semi_align: Optional[bool] = typer.Option(
                 None, "--semi-align/--no-semi-align",
                 help="--semi: keep the pseudo-labels' class shares at the annotated image's (distribution alignment)"),
             semi_align_mix: Optional[float] = typer.Option(
                 None, help="--semi-align: share of the target taken from the warmed-up teacher's own class shares on "
                            "the unlabelled images instead of the annotated image's (default 0)"),
             semi_guard: Optional[bool] = typer.Option(
                 None, "--semi-guard/--no-semi-guard",
                 help="--semi with --select last: hold a fifth of the annotation out; if self-training lowered its Dice, "
                      "go back to the model from before self-training and train on without it, on the whole "
                      "annotation (default on)"),
             accelerator: str = ACCELERATOR, devices: str = DEVICES, precision: str = PRECISION,
             resume: bool = RESUME, overwrite: bool = OVERWRITE, progress: bool = True) -> None:
    """Train a segmentation U-Net on K annotated train images (fine-tune with --init)."""
    options = dict(locals())  # (first: the command's own arguments only)
    if select is None:  # without val masks: the last model (benchmarks/user-protocol/)
        from pscl.data.folders import load_dataset
        from pscl.profiles import profile_settings
        profile_settings(profile, "finetune")  # (a wrong --profile is named before the data is read)
        select = "val" if (load_dataset(data).splits or {}).get("val") else "last"
        if select == "last":
            err.print(f"note: {data} has no val split: the model of the last step is kept (--select last)",
                      highlight=False)
    from dataclasses import fields

    from pscl.train.finetune import FinetuneConfig
    # every option named as a FinetuneConfig field sets it (None: the profile's or the config's default);
    # tests/test_cli.py checks that the options are these fields and the run options, with the fields' defaults
    given = {k: v for k, v in options.items() if k in {f.name for f in fields(FinetuneConfig)} and v is not None}
    if widths:
        given["widths"] = ints(widths)
    config = api.finetune_config(profile, **{**given, "init": str(init) if init else None, "select": select,
                                             "devices": int(devices) if devices.isdigit() else devices})
    summary = api.finetune(data, out, config, resume=resume, overwrite=overwrite)
    console.print_json(json.dumps(summary))


@app.command()
@errors_exit
def pretrain(data: Path, out: Path = typer.Option(..., "--out", help="run folder"),
             method: str = typer.Option("simclr", help="simclr, moco, byol, densecl, pscl-simclr, pscl-moco"),
             shots: int = typer.Option(1, help="PSCL: annotated images guiding pretraining"),
             round: int = typer.Option(0, "--round", help="PSCL: which annotated image(s), as in finetune"),
             a: Optional[float] = typer.Option(None, help="PSCL: patch-loss share (0 = no patch loss)"),
             top_k: Optional[int] = typer.Option(None, help="PSCL: cells per class at scale 0"),
             scales: Optional[str] = typer.Option(None, help="PSCL: decoder scales, e.g. 0,1,2 or 2"),
             sampling: Optional[str] = typer.Option(None, help="PSCL: similarity or random"),
             annotated_in_batch: bool = typer.Option(True, help="PSCL: keep the annotated image in every batch"),
             profile: str = PROFILE,
             steps: Optional[int] = profile_option("optimiser steps", "steps", "pretrain"), batch_size: Optional[int] = profile_option("crops per step", "batch_size", "pretrain"),
             crop: Optional[int] = profile_option("crop side in px", "crop", "pretrain"), lr: Optional[float] = typer.Option(None, help="learning rate (default 0.001)"),
             widths: Optional[str] = profile_option("U-Net channel widths, e.g. 32,64,128,256", "widths", "pretrain"),
             temperature: Optional[float] = None, momentum: Optional[float] = None,
             queue_size: Optional[int] = None, seed: int = SEED,
             accelerator: str = ACCELERATOR, devices: str = DEVICES, precision: str = PRECISION,
             resume: bool = RESUME, overwrite: bool = OVERWRITE, progress: bool = True) -> None:
    """Pretrain the U-Net without labels (unlabeled/ + train images, or a plain image folder)."""
    overrides = {k: v for k, v in dict(steps=steps, batch_size=batch_size, crop=crop, lr=lr,
                                       widths=ints(widths) if widths else None).items() if v is not None}
    options = {k: v for k, v in dict(temperature=temperature, momentum=momentum, queue_size=queue_size, a=a,
                                     top_k=top_k, sampling=sampling,
                                     scales=ints(scales, '--scales') if scales else None).items() if v is not None}
    config = api.pretrain_config(profile, method=method, options=options, seed=seed, accelerator=accelerator,
                                 shots=shots, round=round, annotated_in_batch=annotated_in_batch,
                                 devices=int(devices) if devices.isdigit() else devices, precision=precision,
                                 progress=progress, **overrides)
    console.print_json(json.dumps(api.pretrain(data, out, config, resume=resume, overwrite=overwrite)))


@app.command()
@errors_exit
def demo(out: Path = typer.Option(Path("pscl-demo"), "--out"), seed: int = 0,
         progress: bool = True) -> None:
    """Synthesise micrographs, PSCL-pretrain, fine-tune on 1 annotated image, evaluate, predict (minutes on CPU)."""
    summary = api.demo(out, seed=seed, progress=progress, log=console.print)
    print_scores(summary["test"], "demo: 1 annotated image, synthetic test split")
    console.print(f"outputs: {summary['out']}")
