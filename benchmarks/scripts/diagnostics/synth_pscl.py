"""Does a short PSCL pretraining improve 1-shot dice_fg over scratch on synthetic data?"""
import sys, json, time
from pathlib import Path
from pscl import synthesize_dataset
from pscl.train.finetune import FinetuneConfig, finetune
from pscl.inference.evaluate import evaluate
from pscl.methods import PretrainConfig
from pscl.train.pretrain import pretrain
root = Path(sys.argv[1]); root.mkdir(parents=True, exist_ok=True)
pre_steps, ft_steps = int(sys.argv[2]), int(sys.argv[3])
data = root / "syn"
if not data.exists():
    synthesize_dataset(data, n=8, seed=3, size=160, n_unlabeled=16)
W = dict(widths=(8, 16, 32, 64), progress=False, accelerator="cpu")
t = time.time()
if not (root / "pre" / "model.pt").exists():
    pretrain(data, root / "pre", PretrainConfig(method="pscl-simclr", steps=pre_steps, batch_size=8, crop=64,
                                                 checkpoint_every=pre_steps, options={"top_k": 2}, **W))
print("pretrain", time.time() - t)
out = {}
for seed in range(int(sys.argv[4]) if len(sys.argv) > 4 else 2):
    for name, init in (("scratch", None), ("pscl", str(root / "pre"))):
        run = root / f"{name}{seed}_{ft_steps}"
        finetune(data, run, FinetuneConfig(steps=ft_steps, val_every=ft_steps, crop=64, batch_size=4, init=init,
                                           seed=seed, select="last", lr_contracting_init=float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4, **W))
        out[f"{name}{seed}"] = evaluate(run, data, split="test")["dice_fg"]
print(json.dumps(out))
