"""`pscl bench run` (the paper's protocol on a dataset folder) and `pscl bench speed`."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from pscl.cli.common import HELP, PlainHelp, app, console, errors_exit, ints

bench_app = typer.Typer(cls=PlainHelp, no_args_is_help=True, context_settings=HELP,
                        help="Benchmarks: the paper's protocol over methods and rounds; step speed.")
app.add_typer(bench_app, name="bench")


def _command() -> str:
    return "pscl " + " ".join(sys.argv[1:])


@bench_app.command("run")
@errors_exit
def bench_run(data: Path = typer.Argument(..., help="dataset folder"),
              out: Path = typer.Option(..., "--out", help="bench folder (resumable: a rerun skips what is done)"),
              methods: str = typer.Option("scratch,full", help="comma-separated methods; variants as NAME:key=value, "
                                                                 "e.g. pscl-simclr:a=0 or pscl-simclr:scales=2"),
              shots: int = 1, rounds: int = 5, profile: str = "quick", seed: int = 0, progress: bool = False,
              pick: str = typer.Option("random", help="random: the rounds only; suggest: also `pscl suggest`'s pick"),
              only_rounds: str = typer.Option("", help="run just these rounds, e.g. 3,4 (two processes with "
                                                       "disjoint sets share one --out; the report covers all)"),
              report_only: bool = typer.Option(False, "--report-only",
                                               help="rebuild report and figure from OUT's results; run nothing")) -> None:
    """Run the paper's protocol (resumable) and write report.md, results.json and figure.png."""
    if report_only:
        from pscl.bench import rebuild_report
        from pscl.bench.layout import BenchFolder
        rebuild_report(data, out)
        console.print(f"written: {BenchFolder(out).report}")
        return
    from pscl.bench import run_bench
    from pscl.bench.layout import BenchFolder
    subset = list(ints(only_rounds, "--only-rounds")) if only_rounds.strip() else None
    run_bench(data, out, methods.split(","), shots=shots, rounds=rounds, profile=profile, seed=seed,
              progress=progress, log=console.print, command=_command(), pick=pick, only_rounds=subset)
    console.print(BenchFolder(out).report.read_text())


@bench_app.command("speed")
@errors_exit
def bench_speed(out: Path = typer.Option(..., "--out", help="folder for speed.md and speed.json"),
                methods: str = typer.Option("simclr,pscl-simclr", help="pretraining methods of the rows"),
                settings: str = typer.Option("quick,paper", help="size settings (quick, paper)"),
                paper_methods: Optional[str] = typer.Option(None, help="methods of the slow paper-size rows "
                                                                      "(default: --methods)"),
                modes: str = typer.Option("fp32,default", help="fp32 (NCHW), fp32-cl (fp32 channels_last), "
                                                                 "default (what a run uses here)")) -> None:
    """Step times, FLOPs, GFLOP/s and peak memory of pretraining, fine-tuning and prediction on this machine."""
    from pscl.bench.speed import write_speed
    from pscl.methods import METHODS
    chosen = methods.split(",")
    unknown = [m for m in chosen if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown pretraining method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    console.print(write_speed(out, chosen, settings.split(","), paper_methods.split(",") if paper_methods else None,
                              _command(), log=console.print, modes=modes.split(",")))
