"""Fine-tuning (or supervised training from scratch) on K annotated images, with Lightning: random
square crops, flips, rot90 and photometric augmentation; loss (1 - d) class-weighted CE + d soft Dice
over the foreground classes; Adam. The model is selected on the val split (best ``dice_fg``) or is
the last one, never on test.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader

from pscl.checkpoints import load_backbone, load_model, read_model_file, save_model
from pscl.data.crops import RandomCropDataset, stream_loader
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.orientation import ORIENTATIONS, resolve_orientation
from pscl.errors import DataError, DataWarning
from pscl.losses import class_counts, class_weights
from pscl.nn import UNet
from pscl.nn.unet import split_norm
from pscl.profiles import profile_settings
from pscl.run_folder import RunFolder
from pscl.train.guard import guarded_fit
from pscl.train.holdout import holdout_split
from pscl.train.module import SegmentationModule, WholeImages, score_prefix  # noqa: F401 (re-exported)
from pscl.runtime import RuntimeConfig, trainer_devices
from pscl.train.trainer import fit, selected_checkpoint


LR_SCHEDULES = ("constant", "poly")
# val: the best Dice (fg) on the val split's masks (the lab protocol); last: the last step (no val masks needed)
SELECT = ("val", "last")


@dataclass
class FinetuneConfig(RuntimeConfig):
    """Everything that defines a fine-tuning run; saved with its checkpoints and results."""

    shots: int = 1
    round: int = 0
    all_train: bool = False  # train on the whole train split (the upper reference)
    stems: list[str] | None = None  # explicit annotated images (overrides shots/round)
    init: str | None = None  # a pretraining (or fine-tuning) run to start from
    steps: int = 600
    batch_size: int = 8
    crop: int = 128
    lr: float = 1e-3
    lr_contracting_init: float | None = None  # with init: the contracting path's lr (None: lr)
    # "constant", or "poly": every lr times (1 - step / steps)^0.9 (nnU-Net's schedule), which lets a
    # long run settle instead of ending on a noisy step
    lr_schedule: str = "constant"
    # cross-entropy weight w_c ∝ (pixel share of c)^(-power): 0.5 by default, 0 = unweighted CE
    class_weight_power: float = 0.5
    dice_weight: float = 0.5  # loss = (1 - d) CE + d soft Dice (foreground classes)
    # weight of the label-free affinity loss (pscl.losses.affinity_loss): carries strokes out to phase borders;
    affinity: float = 0.0  # off by default: it helped strokes of wide phases and hurt thin ones (benchmarks/strokes)
    widths: tuple[int, ...] = (32, 64, 128, 256)
    norm: str = "batch"
    jitter: float = 0.1
    # strong photometric augmentation of the labelled crops (pscl.data.photometric: brightness, contrast, gamma,
    # blur, noise; each effect with this probability); 0 = the mild jitter only
    photometric: float = 0.8
    # semi-supervised fine-tuning (pscl.train.semi): an EMA teacher's confident labels of unlabelled crops
    # teach the student on strong views of them
    semi: bool = False
    semi_weight: float = 1.0  # weight of the unlabelled loss once ramped up
    semi_threshold: float = 0.9  # confidence threshold of the most confident class (its cap)
    semi_floor: float = 0.6  # lowest base threshold (the self-adaptive one starts at 1/C)
    semi_class_thresholds: bool = True  # lower thresholds for classes the teacher is less sure of (False: the base)
    # supervised-only steps before the teacher labels anything (then it is the student); -1: half the steps
    semi_start: int = -1
    semi_rampup: int = 0  # steps of the linear ramp (0: a quarter of the steps)
    semi_ema: float = 0.99  # teacher momentum
    semi_batch: int = 0  # unlabelled crops per step (0: batch_size)
    # distribution alignment: the teacher's probabilities rescaled so that its pseudo-labels keep the annotated
    # image's class shares (pscl.train.semi.DistributionAlignment)
    semi_align: bool = False
    # with semi_align: align to (1 - mix) x the annotated image's shares + mix x the warmed-up teacher's own
    semi_align_mix: float = 0.0  # (pscl.train.semi.DistributionAlignment)
    # with select "last": hold a fifth of the annotation out and roll back to the pre-semi model when
    # self-training lowered its Dice (pscl.train.guard)
    semi_guard: bool = True
    # fine-tune this many seeds (seed, seed + 1, ...) in RUN/seed<S>/ and keep the member best on val: on one
    # annotated image the random initialisation moves test Dice (fg) by as much as the method does
    seeds: int = 1
    val_every: int = 150
    select: str = "val"  # one of SELECT
    # the flips and quarter turns of training crops and TTA: auto (from the annotation's layout), free, fixed
    orientation: str = "auto"  # (pscl.data.orientation)
    geometry: str = ""  # what orientation resolved to for the annotated images (filled in by finetune)
    dataset: str = ""
    annotated: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.select not in SELECT:
            raise ValueError(f"select must be one of {', '.join(SELECT)}, got {self.select!r}")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {', '.join(ORIENTATIONS)}, got {self.orientation!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        self.check_positive("steps", "batch_size", "crop", "val_every", "shots", "seeds")
        self.check_runtime()
        inf = float("inf")
        for name, low, high, ends in (("dice_weight", 0, 1, "[]"), ("class_weight_power", 0, inf, "[)"),
                                      ("affinity", 0, inf, "[)"), ("photometric", 0, 1, "[]"),
                                      ("semi_threshold", 0, 1, "(]"), ("semi_ema", 0, 1, "[)"), ("semi_weight", 0, inf, "[)"),
                                      ("semi_floor", 0, self.semi_threshold, "[]"), ("semi_align_mix", 0, 1, "[]")):
            self.check_range(name, low, high, ends)
        if self.lr_contracting_init is not None:  # None: lr
            self.check_range("lr_contracting_init", 0, inf, "()")
        if not -1 <= self.semi_start < self.steps:
            raise ValueError(f"semi_start must lie in [0, steps) or be -1 (half the steps), got {self.semi_start}")
        self.widths = tuple(int(w) for w in self.widths)
        split_norm(self.norm)

    @property
    def guarded(self) -> bool:
        """Whether self-training checks itself on a fifth of the annotation held out of training
        (:mod:`pscl.train.guard`, :mod:`pscl.train.holdout`)."""
        return self.semi and self.semi_guard and self.select == "last"


def annotated_stems(ds: DatasetFolder, config: FinetuneConfig) -> list[str]:
    """The annotated train images a config trains on (:meth:`DatasetFolder.annotated`)."""
    return ds.annotated(config.shots, config.round, config.all_train, config.stems)


def finetune_config(profile: str | None = None, **overrides) -> FinetuneConfig:
    """A FinetuneConfig from a named profile's budget, with explicit overrides on top. With ``init`` the
    pretrained U-Net decides the widths and norm: explicit ones that differ from it are refused."""
    settings = {**profile_settings(profile, "finetune"), **overrides}
    if overrides.get("init"):
        payload = read_model_file(overrides["init"])
        recorded = {"widths": tuple(payload["widths"]), "norm": payload.get("norm", "batch")}
        shown = lambda v: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else v  # noqa: E731 (as typed)
        for key, value in recorded.items():
            given = overrides.get(key)
            if given is not None and (tuple(given) if key == "widths" else given) != value:
                raise ValueError(f"--{key} {shown(given)} differs from the {key} of --init {overrides['init']} "
                                 f"({shown(value)}): the pretrained U-Net decides it")
        settings.update(recorded)
    return FinetuneConfig(**settings)


def finetune(data: str | Path | DatasetFolder, out: str | Path, config: FinetuneConfig | None = None,
             resume: bool = False, overwrite: bool = False, on_step=None) -> dict:
    """Train a segmentation U-Net on annotated images of ``data``; write the run folder ``out``.

    The run folder (:class:`pscl.run_folder.RunFolder`) holds ``config.json``, ``logs/metrics.csv``,
    Lightning checkpoints and the selected ``model.pt``. Every input (options, annotated images,
    val masks) is checked before anything is written. A folder holding a run is refused unless
    ``resume`` (continue it: same settings; a finished run is returned as it is) or ``overwrite``.
    ``on_step(step, total, module)`` is called after every training step. Returns a summary dict.
    """
    config = config or FinetuneConfig()
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    if ds.classes is None:
        raise DataError(f"{ds.root}: fine-tuning needs a dataset folder with dataset.json and masks")
    folder = RunFolder(out)
    config.resolve_runtime()
    if config.seeds > 1:  # several members, the best on val kept
        with folder.lock():
            return finetune_seeds(ds, folder.path, config, resume=resume, overwrite=overwrite)
    stems = annotated_stems(ds, config)
    use_val = config.select == "val"
    if use_val and not ds.splits.get("val"):
        raise DataError(f"{ds.root}: split 'val' is missing or empty, so no model can be selected on it; "
                        "add val images, or give --select last")
    if config.select != "last" and config.steps < config.val_every:
        raise DataError(f"--steps {config.steps} is below --val-every {config.val_every}: no validation would run, "
                        "so no model could be selected on val; lower --val-every, or give --select last")
    pairs = [ds.load_pair(s) for s in stems]
    problems = [p for stem, pair in zip(stems, pairs) for p in ds.pair_problems(stem, *pair)]
    if problems:
        raise DataError("; ".join(problems))
    val_images = WholeImages([ds.load_pair(s) for s in ds.stems("val")]) if use_val else None  # checks every val mask
    with folder.lock():
        return _train(ds, folder, config, stems, pairs, val_images, resume, overwrite, on_step)


def guard_holdout(masks: list, config: FinetuneConfig, num_classes: int) -> tuple[list, list]:
    """(masks trained on, masks held out) of the self-training guard: blocks of the crop's side, or a
    quarter of the smallest image's side for small micrographs; ValueError where too little is annotated."""
    block = min(config.crop, max(16, min(min(m.shape) for m in masks) // 4))
    return holdout_split(masks, block, num_classes, config.seed)


def _train(ds: DatasetFolder, folder: RunFolder, config: FinetuneConfig, stems: list[str], pairs: list,
           val_images, resume: bool, overwrite: bool, on_step=None) -> dict:
    """The run itself, holding the folder's lock (:func:`finetune` checked every input)."""
    out, classes = folder.path, ds.classes
    images, masks = map(list, zip(*pairs))
    whole = masks  # (a guarded run that rolls back trains on all of them)
    if config.guarded:  # train on part of the annotation, guard self-training on the rest
        try:
            masks, held = guard_holdout(masks, config, len(classes))
            val_images = WholeImages(list(zip(images, held)))
        except ValueError as exc:  # too little annotation to hold any out: self-training goes unguarded
            warnings.warn(DataWarning(f"self-training is not guarded: {exc}"))
            config.semi_guard = False
    use_val, on = val_images is not None, score_prefix(config)
    config.geometry = resolve_orientation(config.orientation, masks, len(classes))
    resuming = folder.prepare(config, resume=resume, overwrite=overwrite)
    if resume and folder.finished_with(config.steps):  # same settings (prepare checked): nothing to do
        return _summary(folder, stems)
    config.dataset, config.annotated = str(ds.root), stems
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.init:  # the pretrained U-Net decides the architecture
        payload = read_model_file(config.init)
        config.widths, config.norm = tuple(payload["widths"]), payload.get("norm", config.norm)
    model = UNet(len(classes), config.widths, norm=config.norm)
    if config.init:
        load_backbone(model, config.init, classes)
    cfg = asdict(config)
    crops = lambda labels: RandomCropDataset(  # noqa: E731
        images, labels, config.crop, config.val_every * config.batch_size, seed=config.seed,
        jitter_strength=config.jitter, photometric=config.photometric, geometry=config.geometry)
    weights = class_weights(masks, len(classes), power=config.class_weight_power)
    train_loader = stream_loader(crops(masks), config.batch_size)
    if config.semi:
        from pscl.train.semi import SemiSegmentationModule, unlabelled_crops
        module = SemiSegmentationModule(model, config, weights, classes,
                                        prior=torch.tensor(class_counts(masks, len(classes))))
        pool = stream_loader(unlabelled_crops(ds, config), config.semi_batch or config.batch_size)
        train_loader = {"labelled": train_loader, "unlabelled": pool}
    else:
        module = SegmentationModule(model, config, weights, classes)
    folder.write_config(cfg)
    val_loader = DataLoader(val_images, batch_size=1) if use_val else None
    hook = (lambda step, _, m: on_step(step, config.steps, m)) if on_step else None  # (a guarded run may fit twice)
    run = dict(accelerator=config.accelerator, devices=config.devices, precision=config.precision,
               progress=config.progress, val=val_loader, processes=trainer_devices(config.devices), on_step=hook)
    chosen, best_val, extra = "last", None, {}
    if config.guarded:
        fallback = lambda: (SegmentationModule(model, replace(config, semi=False), weights, classes),  # noqa: E731
                            stream_loader(crops(whole), config.batch_size))
        extra["semi_guard"] = guarded_fit(folder, module, train_loader, fallback, config.steps, config.val_every,
                                          f"{on}_dice_fg", run, resuming)
        best_val = extra["semi_guard"]["end"]
        if extra["semi_guard"]["rolled_back"]:
            chosen, best_val = "last (self-training rolled back)", None
    else:
        fit(module, out, train_loader, config.steps, config.val_every,
            monitor=f"{on}_dice_fg" if config.select == "val" else None, resume=resuming, **run)
    best = selected_checkpoint(folder, f"{on}_dice_fg") if config.select == "val" else None
    if best is not None:
        state, best_val = best
        model.load_state_dict({k[len("model."):]: v for k, v in state.items() if k.startswith("model.")})
        chosen = "best.ckpt"
    save_model(out, model.cpu(), cfg, classes, selected=chosen, **{f"{on}_dice_fg": best_val}, **extra,
               steps=config.steps)
    return _summary(folder, stems)


def finetune_seeds(ds: DatasetFolder, out: str | Path, config, resume: bool = False, overwrite: bool = False) -> dict:
    """Fine-tune ``config.seeds`` members (seeds ``config.seed``, ``+1``, ...) and keep the one with the
    best val Dice (fg) as ``out``'s model. Returns the run's summary, as :func:`finetune`."""
    if config.select != "val":
        raise ValueError(f"seeds {config.seeds} chooses a member on val: it needs select='val', got {config.select!r}")
    if not ds.splits.get("val"):
        raise DataError(f"{ds.root}: split 'val' is missing or empty, so no seed can be chosen on it")
    folder = RunFolder(out)
    stems = annotated_stems(ds, config)
    folder.prepare(config, resume=resume, overwrite=overwrite)
    if resume and folder.finished_with(config.steps):
        return _summary(folder, stems)
    config.dataset, config.annotated = str(ds.root), stems
    folder.write_config(asdict(config))
    scores = {}
    for k in range(config.seeds):
        member = replace(config, seed=config.seed + k, seeds=1)
        # members resume one by one; --overwrite redoes them too
        summary = finetune(ds, folder.member(member.seed).path, member, resume=True, overwrite=overwrite)
        scores[member.seed] = summary["val_dice_fg"]
    best = max(scores, key=lambda s: scores[s])
    model, payload = load_model(folder.member(best).path)
    save_model(out, model, asdict(config), payload["classes"], selected=f"seed{best}/{payload['selected']}",
               val_dice_fg=payload["val_dice_fg"], steps=payload["steps"],
               seed_val_dice_fg={str(s): v for s, v in scores.items()})
    return _summary(folder, stems)


def selection_scores(payload: dict) -> dict:
    """The scores a model file records: ``val_dice_fg`` (None where it was not selected on val masks), and for a
    guarded run ``holdout_dice_fg`` and ``semi_guard`` (the held-out Dice before and after self-training, and
    whether the run rolled back)."""
    return {"val_dice_fg": payload.get("val_dice_fg"),
            **{k: payload[k] for k in ("holdout_dice_fg", "semi_guard") if k in payload}}


def _summary(folder: RunFolder, stems: list[str]) -> dict:
    payload = read_model_file(folder.path)
    return {"run": str(folder.path), "annotated": stems, "selected": payload.get("selected"),
            **selection_scores(payload), "steps": payload.get("steps", payload["config"]["steps"])}
