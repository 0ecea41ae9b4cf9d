"""Studies: `pscl probe` (how good are features) and `pscl suggest` (which image to annotate)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pscl.cli.common import api, app, console, errors_exit, ints, print_scores
from pscl.files import check_writable, write_text

@app.command()
@errors_exit
def probe(data: Path, init: Optional[Path] = typer.Option(None, help="pretrained or fine-tuned run; none: random features"),
          shots: int = 1, round: int = typer.Option(0, "--round"), split: str = "val", steps: int = 150,
          crop: int = 128, lr: float = 1e-2, seed: int = 0,
          widths: str = typer.Option("16,32,64,128", help="U-Net widths of the random features (without --init)"),
          out: Optional[Path] = typer.Option(None, help="also write the result as probe_<split>.json into this folder "
                                                          "(a name ending in .json: that file)")) -> None:
    """Linear probe: freeze the U-Net, train only its classifier on the round's annotated image(s), score a split."""
    config = api.ProbeConfig(shots=shots, round=round, steps=steps, crop=crop, lr=lr, seed=seed,
                             widths=ints(widths))
    if out:
        from pscl.run_folder import output_file
        out = check_writable(output_file(out, f"probe_{split}.json"))  # before the probe's work
    result = api.linear_probe(data, init, config, split=split)
    print_scores(result, f"linear probe of {init or 'random features'} on {data} [{split}]")
    if out:
        write_text(out, json.dumps(result, indent=1, default=float))
        console.print(f"written: {out}")


@app.command()
@errors_exit
def suggest(data: Path, out: Path = typer.Option(..., "--out"),
            init: Optional[Path] = typer.Option(None, help="label-free pretrained run (default: pretrain SimCLR now)"),
            k: int = typer.Option(1, "--k", help="images to annotate, chosen jointly"),
            patch: int = 32, clusters: int = 16, seed: int = 0,
            examples: Optional[int] = typer.Option(
                None, help="patches per feature cluster that count (default 8; 1: presence only)"),
            profile: str = typer.Option("quick", help="pretraining budget when --init is absent"),
            run: Optional[Path] = typer.Option(None, "--run", help="a fine-tuned run: rank the micrographs no split "
                                                                   "lists by how unsure its model is, and where in "
                                                                   "each (what to stroke next)")) -> None:
    """Rank the images by how well annotating them would serve the rest; write a contact sheet. With --run:
    the micrographs, and the place in each, that the model is least sure of."""
    from pscl.studies.suggest import SuggestConfig, suggest as run_suggest
    if run is not None:
        if init is not None:
            raise ValueError("--run ranks by a fine-tuned model's unsureness, --init by pretrained features: give one")
        from pscl.studies.unsure import stroke_next
        check_writable(out / "stroke_next.csv")
        ranking = stroke_next(run, data, out)
        table = Table("image", "mean unsure", "most unsure place (x, y, side)", title="stroke next")
        for r in ranking[:10]:
            table.add_row(r["image"], f"{r['mean_unsure']:.3f}", f"{r['x']}, {r['y']}, {r['window']} px")
        console.print(table)
        console.print(f"outputs in {out} (stroke_next.csv, <image>_unsure.png)")
        return

    overrides = {"examples": examples} if examples is not None else {}
    check_writable(out / "suggestions.json")  # before the work
    result = run_suggest(data, out, SuggestConfig(k=k, patch=patch, clusters=clusters, seed=seed, **overrides,
                                                  init=str(init) if init else None, pretrain_profile=profile))
    table = Table(title=f"annotate first (of {result['candidates']} candidates)")
    for col in ("rank", "image", "score", "reason"):
        table.add_column(col)
    for r in result["ranking"][:10]:
        table.add_row(str(r["rank"]), r["image"], f"{r['score']:.3f}", r["reason"])
    console.print(table)
    console.print(f"chosen set (k={k}): {', '.join(result['chosen'])}; outputs in {out} (contact_sheet.png)")
