"""The ``pscl`` command line: parse, call the Python API, print. Nothing else lives here.

One module per group of commands: :mod:`~pscl.cli.data` (data check, data synth),
:mod:`~pscl.cli.train` (finetune, pretrain, demo), :mod:`~pscl.cli.apply` (evaluate, predict,
export, report), :mod:`~pscl.cli.studies` (probe, suggest), :mod:`~pscl.cli.bench` (bench run,
bench speed); what they share is in :mod:`~pscl.cli.common`.
"""
from __future__ import annotations

import sys
import types

import typer

from pscl.cli.common import app, console
# each module registers its commands on app, in the order the help lists them
from pscl.cli import data, train, apply, studies, bench  # noqa: E402,F401,I001


def _version(value: bool) -> None:
    if value:
        from pscl import __version__
        console.print(f"pscl {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Segment metal microstructures from one annotated micrograph (PSCL)."""


def command():
    """The click command tree of the app, with help that reads plainly: arguments shown as DATA, RUN,
    ...; flags without a ``<bool>`` type."""
    import typer.main
    root = typer.main.get_command(app)

    def polish(cmd) -> None:
        for param in cmd.params:
            if param.param_type_name == "argument" and param.metavar is None:
                param.metavar = param.name.upper()
            elif getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        cmd.collect_usage_pieces = types.MethodType(_usage_pieces, cmd)
        cmd.get_help_option = types.MethodType(_help_option, cmd)
        for sub in getattr(cmd, "commands", {}).values():
            polish(sub)
    polish(root)
    return root


def _usage_pieces(cmd, ctx) -> list[str]:
    """The usage line's words: ``[OPTIONS] DATA [SOURCE]`` (required arguments bare, optional ones in brackets)."""
    pieces = [cmd.options_metavar] if cmd.options_metavar else []
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            pieces.append(param.metavar if param.required else f"[{param.metavar}]")
    if getattr(cmd, "subcommand_metavar", None):
        pieces.append(cmd.subcommand_metavar)
    return pieces


def _help_option(cmd, ctx):
    option = type(cmd).get_help_option(cmd, ctx)
    if option is not None:
        option.metavar = ""
    return option


def main() -> None:  # console script entry
    import warnings

    from pscl.cli.common import show_notes
    with warnings.catch_warnings():
        show_notes()
        command()(prog_name="pscl")


__all__ = ["app", "main"]

if __name__ == "__main__":
    sys.exit(main())
