"""Fine-tuning convergence: val Dice (fg) and mIoU against steps, 1 shot and the whole train split.

    python benchmarks/scripts/convergence.py DATA OUT [--steps 6400] [--every 400] [--runs full,round0]
        [--profile quick] [--crop 128] [--batch 8] [--widths 16,32,64,128] [--lr-schedule constant|poly]
        [--suffix NAME] [--threads 1]

With a constant learning rate the first N steps of one long run are exactly a run of N steps: one
run per setting gives the whole curve (validation every ``--every`` steps). With ``poly`` the
curve is that of one budget (``--steps``) only. ``--suffix`` names variants (``full-crop256``). Each run
is resumable (rerun the same command); OUT/<run>.json and OUT/curves.md (all runs of OUT) are
written after every run. Each run's val-selected model is scored on test. Runs of one OUT may go
in parallel processes (one --runs each).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from pscl.api import evaluate, finetune, finetune_config
from pscl.bench.spec import parse_value
from pscl.files import write_text
from pscl.provenance import provenance


def curve(run: Path) -> list[dict]:
    """(step, val_dice_fg, val_miou) rows from every metrics file of a run (resumed runs log anew)."""
    rows = {}
    for log in sorted(run.glob("logs*/metrics.csv")):
        with open(log) as f:
            for row in csv.DictReader(f):
                if row.get("val_dice_fg"):
                    rows[int(row["step"]) + 1] = {"step": int(row["step"]) + 1, "val_dice_fg": float(row["val_dice_fg"]),
                                                  "val_miou": float(row["val_miou"]) if row.get("val_miou") else None}
    return [rows[k] for k in sorted(rows)]


def write_curves(out: Path) -> None:
    """OUT/curves.md from every OUT/<run>.json."""
    lines = ["# Fine-tuning convergence\n"]
    for path in sorted(out.glob("*.json")):
        name, r = path.stem, json.loads(path.read_text())
        lines.append(f"\n## {name}\n\n- command: `{r['command']}`\n- commit: {r['commit']}\n- machine: {r['machine']}\n"
                     f"- date: {r['date']}\n- seed: 0\n")
        test = r.get("test")
        lines.append(f"\n{r['config_summary']}\n")
        if test:
            lines.append(f"\ntest (val-selected model, {r['selected']}): Dice (fg) {test['dice_fg']:.3f}, "
                         f"mIoU {test['miou']:.3f}\n")
        lines.append("\n| step | val Dice (fg) | val mIoU |\n|---|---|---|\n")
        lines += [f"| {p['step']} | {p['val_dice_fg']:.3f} | {p['val_miou'] if p['val_miou'] is None else round(p['val_miou'], 3)} |\n"
                  for p in r["curve"]]
    write_text(out / "curves.md", "".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=6400)
    parser.add_argument("--every", type=int, default=400)
    parser.add_argument("--runs", default="full,round0")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--widths", default=None)
    parser.add_argument("--lr-schedule", default="constant")
    parser.add_argument("--suffix", default="")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any other fine-tuning setting, e.g. --set rare_crops=0.3 (numbers or words)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--summarise", action="store_true", help="only write the curves so far from the logs")
    args = parser.parse_args()
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    record = {"command": "python " + " ".join(sys.argv), **provenance()}
    for kind in args.runs.split(","):
        name = kind + (f"-{args.suffix}" if args.suffix else "")
        run = args.out / "runs" / name
        extra = {k: v for k, v in dict(**{kv.split("=")[0]: parse_value(kv.split("=", 1)[1]) for kv in args.set},
                                       crop=args.crop, batch_size=args.batch,
                                       widths=tuple(int(w) for w in args.widths.split(",")) if args.widths else None
                                       ).items() if v}
        config = finetune_config(args.profile, steps=args.steps, val_every=args.every, progress=False, seed=0,
                                 all_train=kind == "full", round=0 if kind == "full" else int(kind.removeprefix("round")),
                                 lr_schedule=args.lr_schedule, **extra)
        if args.summarise:
            partial = {**record, "curve": curve(run), "selected": None, "test": None, "partial": True,
                       "config_summary": f"{name}: partial, {args.steps} steps planned (profile {args.profile})"}
            write_text(args.out / f"{name}.json", json.dumps(partial, indent=1))
            write_curves(args.out)
            continue
        summary = finetune(args.data, run, config, resume=True)
        test = evaluate(run, args.data, split="test")
        result = {**record, "curve": curve(run), "selected": summary["selected"],
                         "test": {k: test[k] for k in ("dice_fg", "miou", "dice_all", "acc")},
                         "per_class_test": test.get("per_class"),
                         "config_summary": f"{'all train images' if kind == 'full' else '1 annotated image, ' + kind}; "
                                           f"profile {args.profile}, {args.steps} steps, crop {config.crop}, "
                                           f"batch {config.batch_size}, widths {list(config.widths)}, lr {config.lr} "
                                           f"({config.lr_schedule}), rare crops {config.rare_crops}, "
                                           f"precision {config.precision}"}
        write_text(args.out / f"{name}.json", json.dumps(result, indent=1))
        write_curves(args.out)


if __name__ == "__main__":
    main()
