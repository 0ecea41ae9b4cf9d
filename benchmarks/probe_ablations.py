"""Linear probe of the PSCL-SimCLR ablation pretrainings (MetalDAM, `quick` bench runs).

Fine-tuning erases representation differences at the `quick` budget (diagnostics §3), so the
ablations are also compared on frozen features: each pretraining of ``OUT/pretrain`` (per round,
guided by that round's annotated image) gets only its classifier trained on that image
(`pscl probe` defaults: 150 steps, 128 px crops, lr 1e-2, seed 0), scored on the val split.
Resumable: finished (init, round) pairs in ``OUT/probe-ablations.jsonl`` are skipped.

Usage: python benchmarks/probe_ablations.py DATA OUT ROUNDS
"""
import json
import sys
from pathlib import Path

from pscl.bench.spec import folder_name
from pscl.provenance import provenance
from pscl.studies.probe import ProbeConfig, linear_probe

INITS = ("random", "simclr", "pscl-simclr", "pscl-simclr:a=0", "pscl-simclr:scales=2", "pscl-simclr:sampling=random",
         "pscl-simclr:annotated_in_batch=false", "pscl-simclr:steps=600")

data, out, rounds = Path(sys.argv[1]), Path(sys.argv[2]), [int(r) for r in sys.argv[3].split(",")]
log = out / "probe-ablations.jsonl"
done = {(d["init"], d["round"]) for d in map(json.loads, log.read_text().splitlines())} if log.exists() else set()
for r in rounds:
    for init in INITS:
        if (init, r) in done:
            continue
        run = None if init == "random" else out / "pretrain" / folder_name(init) / ("" if init == "simclr" else f"round{r}")
        if run is not None and not (run / "model.pt").exists():
            print(f"[wait] {init} round {r}: no pretraining yet", flush=True)
            continue
        result = linear_probe(data, run, ProbeConfig(round=r), split="val")
        row = {"init": init, "round": r, "split": "val", "dice_fg": result["dice_fg"],
               "per_class": {c: v["dice"] for c, v in result["per_class"].items()}, **provenance()}
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(init, r, round(result["dice_fg"], 4), flush=True)
