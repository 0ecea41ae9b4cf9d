"""Several seeds of one fine-tuning; the one best on val is the run's model.

With one annotated image the random initialisation decides much of the result: on UHCS (quick
profile, 5 rounds) scratch fine-tuned with seeds 0, 1 and 2 gave test Dice (fg) 0.656, 0.597 and
0.551, and the seed that was best on one round tended to be best on the others too
(``benchmarks/budget800-uhcs``). Choosing among seeds on val is the same rule as choosing among
checkpoints on val, at ``seeds`` times the fine-tuning cost. Members are ordinary runs in
``RUN/seed<S>/`` (resumable one by one); ``RUN/model.pt`` is the best member's model, recording every
member's val score.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from pscl.checkpoints import load_model, save_model
from pscl.data.folders import DatasetFolder
from pscl.errors import DataError
from pscl.run_folder import RunFolder


def member_folder(out: str | Path, seed: int) -> Path:
    """Where the member of seed ``seed`` lies."""
    return Path(out) / f"seed{seed}"


def finetune_seeds(ds: DatasetFolder, out: str | Path, config, resume: bool = False, overwrite: bool = False) -> dict:
    """Fine-tune ``config.seeds`` members (seeds ``config.seed``, ``+1``, ...) and keep the one with the
    best val Dice (fg) as ``out``'s model. Returns the run's summary, as :func:`pscl.train.finetune.finetune`."""
    from pscl.train.finetune import _summary, annotated_stems, finetune

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
        summary = finetune(ds, member_folder(out, member.seed), member, resume=True, overwrite=overwrite)
        scores[member.seed] = summary["val_dice_fg"]
    best = max(scores, key=lambda s: scores[s])
    model, payload = load_model(member_folder(out, best))
    save_model(out, model, asdict(config), payload["classes"], selected=f"seed{best}/{payload['selected']}",
               val_dice_fg=payload["val_dice_fg"], steps=payload["steps"],
               seed_val_dice_fg={str(s): v for s, v in scores.items()})
    return _summary(folder, stems)
