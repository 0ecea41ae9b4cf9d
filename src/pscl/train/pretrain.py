"""Self-supervised pretraining of the U-Net on every image of a folder, without labels."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from pscl.checkpoints import save_model
from pscl.cpu import on_gpu
from pscl.data.crops import GuidedBatches, RandomCropDataset, stream_loader
from pscl.data.folders import DatasetFolder, load_dataset
from pscl.data.io import load_micrograph
from pscl.errors import DataError
from pscl.methods import GUIDED, METHODS, PretrainConfig, build_method
from pscl.run_folder import RunFolder
from pscl.runtime import trainer_devices
from pscl.train.trainer import fit


def pretrain(data: str | Path | DatasetFolder, out: str | Path, config: PretrainConfig | None = None,
             resume: bool = False, overwrite: bool = False) -> dict:
    """Pretrain with ``config.method`` on unlabeled/ plus the train images (or a plain folder).

    Writes ``out/model.pt`` (the whole U-Net, heads dropped, with the config) for
    ``finetune(init=out)``, plus Lightning checkpoints and logs. A folder holding a run is refused
    unless ``resume`` (same settings) or ``overwrite`` (:meth:`pscl.run_folder.RunFolder.prepare`).
    """
    import lightning as L

    config = config or PretrainConfig()
    ds = data if isinstance(data, DatasetFolder) else load_dataset(data)
    paths = ds.pretraining_paths()
    if not paths:
        raise DataError(f"{ds.root}: no images to pretrain on (unlabeled/ and the train split are empty)")
    config.dataset = str(ds.root)
    config.resolve_runtime()
    images = [load_micrograph(p) for p in paths]
    if config.method in GUIDED:
        if ds.classes is None:
            raise DataError(f"{ds.root}: {config.method} needs a dataset folder with annotated images")
        config.classes = list(ds.classes)
        # explicit images (e.g. `pscl suggest`'s pick) override shots/round
        config.annotated = ds.annotated(config.shots, config.round, stems=config.annotated)
        annotated, masks = map(list, zip(*(ds.load_pair(s) for s in config.annotated)))
        hp = METHODS[config.method].hparams_for(config)
        cover = None if hp.annotated_crop == "uniform" else dict(
            num_classes=len(ds.classes), candidates=hp.crop_candidates, min_cells=hp.top_k, purity=hp.template_purity)
        data_stream = GuidedBatches(annotated, masks, images, config.crop,
                                    config.batch_size, config.checkpoint_every, seed=config.seed,
                                    annotated_in_batch=config.annotated_in_batch, cover=cover)
        loader = stream_loader(data_stream, None)
    else:
        crops = RandomCropDataset(images, None, config.crop, config.checkpoint_every * config.batch_size,
                                  seed=config.seed, augment=False)
        loader = stream_loader(crops, config.batch_size)
    folder = RunFolder(out)
    with folder.lock():
        resuming = folder.prepare(config, resume=resume, overwrite=overwrite)
        if resume and folder.finished_with(config.steps):
            return {"run": str(out), "method": config.method, "steps": config.steps, "images": len(paths)}
        L.seed_everything(config.seed, workers=True, verbose=False)
        method = build_method(config)
        cfg = {**asdict(config), "method_options": asdict(method.hp), "images": len(paths)}
        folder.write_config(cfg)
        processes = trainer_devices(config.devices)
        fit(method, folder.path, loader, config.steps, config.checkpoint_every, accelerator=config.accelerator,
                      devices=config.devices, precision=config.precision, progress=config.progress, resume=resuming,
                      # SyncBatchNorm exists for GPUs only; on CPU processes BatchNorm stays per process
                      sync_batchnorm=processes > 1 and on_gpu(config.accelerator), processes=processes)
        save_model(out, method.backbone.cpu(), cfg, None, pretrained_with=config.method)
    return {"run": str(out), "method": config.method, "steps": config.steps, "images": len(paths)}
