"""Applying a model: `pscl evaluate`, `pscl predict`, `pscl export`, `pscl report`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pscl.cli.common import (OVERLAP, PREDICT_PRECISION, TILE, api, app, console, err, errors_exit,
                             print_scores)

@app.command()
@errors_exit
def evaluate(run: Path, data: Path, split: str = "test",
             out: Optional[Path] = typer.Option(None, help="folder for eval_<dataset>_<split>.json (default: the run "
                                                           "folder; a name ending in .json: that file)"),
             tile: int = TILE, overlap: int = OVERLAP,
             tta: bool = typer.Option(False, "--tta", help="average over the 8 flips and quarter turns (8x the time)"),
             precision: str = PREDICT_PRECISION) -> None:
    """Score a run on a split of a dataset folder; print a table, write JSON."""
    result = api.evaluate(run, data, split=split, out=out, tile=tile, overlap=overlap, tta=tta, precision=precision)
    print_scores(result, f"{run} on {data} [{split}]")
    console.print(f"written: {result['out']}")


@app.command()
@errors_exit
def predict(run: Path = typer.Argument(..., help="run folder (with --onnx: the images)"),
            source: Optional[Path] = typer.Argument(None, help="image or folder of images"),
            out: Path = typer.Option(..., "--out", help="folder for the masks, overlays, phase_fractions.csv and "
                                                      "predictions.json"),
            onnx: Optional[Path] = typer.Option(None, help="exported model: ONNX Runtime, no torch"),
            um_per_px: Optional[float] = typer.Option(None, help="pixel size (overrides the file's metadata)"),
            crop_bottom: str = typer.Option("auto", help="SEM data bar: auto, none, or a number of rows"),
            tile: int = TILE, overlap: int = OVERLAP,
            tta: bool = typer.Option(False, "--tta", help="average over the 8 flips and quarter turns (8x the time)"),
            precision: str = PREDICT_PRECISION) -> None:
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
@errors_exit
def export(run: Path, onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write")) -> None:
    """Export a run's U-Net to ONNX (for `pscl predict --onnx`, without torch)."""
    from pscl.inference.export import export_onnx

    console.print(f"wrote {export_onnx(run, onnx)}")


@app.command()
@errors_exit
def report(pred_dir: Path, out: Optional[Path] = typer.Option(None, help="default PRED_DIR/report"),
           truth: Optional[Path] = typer.Option(None, help="ground-truth masks (folder or dataset folder)"),
           groups: Optional[Path] = typer.Option(None, help="CSV image,sample: which images form a sample"),
           min_area_px: int = typer.Option(5, help="smaller objects are specks: counted, not sized"),
           continuous: Optional[list[str]] = typer.Option(
               None, help="a continuous phase (no number density); repeatable (default: classes named like 'matrix')")) -> None:
    """Phase fractions with 95 % CIs, particle statistics, histograms: report.html + JSON/CSV."""
    from pscl.metallography.report import make_report, read_groups

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
    for name, s in result["samples"].items():
        if s.get("dice_fg_vs_truth") is not None:
            per_class = "  ".join(f"{c} {d:.3f}" for c, d in s["dice_vs_truth"].items())
            console.print(f"{name}: Dice (fg) against --truth {s['dice_fg_vs_truth']:.4f} on {s['truth_images']} "
                          f"image(s); per class: {per_class}")
    console.print(f"written: {Path(result['out']) / 'report.html'}")
