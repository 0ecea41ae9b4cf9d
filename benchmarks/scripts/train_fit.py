"""Per-class Dice of a run's model on chosen images of a dataset, e.g. its own annotated image (the train fit)
beside another train image (how far the fit carries).

    python benchmarks/scripts/train_fit.py RUN DATA STEM [STEM ...]
"""
from __future__ import annotations

import sys

from pscl.checkpoints import load_model
from pscl.data.folders import load_dataset
from pscl.inference.predict import segment, uses_bf16
from pscl.metrics import confusion_matrix, scores


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    run, data, *stems = sys.argv[1:]
    model, _ = load_model(run)
    ds = load_dataset(data)
    for stem in stems:
        image, mask = ds.load_pair(stem)
        labels = segment(model, image, 512, 128, device="cpu", bf16=uses_bf16("auto")).labels
        s = scores(confusion_matrix(labels, mask, ds.num_classes), ds.classes)
        print(stem, f"Dice (fg) {s['dice_fg']:.3f}", {k: round(v["dice"], 3) for k, v in s["per_class"].items()})


if __name__ == "__main__":
    main()
