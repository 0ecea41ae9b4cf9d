"""`pscl data check`, `pscl data synth` and `pscl data strokes`."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pscl.cli.common import HELP, PlainHelp, api, app, console, err, errors_exit

data_app = typer.Typer(cls=PlainHelp, no_args_is_help=True, context_settings=HELP, help="Dataset folders: check, synthesise, strokes.")
app.add_typer(data_app, name="data")

@data_app.command("check")
@errors_exit
def data_check(directory: Path = typer.Argument(..., help="dataset folder or plain image folder")) -> None:
    """Validate a dataset folder and report every problem at once."""
    problems = api.check_dataset(directory)
    for p in problems:
        err.print(f"[red]problem:[/] {p}", highlight=False)
    if problems:
        err.print(f"{len(problems)} problem(s) in {directory}")
        raise typer.Exit(1)
    ds = api.load_dataset(directory)
    if ds.classes is not None:  # what the train masks label, per class (strokes leave most pixels unlabelled)
        from rich.table import Table

        from pscl.data.labels import label_table, label_warnings, labelled_pixels
        counts = labelled_pixels(ds)
        table = Table("train image", "labelled", *ds.classes, title="labelled pixels per class")
        for row in label_table(counts):
            table.add_row(*row)
        console.print(table)
        for warning in label_warnings(ds, counts):
            err.print(f"note: {warning}", highlight=False)
    console.print(f"{directory}: OK")


@data_app.command("synth")
@errors_exit
def data_synth(out: Path = typer.Option(..., "--out", help="dataset folder to write"),
               n: int = typer.Option(12, "--n", help="labelled images"),
               seed: int = 0, size: int = 256,
               unlabeled: Optional[int] = typer.Option(None, help="unlabelled images (default 2n)"),
               kind: str = typer.Option("micrograph", help="micrograph: plan views (matrix, lamellar colonies, "
                                                            "precipitates); cross-section: coated cross-sections "
                                                            "(resin, coating, substrate stacked top to bottom; cracks)"),
               overwrite: bool = typer.Option(False, "--overwrite", help="replace a folder that is not empty")) -> None:
    """Write a synthetic dataset folder with exact ground truth."""
    path = api.synthesize_dataset(out, n=n, seed=seed, size=size, n_unlabeled=unlabeled, overwrite=overwrite,
                                  kind=kind)
    console.print(f"wrote {path}")


@data_app.command("strokes")
@errors_exit
def data_strokes(data: Path = typer.Argument(..., help="dataset folder with full masks"),
                 out: Path = typer.Option(..., "--out", help="dataset folder to write (train masks as strokes)"),
                 budget: float = typer.Option(0.02, help="stroked share of each train image's pixels"),
                 width: int = typer.Option(3, help="brush width in px"),
                 seed: int = typer.Option(0, help="seed of the strokes (one random stream per image)"),
                 overwrite: bool = typer.Option(False, "--overwrite", help="replace a folder that is not empty")) -> None:
    """Copy a dataset folder with its train masks replaced by simulated brush strokes (val and test untouched)."""
    from pscl.data.strokes import stroke_dataset
    path = stroke_dataset(data, out, budget=budget, seed=seed, width=width, overwrite=overwrite)
    console.print(f"wrote {path}")


@data_app.command("init")
@errors_exit
def data_init(folder: Path = typer.Argument(..., help="a folder of micrographs (in it or in images/)"),
              classes: str = typer.Option(..., "--classes", help="class names in index order, comma-separated: "
                                                                  "matrix,pearlite,precipitate")) -> None:
    """Make a folder of micrographs a dataset folder in place: dataset.json and masks/ beside the images."""
    from pscl.data.annotation import init_dataset
    ds = init_dataset(folder, classes.split(","))
    console.print(f"{folder}: dataset folder with classes {', '.join(ds.classes)}; "
                  f"{len(ds.splits['train'])} annotated micrograph(s). Stroke them in `pscl app {folder}` "
                  "or write masks/<stem>.png (255 = not labelled)")
