"""The ``pscl`` command line: parse, call the Python API, print. Nothing else lives here.

One module per group of commands: :mod:`~pscl.cli.data` (data check, data synth),
:mod:`~pscl.cli.train` (finetune, pretrain, demo), :mod:`~pscl.cli.apply` (evaluate, predict,
export, report), :mod:`~pscl.cli.studies` (probe, suggest), :mod:`~pscl.cli.bench` (bench run,
bench speed), :mod:`~pscl.cli.page` (pscl app, the page); what they share is in :mod:`~pscl.cli.common`.
"""
from __future__ import annotations

import sys

import typer

from pscl.cli.common import app, console
# each module registers its commands on app, in the order the help lists them
from pscl.cli import data, train, apply, studies, bench, page  # noqa: E402,F401,I001


def _version(value: bool) -> None:
    if value:
        from pscl import __version__
        console.print(f"pscl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Segment metal microstructures from one annotated micrograph (PSCL)."""


def main() -> None:  # console script entry
    app(prog_name="pscl")


__all__ = ["app", "main"]

if __name__ == "__main__":
    sys.exit(main())
