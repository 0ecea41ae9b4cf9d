"""What every command of the CLI shares: the app, the consoles, the error rule, the lazy API, options."""
from __future__ import annotations

import types
import warnings
from functools import wraps

import typer
from typer.core import TyperGroup
from rich.console import Console
from rich.table import Table

import pscl
from pscl.errors import DataError, DataWarning
from pscl.profiles import PROFILES


# the package's front door loads pscl.api on first use (pscl.__getattr__), so `pscl predict --onnx`
# and `pscl report` run without torch
api = pscl

HELP = {"help_option_names": ["-h", "--help"]}


class PlainHelp(TyperGroup):
    """A command group whose help reads plainly: arguments shown as DATA, RUN, ... and bare in the usage
    line when required (``[SOURCE]`` when optional); flags without a ``<bool>`` type."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for cmd in [self, *(c for c in self.commands.values() if not isinstance(c, TyperGroup))]:
            for param in cmd.params:  # (a sub-group of this class does its own commands)
                if param.param_type_name == "argument" and param.metavar is None:
                    param.metavar = param.name.upper()
                elif getattr(param, "is_flag", False) and param.metavar is None:
                    param.metavar = ""
            cmd.get_help_option = types.MethodType(_help_option, cmd)
            if cmd is not self:
                cmd.collect_usage_pieces = types.MethodType(_usage_pieces, cmd)


def _usage_pieces(cmd, ctx) -> list[str]:
    pieces = [cmd.options_metavar] if cmd.options_metavar else []
    for param in cmd.get_params(ctx):
        if param.param_type_name == "argument":
            pieces.append(param.metavar if param.required else f"[{param.metavar}]")
    return pieces


def _help_option(cmd, ctx):
    option = type(cmd).get_help_option(cmd, ctx)
    if option is not None:
        option.metavar = ""
    return option


app = typer.Typer(cls=PlainHelp, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, context_settings=HELP,
                  help="Segment metal microstructures from one annotated micrograph (PSCL).")
console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages carry paths: never break them


def errors_exit(fn):
    """Bad input ends in one clear message naming the file and problem, and exit status 1; Ctrl-C
    in a short note (exit 130): every output is written atomically, runs resume."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with warnings.catch_warnings():
                show_notes()
                return fn(*args, **kwargs)
        except (DataError, ValueError, FloatingPointError) as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1)
        except OSError as exc:  # a disk that is full or refuses writes, mid-way: one line naming the path
            where = f"{exc.filename}: " if exc.filename else ""
            err.print(f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            err.print("interrupted; nothing half-written is left. A training run continues with the same "
                      "command and --resume.", highlight=False)
            raise typer.Exit(130)
    return wrapper


def show_notes() -> None:
    """Inside ``warnings.catch_warnings()``: a :class:`DataWarning` (something skipped in the input) prints as
    one ``note:`` line; the warnings of the libraries training runs on (Lightning, torch) are not shown."""
    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, DataWarning):
            err.print(f"[yellow]note:[/] {message}", highlight=False)
        else:
            default(message, category, filename, lineno, file, line)
    warnings.showwarning = show
    warnings.simplefilter("always", DataWarning)
    for module in ("lightning", "pytorch_lightning", "torch", "lightning_fabric"):
        warnings.filterwarnings("ignore", module=module + r"(\..*)?")


def ints(text: str, option: str = "--widths") -> tuple[int, ...]:
    """Comma-separated integers of an option (``--widths 16,32,64,128``), or a ValueError naming it."""
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
    if "miou_per_image" in result:  # for comparison with papers that average per image (pscl.metrics.score_split)
        console.print(f"miou per image, classes in its mask {result['miou_per_image']:.4f}")


PRECISION = typer.Option("auto", help="auto: bf16-mixed on GPUs and on CPUs with AMX or AVX512-BF16, "
                                         "fp32 elsewhere; or 32-true, bf16-mixed")
PROFILE = typer.Option("quick", help="budget preset (" + ", ".join(PROFILES) + "): quick for a 2-core CPU, paper for "
                                         "a GPU; options below override it")


def profile_option(what: str, key: str, stage: str = "finetune"):
    """An option whose default may come from --profile; the help lists each profile's value."""
    from pscl.profiles import profile_settings

    def shown(value) -> str:
        return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else f"{value:g}" if isinstance(value, float) else str(value)
    values = [f"{name} {shown(profile_settings(name, stage)[key])}" for name in PROFILES
              if key in profile_settings(name, stage)]
    return typer.Option(None, help=f"{what} (from --profile: {', '.join(values)})", show_default=False)


SEED = typer.Option(0, help="random seed (initialisation, crops, augmentation): a run is reproduced by its seed")
ACCELERATOR = typer.Option("auto", help="auto (a CUDA GPU if there is one, else the CPU), cpu, gpu or cuda")
DEVICES = typer.Option("1", help="how many devices (GPUs, or CPU processes) train together, each on its own crops "
                                 "(DDP); auto: every GPU")
RESUME = typer.Option(False, "--resume", help="continue the run in --out from its last checkpoint (same settings)")
OVERWRITE = typer.Option(False, "--overwrite", help="replace the run already in --out")
TILE = typer.Option(512, help="tile side in px (memory grows with it)")
OVERLAP = typer.Option(128, help="overlap of neighbouring tiles in px (blended)")
PREDICT_PRECISION = typer.Option("auto", help="auto: bf16 autocast where the hardware has it (masks may differ from "
                                                "fp32 on ~0.1 % of pixels); 32-true: fp32, the same on every CPU")


