"""Linear probe: freeze a (pretrained) U-Net, train only the 1x1 classifier on the round's annotated
image, score on test. Isolates representation quality from fine-tuning dynamics.

Usage: python benchmarks/linear_probe.py DATA STEPS CROP INITS ROUNDS
  INITS: comma-separated pretrained runs ("{r}" is replaced by the round) or random:W1/W2/W3/W4
  ROUNDS: comma-separated rounds (the annotated image, as in fine-tuning)
Batch 8, Adam lr 1e-2 on the classifier only, BatchNorm in eval mode (pretrained statistics),
seed 0. A diagnostic: no model is selected with it.
"""
import sys, json, torch, numpy as np
from pscl.checkpoints import load_backbone, read_model_file
from pscl.data.folders import load_dataset
from pscl.data.crops import RandomCropDataset
from pscl.losses import class_weights, segmentation_loss
from pscl.nn import UNet
from pscl.inference.predict import segment
from pscl.metrics import confusion_matrix, scores
data, steps, crop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
inits = sys.argv[4].split(",")
rounds = [int(r) for r in sys.argv[5].split(",")]
ds = load_dataset(data)
test = [ds.load_pair(s) for s in ds.stems("test")]
res = {}
for init in inits:
    for r in rounds:
        torch.manual_seed(0)
        if init.startswith("random:"):
            widths = tuple(int(w) for w in init.split(":")[1].split("/"))
            model = UNet(ds.num_classes, widths)
        else:
            path = init.replace("{r}", str(r))
            widths = tuple(read_model_file(path)["widths"])
            model = UNet(ds.num_classes, widths); load_backbone(model, path)
        stems = ds.shots(1, r)
        imgs, masks = map(list, zip(*(ds.load_pair(s) for s in stems)))
        crops = RandomCropDataset(imgs, masks, crop, steps * 8, seed=0)
        w = class_weights(masks, ds.num_classes)
        model.eval()
        for p in model.parameters(): p.requires_grad_(False)
        for p in model.classifier.parameters(): p.requires_grad_(True)
        opt = torch.optim.Adam(model.classifier.parameters(), lr=1e-2)
        loader = torch.utils.data.DataLoader(crops, batch_size=8)
        for x, y in loader:
            loss = segmentation_loss(model(x), y, w)
            opt.zero_grad(); loss.backward(); opt.step()
        cm = sum(confusion_matrix(segment(model, im).labels, m, ds.num_classes) for im, m in test)
        s = scores(cm, ds.classes)
        res[f"{init.split('/')[-2] if '/' in init else init}|r{r}"] = round(s["dice_fg"], 4)
        print(init, r, round(s["dice_fg"], 4), {k: round(v["dice"], 3) for k, v in s["per_class"].items()}, flush=True)
print(json.dumps(res))
