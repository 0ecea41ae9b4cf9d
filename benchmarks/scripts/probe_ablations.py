"""Linear probe of a bench's pretrainings (e.g. the PSCL-SimCLR ablations, or pretraining budgets).

Fine-tuning erases representation differences at the `quick` budget (diagnostics §3), so
pretrainings are also compared on frozen features: each pretraining of ``OUT/pretrain`` (PSCL per
round, guided by that round's annotated image; label-free methods once) gets only its classifier
trained on the round's annotated image (`pscl probe` defaults: 150 steps, 128 px crops, lr 1e-2,
seed 0), scored on the val split. Resumable: finished (init, round) pairs in
``OUT/probe-ablations.jsonl`` are skipped; ``OUT/probe.md`` (mean val Dice (fg) per init over the
rounds it has, and per class) is rewritten after each probe.

Usage: python benchmarks/scripts/probe_ablations.py DATA OUT ROUNDS [INIT,INIT,...]
(INITs are bench method specs, or ``random``; default: the PSCL-SimCLR ablations.)
"""
import json
import sys
from pathlib import Path

import numpy as np

from pscl.bench.layout import BenchFolder
from pscl.files import write_text
from pscl.provenance import provenance
from pscl.studies.probe import ProbeConfig, linear_probe

ABLATIONS = ("random", "simclr", "pscl-simclr", "pscl-simclr:a=0", "pscl-simclr:scales=2", "pscl-simclr:sampling=random",
             "pscl-simclr:annotated_in_batch=false", "pscl-simclr:steps=600")


def table(rows: list[dict], command: str) -> str:
    """Mean val Dice (fg) and per-class Dice of every init over its probed rounds, as markdown."""
    inits = list(dict.fromkeys(r["init"] for r in rows))
    classes = list(rows[0]["per_class"]) if rows else []
    last = rows[-1] if rows else {}
    lines = [f"# Linear probe, val split\n\n- command: `{command}`\n- commit: {last.get('commit')}\n"
             f"- machine: {last.get('machine')}\n- date: {last.get('date')}\n- seed: 0 (probe), bench seed 0\n\n",
             "| init | rounds | val Dice (fg) | per round | " + " | ".join(classes) + " |\n",
             "|---|---|---|---|" + "---|" * len(classes) + "\n"]
    for init in inits:
        mine = sorted((r for r in rows if r["init"] == init), key=lambda r: r["round"])
        dice = [r["dice_fg"] for r in mine]
        per_class = [np.mean([r["per_class"][c] for r in mine]) for c in classes]
        lines.append(f"| {init} | {','.join(str(r['round']) for r in mine)} | {np.mean(dice):.3f} | "
                     f"{' '.join(f'{d:.3f}' for d in dice)} | " + " | ".join(f"{v:.3f}" for v in per_class) + " |\n")
    return "".join(lines)


def main() -> None:
    data, out, rounds = Path(sys.argv[1]), Path(sys.argv[2]), [int(r) for r in sys.argv[3].split(",")]
    inits = sys.argv[4].split(",") if len(sys.argv) > 4 else ABLATIONS
    command = "python benchmarks/scripts/probe_ablations.py " + " ".join(sys.argv[1:])
    log = out / "probe-ablations.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    done = {(d["init"], d["round"]) for d in rows}

    def write_table() -> None:  # the table of the inits asked, so that it matches its command line
        write_text(out / "probe.md", table([x for x in rows if x["init"] in inits], command))

    for r in rounds:
        for init in inits:
            if (init, r) in done:
                continue
            run = None if init == "random" else BenchFolder(out).pretraining(init, f"round{r}")
            if run is not None and not (run / "model.pt").exists():
                print(f"[wait] {init} round {r}: no pretraining yet", flush=True)
                continue
            result = linear_probe(data, run, ProbeConfig(round=r), split="val")
            row = {"init": init, "round": r, "split": "val", "dice_fg": result["dice_fg"],
                   "per_class": {c: v["dice"] for c, v in result["per_class"].items()}, **provenance()}
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            rows.append(row)
            write_table()  # after each probe, so a killed run leaves its table
            print(init, r, round(result["dice_fg"], 4), flush=True)
    if rows:  # also when every probe was cached
        write_table()


if __name__ == "__main__":
    main()
