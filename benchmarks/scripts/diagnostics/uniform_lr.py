"""Diagnostic: fine-tune from a pretrained init with lr 1e-3 everywhere (no split lr), quick budget, round R."""
import sys, json
from pscl.train.finetune import FinetuneConfig, finetune
from pscl.inference.evaluate import evaluate
from pscl.profiles import profile_settings
init, out, r, lrc = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
cfg = FinetuneConfig(round=r, init=init, lr_contracting_init=lrc, progress=False, **profile_settings("quick", "finetune"))
s = finetune("../shared/data/metaldam", out, cfg)
e = evaluate(out, "../shared/data/metaldam", split="test")
print(json.dumps({"init": init, "round": r, "lr_contracting": lrc, "val": s["val_dice_fg"], "test": e["dice_fg"],
                  "per_class": {k: v["dice"] for k, v in e["per_class"].items()}}))
