"""The same predictions scored under the mIoU conventions segmentation papers use.

pscl scores as the PSCL paper does: one confusion matrix pooled over every pixel of the split, IoU per class,
mean over the classes (``pscl.metrics``). Published MetalDAM U-Nets report mIoU 0.67-0.70, against 0.385-0.39
for pscl's whole-train-split U-Net; before reading that gap as the model's, this scores one set of predictions
under each convention:

- ``pooled``: pscl's (split-pooled confusion; a class absent from ground truth and prediction left out);
- ``pooled, 3 main classes``: the same, over the classes that hold > 1 % of the split's pixels;
- ``per image, GT or pred``: mIoU per image over the classes in its ground truth or its prediction, then the
  mean over images (false alarms of a class the image lacks count as IoU 0);
- ``per image, GT only``: per image over the classes its ground truth holds (false alarms of absent classes
  are not counted; a common shortcut in segmentation code);
- ``per class over images holding it``: per class the mean IoU over the images whose ground truth holds it,
  then the mean over classes.

Usage: python benchmarks/scripts/metric_conventions.py DATA OUT.md LABEL=RUN_FOLDER [LABEL=RUN_FOLDER ...]
(a LABEL repeated over several runs, e.g. one per round, gives the mean over them).
"""
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from pscl.checkpoints import load_model
from pscl.data.folders import load_dataset
from pscl.files import write_text
from pscl.inference.predict import segment
from pscl.metrics import confusion_matrix, miou_over_present_classes
from pscl.provenance import provenance

CONVENTIONS = ("pooled (pscl)", "pooled, main classes", "per image, GT or pred", "per image, GT only",
               "per class over images holding it")


def iou(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class IoU, ground-truth pixels and predicted pixels of a (C, C) confusion matrix."""
    tp = np.diag(confusion).astype(float)
    truth, called = confusion.sum(1), confusion.sum(0)
    return tp / np.maximum(truth + called - tp, 1), truth, called


def conventions(per_image: list[np.ndarray]) -> dict[str, float]:
    """mIoU of one model's per-image confusion matrices under each of :data:`CONVENTIONS`."""
    pooled, truth, called = iou(sum(per_image))
    main = truth / truth.sum() > 0.01
    images = [iou(c) for c in per_image]
    holding = [[i[c] for i, t, _ in images if t[c] > 0] for c in range(len(pooled))]
    return {CONVENTIONS[0]: pooled[(truth + called) > 0].mean(),
            CONVENTIONS[1]: pooled[main].mean(),
            CONVENTIONS[2]: np.mean([i[(t + p) > 0].mean() for i, t, p in images]),
            CONVENTIONS[3]: np.mean([miou_over_present_classes(c) for c in per_image]),
            CONVENTIONS[4]: np.mean([np.mean(h) for h in holding if h])}


def main() -> None:
    data, out, pairs = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if not pairs or any("=" not in p for p in pairs):
        sys.exit("usage: python benchmarks/scripts/metric_conventions.py DATA OUT.md LABEL=RUN_FOLDER [...]")
    ds = load_dataset(data)
    test = [ds.load_pair(stem) for stem in ds.stems("test")]
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for label, run in (p.split("=", 1) for p in pairs):
        model, _ = load_model(run)
        per_image = [confusion_matrix(segment(model, image).labels, mask, ds.num_classes) for image, mask in test]
        rows[label].append(conventions(per_image))
        print(label, run, {k: round(v, 3) for k, v in rows[label][-1].items()}, flush=True)
    meta = provenance()
    lines = [f"# mIoU conventions: {ds.name}, test split\n\n"
             f"- command: `python benchmarks/scripts/metric_conventions.py {' '.join(sys.argv[1:])}`\n"
             f"- commit: {meta['commit']}\n- machine: {meta['machine']}\n- date: {meta['date']}\n"
             "- seeds: those of the runs scored (seed 0); tiled prediction, 512 px tiles, no TTA\n\n"
             f"| model | runs | {' | '.join(CONVENTIONS)} |\n|---|---|" + "---|" * len(CONVENTIONS) + "\n"]
    for label, runs in rows.items():
        lines.append(f"| {label} | {len(runs)} | "
                     + " | ".join(f"{np.mean([r[k] for r in runs]):.3f}" for k in CONVENTIONS) + " |\n")
    write_text(out, "".join(lines))
    print("".join(lines))


if __name__ == "__main__":
    main()
