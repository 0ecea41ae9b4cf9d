"""How well PSCL's class guidance works, measured on labelled data (a diagnostic, never for selection).

The labelled train images other than the annotated one stand in for the unlabelled micrographs,
so every sampled cell's true class is known. Over ``steps`` guided batches (the annotated crop
first, as in pretraining) and at every scale, per class:

* ``template_purity``: share of the class's templates whose cell the class covers at least half of;
* ``templates``: templates per step (a class with few pure cells gets fewer);
* ``precision``: share of the cells matched to the class (and kept) that truly are of it;
* ``recall``: correct matches per crop that holds the class with at least K_s pure cells, over K_s;
* ``own_class_negatives``: for anchors of the class, the share of their negatives in the patch
  loss that truly are of the anchor's class, with the class mask (``masked``) and without it
  (``instance``: plain instance discrimination, every other cell a negative).

Compare the paper's protocol (``template_purity=0, annotated_crop='uniform', decline=False``) with
the current defaults on the same features: :func:`compare_protocols`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pscl.data.crops import GuidedBatches
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.errors import DataError
from pscl.run_folder import RunFolder
from pscl.data.views import cell_coverage, make_views

PAPER_PROTOCOL = {"template_purity": 0.0, "annotated_crop": "uniform", "decline": False}


def _load_method(config, init: str | Path | None):
    """A PSCL method for ``config``; with ``init``, the weights (heads included) of a pretraining run's
    last Lightning checkpoint."""
    from pscl.methods import build_method
    method = build_method(config)
    if init:
        ckpt = RunFolder(init).last_checkpoint
        if not ckpt.exists():
            raise FileNotFoundError(f"{ckpt}: the diagnostic needs the pretraining's heads (its last checkpoint)")
        state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
        own = method.state_dict()
        method.load_state_dict({k: v for k, v in state.items() if k in own and v.shape == own[k].shape}, strict=False)
    return method.eval()


def _config(init, profile: str | None, options: dict, seed: int, round_index: int):
    """PSCL-SimCLR settings: a pretraining run's own (sizes, options) when given, else the profile's;
    ``options`` on top (the protocol under test)."""
    from dataclasses import fields

    from pscl.methods import PretrainConfig, pretrain_config
    if init is None:
        return pretrain_config(profile, method="pscl-simclr", options=options, seed=seed, round=round_index,
                               accelerator="cpu", progress=False)
    recorded = RunFolder(init).read_config()
    if recorded is None:
        raise DataError(f"{init}: no config.json (not a pretraining run folder)")
    names = {f.name for f in fields(PretrainConfig)} - {"method", "options", "annotated", "classes", "round", "seed"}
    kept = {k: v for k, v in recorded.items() if k in names}
    recorded_options = {k: v for k, v in recorded.get("options", {}).items()}
    return PretrainConfig(**{**kept, "accelerator": "cpu", "progress": False}, method="pscl-simclr", seed=seed,
                          round=round_index, options={**recorded_options, **options})


def _batches(ds: DatasetFolder, config, hp, steps: int):
    """Guided batches whose 'unlabelled' crops come from labelled train images, masks kept."""
    annotated = config.annotated
    others = [s for s in ds.stems("train") if s not in annotated]
    if not others:
        raise ValueError(f"{ds.root}: the diagnostic needs labelled train images besides the annotated one")
    a_images, a_masks = map(list, zip(*(ds.load_pair(s) for s in annotated)))
    o_images, o_masks = map(list, zip(*(ds.load_pair(s) for s in others)))
    cover = None if hp.annotated_crop == "uniform" else dict(
        num_classes=ds.num_classes, candidates=hp.crop_candidates, min_cells=hp.top_k, purity=hp.template_purity)
    guided = GuidedBatches(a_images, a_masks, o_images, config.crop, config.batch_size, steps, seed=config.seed,
                           cover=cover)
    # the same crop stream, with masks: RandomCropDataset draws by (seed, index) alone
    from pscl.data.crops import RandomCropDataset
    labelled_others = RandomCropDataset(o_images, o_masks, config.crop, steps * config.batch_size, config.seed + 1,
                                        augment=False)
    for i in range(steps):
        batch = guided[i]
        masks = [labelled_others[i * config.batch_size + j][1] for j in range(config.batch_size - 1)]
        yield batch, torch.stack([batch["mask"][0], *masks])


@torch.no_grad()
def measure_guidance(data: str | Path | DatasetFolder, init: str | Path | None, steps: int = 30,
                     options: dict | None = None, profile: str | None = "quick", round_index: int = 0,
                     seed: int = 0) -> dict:
    """Per scale and class, the guidance figures of the module doc for one protocol (``options``
    override the PSCL-SimCLR options, e.g. :data:`PAPER_PROTOCOL`)."""
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    config = _config(init, profile, dict(options or {}), seed, round_index)
    config.classes, config.annotated = list(ds.classes), ds.annotated(1, round_index)
    method = _load_method(config, init)
    hp, c = method.hp, ds.num_classes
    g = torch.Generator().manual_seed(seed)
    tally = {s: {k: np.zeros(c) for k in ("pure", "templates", "matched", "correct", "possible", "got",
                                           "neg_masked", "own_masked", "neg_instance", "own_instance")}
             for s in hp.scales}
    for batch, masks in _batches(ds, config, hp, steps):
        v1, v2, geo = make_views(batch["image"], method.view_config, generator=g)
        out = method.backbone(v2, return_features=True)
        for s in hp.scales:
            e2 = method.embed_all(out.decoder[s], method.dense_heads[s])
            grid = int(round(e2.shape[-1] ** 0.5))
            picked = method.pick_cells(s, e2, geo, batch)
            cover = cell_coverage(masks, c, grid, geo).flatten(2)  # (B, C, N) in view 2's frame
            truth = cover.argmax(1)  # (B, N) majority class of every cell
            _count(tally[s], picked, cover, truth, c, method.per_class(s))
    return {"protocol": {k: getattr(hp, k) for k in ("template_purity", "annotated_crop", "decline", "margin")},
            "init": str(init) if init else None, "round": round_index, "annotated": config.annotated, "steps": steps,
            "classes": list(ds.classes), "scales": {s: _rates(t, ds.classes, steps) for s, t in tally.items()}}


def _count(t: dict, picked, cover: torch.Tensor, truth: torch.Tensor, c: int, k: int) -> None:
    cells, keep = picked.cells2, picked.keep
    labels = picked.classes  # (T,)
    b = cells.shape[0]
    cell_truth = truth.gather(1, cells)  # (B, T)
    row0 = keep[0]
    own_cover = cover[0][labels, cells[0]]  # template cells' coverage of their class
    np.add.at(t["templates"], labels[row0].numpy(), 1)
    np.add.at(t["pure"], labels[row0 & (own_cover >= 0.5)].numpy(), 1)
    rest = keep[1:]
    lab = labels[None].expand(b - 1, -1)[rest]
    np.add.at(t["matched"], lab.numpy(), 1)
    np.add.at(t["correct"], lab[cell_truth[1:][rest] == lab].numpy(), 1)
    pure = (cover[1:] >= 0.75).sum(2)  # (B-1, C) pure cells of each class in each crop
    t["possible"] += ((pure >= k).sum(0) * k).numpy()
    hits = torch.zeros(b - 1, c)
    for img in range(b - 1):
        sel = rest[img] & (cell_truth[1 + img] == labels)
        hits[img] = torch.bincount(labels[sel], minlength=c)[:c].float()
    t["got"] += (torch.minimum(hits, torch.full_like(hits, k)) * (pure >= k)).sum(0).numpy()
    # negatives of every kept anchor: all other kept cells (both views hold the same cells)
    flat_keep = keep.reshape(-1)
    pseudo = labels.repeat(b)[flat_keep]
    true = cell_truth.reshape(-1)[flat_keep]
    same_true = true[:, None] == true[None]
    other = ~torch.eye(len(true), dtype=torch.bool)
    masked = other & (pseudo[:, None] != pseudo[None])
    for name, negatives in (("masked", masked), ("instance", other)):
        np.add.at(t[f"neg_{name}"], true.numpy(), negatives.sum(1).numpy())
        np.add.at(t[f"own_{name}"], true.numpy(), (negatives & same_true).sum(1).numpy())


def _rates(t: dict, classes: list[str], steps: int) -> dict:
    def ratio(a, b):
        return [float(x / y) if y else None for x, y in zip(a, b)]
    per = {"template_purity": ratio(t["pure"], t["templates"]), "templates": (t["templates"] / steps).tolist(),
           "precision": ratio(t["correct"], t["matched"]), "recall": ratio(t["got"], t["possible"]),
           "own_class_negatives_masked": ratio(t["own_masked"], t["neg_masked"]),
           "own_class_negatives_instance": ratio(t["own_instance"], t["neg_instance"])}
    return {name: {key: values[i] for key, values in per.items()} for i, name in enumerate(classes)}


def compare_protocols(data: str | Path, init: str | Path | None, steps: int = 30, profile: str | None = "quick",
                      round_index: int = 0, seed: int = 0) -> dict:
    """:func:`measure_guidance` for the paper's protocol and for the current defaults, same features."""
    return {name: measure_guidance(data, init, steps, options, profile, round_index, seed)
            for name, options in (("paper", PAPER_PROTOCOL), ("current", {}))}


def guidance_table(result: dict) -> str:
    """Markdown: one row per (protocol, scale, class)."""
    lines = ["| protocol | scale | class | templates/step | template purity | precision | recall "
             "| own-class negatives (masked / instance) |", "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "" if v is None else f"{v:.2f}"  # noqa: E731
    for name, r in result.items():
        for s, per in r["scales"].items():
            for cls, m in per.items():
                lines.append(f"| {name} | {s} | {cls} | {m['templates']:.1f} | {fmt(m['template_purity'])} "
                             f"| {fmt(m['precision'])} | {fmt(m['recall'])} "
                             f"| {fmt(m['own_class_negatives_masked'])} / {fmt(m['own_class_negatives_instance'])} |")
    return "\n".join(lines) + "\n"
