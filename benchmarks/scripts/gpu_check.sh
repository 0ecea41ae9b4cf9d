#!/usr/bin/env bash
# GPU check: scratch, SimCLR and PSCL-SimCLR on MetalDAM round 0 at the `paper` profile's sizes
# (widths 32..256, 376 px crops, batch 16 / 8), with budgets cut so the whole check fits about
# 8 minutes on one H100/H200 (bf16 via --precision auto). Writes one results folder:
#   OUT/{pretrain-simclr,pretrain-pscl,ft-scratch,ft-simclr,ft-pscl}/ and OUT/summary.json
# Usage: bash benchmarks/scripts/gpu_check.sh [DATA] [OUT] [PRETRAIN_STEPS] [FINETUNE_STEPS]
# Untested on a GPU so far: the step budgets are estimates; each stage is cut by `timeout`.
set -euo pipefail
DATA=${1:-../shared/data/metaldam}
OUT=${2:-gpu-check}
PRE=${3:-1500}
FT=${4:-1000}
PSCL=${PSCL:-pscl}
mkdir -p "$OUT"
common=(--profile paper --accelerator auto --precision auto --no-progress)
t0=$(date +%s)
timeout 150 "$PSCL" pretrain "$DATA" --method simclr --steps "$PRE" "${common[@]}" --out "$OUT/pretrain-simclr"
timeout 200 "$PSCL" pretrain "$DATA" --method pscl-simclr --round 0 --steps "$PRE" "${common[@]}" --out "$OUT/pretrain-pscl"
for run in scratch simclr pscl; do
  init=()
  [ "$run" = simclr ] && init=(--init "$OUT/pretrain-simclr")
  [ "$run" = pscl ] && init=(--init "$OUT/pretrain-pscl")
  timeout 60 "$PSCL" finetune "$DATA" --round 0 --steps "$FT" --val-every 250 "${init[@]}" "${common[@]}" --out "$OUT/ft-$run"
  "$PSCL" evaluate "$OUT/ft-$run" "$DATA" --split test > /dev/null
done
python3 - "$OUT" "$t0" <<'PY'
import json, sys, time
from pathlib import Path
out, t0 = Path(sys.argv[1]), float(sys.argv[2])
rows = {}
for run in ("scratch", "simclr", "pscl"):
    f = next((out / f"ft-{run}").glob("eval_*_test.json"))
    r = json.loads(f.read_text())
    rows[run] = {k: r[k] for k in ("dice_fg", "miou", "acc")}
summary = {"seconds": time.time() - t0, "results": rows}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(summary, indent=1))
PY
