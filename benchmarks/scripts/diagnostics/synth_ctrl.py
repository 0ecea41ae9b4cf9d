"""Control for synth_pscl.py: random init vs a short SimCLR pretraining, 1-shot, 4 seeds.

    python benchmarks/scripts/diagnostics/synth_ctrl.py ROOT   (ROOT/syn: the synthetic set synth_pscl.py made)
"""
import sys, json, torch
from pathlib import Path
from pscl.train.finetune import FinetuneConfig, finetune
from pscl.inference.evaluate import evaluate
from pscl.nn import UNet
from pscl.checkpoints import save_model
from pscl.methods import PretrainConfig
from pscl.train.pretrain import pretrain
root = Path(sys.argv[1]); data = root / "syn"
W = dict(widths=(8, 16, 32, 64), progress=False, accelerator="cpu")
torch.manual_seed(123)
save_model(root / "randinit", UNet(3, (8, 16, 32, 64)), {"norm": "batch"}, None)
if not (root / "simclr" / "model.pt").exists():
    pretrain(data, root / "simclr", PretrainConfig(method="simclr", steps=60, batch_size=8, crop=64, checkpoint_every=60, **W))
out = {}
for name in ("randinit", "simclr"):
    for seed in range(4):
        run = root / f"{name}{seed}"
        finetune(data, run, FinetuneConfig(steps=60, val_every=60, crop=64, batch_size=4, init=str(root / name),
                                           seed=seed, select="last", lr_contracting_init=1e-3, **W))
        out[f"{name}{seed}"] = round(evaluate(run, data, split="test")["dice_fg"], 3)
print(json.dumps(out))
