"""`pscl bench speed`: step times, FLOPs, achieved GFLOP/s and peak memory, each in a fresh process.

Rows come at two sizes (``quick``: the CPU profile's; ``paper``: widths 32..256, 376 px crops, 8
unlabelled + 1 annotated crop per pretraining step) and in two modes: ``fp32`` (NCHW, float32: the
code path before the fast one) and ``default`` (what a run uses here: the precision of
:func:`pscl.cpu.resolve_precision`, and channels_last where a run uses it: prediction and
encoder-only pretraining). Every measurement runs in its own spawned process so its peak resident
memory (``ru_maxrss``) is its own; timings exclude a warm-up step. FLOPs are counted once per row by
``torch.utils.flop_counter`` (forward + backward, convolutions and matrix products) so the distance
to the machine's arithmetic limit shows. Inputs are synthetic micrographs: speed does not depend
on content.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import numpy as np


@dataclass
class SpeedConfig:
    """One size setting of the speed bench."""

    name: str = "quick"
    widths: tuple[int, ...] = (16, 32, 64, 128)
    crop: int = 96  # pretraining crop
    pretrain_batch: int = 16
    finetune_crop: int = 128
    finetune_batch: int = 8
    steps: int = 3
    warmup: int = 1
    image_size: tuple[int, int] = (703, 1024)  # a MetalDAM micrograph
    tile: int = 512
    overlap: int = 128
    threads: int = 0  # 0: torch's default
    precision: str = "32-true"  # or "auto", "bf16-mixed"
    channels_last: bool = False


SETTINGS = {
    "quick": SpeedConfig(),
    "paper": SpeedConfig(name="paper", widths=(32, 64, 128, 256), crop=376, pretrain_batch=9, finetune_crop=376,
                         finetune_batch=8, steps=2),
}
MODES = {"fp32": dict(precision="32-true", channels_last=False),
         # fp32 in channels_last: separates the layout's gain from bf16's where ``default`` is bf16
         "fp32-cl": dict(precision="32-true", channels_last=True),
         "default": dict(precision="auto", channels_last=True)}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _batch(n: int, size: int, seed: int = 0) -> dict:
    """Synthetic micrograph crops (B, 1, S, S) and the first one's mask, as a guided batch."""
    import torch
    from pscl.data import normalize_intensity, synth_micrograph
    rng = np.random.default_rng(seed)
    pairs = [synth_micrograph(rng, size) for _ in range(n)]
    crops = [normalize_intensity(image.astype(np.float32)) for image, _ in pairs]
    return {"image": torch.from_numpy(np.stack(crops))[:, None],
            "mask": torch.from_numpy(pairs[0][1].astype(np.int64))[None], "annotated": 1}


def _setup(c: SpeedConfig):
    """Threads, and the autocast context of the row's precision."""
    import torch
    from pscl.cpu import resolve_precision
    if c.threads:
        torch.set_num_threads(c.threads)
    precision = resolve_precision(c.precision, "cpu")
    bf16 = precision == "bf16-mixed"
    return precision, (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext


def _timed(step, c: SpeedConfig) -> dict:
    """Run ``step`` warm-up + timed times, then once under the FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode
    for _ in range(c.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(c.steps):
        step()
    dt = (time.perf_counter() - t0) / c.steps
    peak = _peak_mb()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    return {"s_per_step": dt, "gflop_per_step": flops / 1e9, "gflop_per_s": flops / 1e9 / dt, "peak_mb": peak}


def pretrain_step(method: str, c: SpeedConfig):
    """One pretraining step of ``method`` at ``c``'s sizes and mode, as a run takes it (views, loss,
    backward, Adam, momentum update), as a closure; and the resolved precision."""
    import torch
    from pscl.cpu import fast_layout, trains_channels_last
    from pscl.data.synth import CLASSES
    from pscl.data.views import make_views
    from pscl.methods import GUIDED, PretrainConfig, build_method
    from pscl.methods.base import ema_update
    precision, autocast = _setup(c)
    torch.manual_seed(0)
    model = build_method(PretrainConfig(method=method, widths=c.widths, crop=c.crop, batch_size=c.pretrain_batch,
                                        classes=CLASSES if method in GUIDED else None))
    # as a run does (pscl.train.trainer.fit)
    fast_layout(model, c.channels_last and (model.channels_last or trains_channels_last("cpu")))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = _batch(c.pretrain_batch, c.crop)

    def step():
        v1, v2, geo = make_views(batch["image"])
        with autocast():
            loss = model.loss(v1, v2, geo, batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        for online, target in model.momentum_pairs():
            ema_update(online, target, 0.99)
    return step, precision


def _pretrain_speed(method: str, cfg: dict) -> dict:
    c = SpeedConfig(**cfg)
    step, precision = pretrain_step(method, c)
    row = _timed(step, c)
    return {"stage": "pretrain", "method": method, "precision": precision, **row,
            "pairs_per_s": c.pretrain_batch / row["s_per_step"]}


def finetune_step(c: SpeedConfig):
    """One supervised fine-tuning step at ``c``'s sizes and mode, as a closure; and the precision."""
    import torch
    from pscl.cpu import fast_layout, trains_channels_last
    from pscl.losses import segmentation_loss
    from pscl.nn import UNet
    precision, autocast = _setup(c)
    torch.manual_seed(0)
    net = fast_layout(UNet(5, c.widths), c.channels_last and trains_channels_last("cpu"))  # as pscl.train.trainer.fit
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = _batch(c.finetune_batch, c.finetune_crop)["image"]
    y = torch.randint(0, 5, (c.finetune_batch, c.finetune_crop, c.finetune_crop))

    def step():
        with autocast():
            loss = segmentation_loss(net(x).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, precision


def _finetune_speed(cfg: dict) -> dict:
    c = SpeedConfig(**cfg)
    step, precision = finetune_step(c)
    return {"stage": "finetune", "method": "any", "precision": precision, **_timed(step, c)}


def _inference_speed(cfg: dict) -> dict:
    import torch
    from pscl.nn import UNet
    from pscl.inference.predict import segment
    c = SpeedConfig(**cfg)
    precision, _ = _setup(c)
    torch.manual_seed(0)
    net = UNet(5, c.widths).eval()
    image = np.random.default_rng(0).random(c.image_size, dtype=np.float32)
    bf16 = precision == "bf16-mixed"
    segment(net, image[:256, :256], tile=c.tile, overlap=c.overlap, bf16=bf16, channels_last=c.channels_last)  # warm-up
    t0 = time.perf_counter()
    segment(net, image, tile=c.tile, overlap=c.overlap, bf16=bf16, channels_last=c.channels_last)
    dt = time.perf_counter() - t0
    return {"stage": "inference", "method": "any", "precision": precision, "s_per_megapixel": dt / (image.size / 1e6),
            "s_per_step": dt, "image": list(c.image_size), "peak_mb": _peak_mb()}


def _call(args):
    fn, a = args
    return fn(*a)


def _isolated(fn, *args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.map(_call, [(fn, args)])[0]


def measure_speed(methods: list[str], settings: list[str | SpeedConfig] = ("quick", "paper"),
                  modes: list[str] = ("fp32", "default"), paper_methods: list[str] | None = None, log=None,
                  isolated: bool = True) -> dict:
    """Rows of pretraining (per method), fine-tuning and inference, per size setting and mode.

    ``settings``: names of :data:`SETTINGS` or configs; ``paper_methods`` (default: ``methods``)
    limits the slow paper-size pretraining rows; ``isolated=False`` measures in this process (peak
    memory is then the process's so far: for tests).
    """
    from pscl.cpu import cpu_summary
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"unknown speed mode {mode!r}; choose from {', '.join(MODES)}")
    configs = [SETTINGS[s] if isinstance(s, str) else s for s in settings]
    for s in settings:
        if isinstance(s, str) and s not in SETTINGS:
            raise ValueError(f"unknown speed settings {s!r}; choose from {', '.join(SETTINGS)}")
    run = _isolated if isolated else (lambda fn, *args: fn(*args))
    rows = []
    for base in configs:
        for mode in modes:
            cfg = asdict(replace(base, **MODES[mode]))
            chosen = methods if base.name != "paper" or paper_methods is None else paper_methods
            jobs = [(_pretrain_speed, m) for m in chosen] + [(_finetune_speed,), (_inference_speed,)]
            for fn, *args in jobs:
                rows.append({"settings": base.name, "mode": mode, **run(fn, *args, cfg)})
                if log:
                    log(rows[-1])
    return {"settings": {c.name: asdict(c) for c in configs}, "modes": {m: MODES[m] for m in modes},
            "cpu": cpu_summary(), "rows": rows}


def speed_table(result: dict) -> str:
    """Markdown table of :func:`measure_speed`'s rows, with each row's speed-up over the fp32 mode."""
    base = {(r["settings"], r["stage"], r["method"]): r["s_per_step"] for r in result["rows"] if r["mode"] == "fp32"}
    lines = ["| settings | stage | method | mode (precision) | s/step | speed-up vs fp32 | GFLOP/step | GFLOP/s "
             "| peak memory (MB) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        ref = base.get((r["settings"], r["stage"], r["method"]))
        gain = f"{ref / r['s_per_step']:.2f}x" if ref else ""
        if r["stage"] == "inference":
            step = f"{r['s_per_megapixel']:.2f} s/MP ({r['image'][1]}x{r['image'][0]}: {r['s_per_step']:.2f} s)"
            flops = ""
        else:
            step = f"{r['s_per_step']:.2f}"
            flops = f"{r['gflop_per_step']:.0f} | {r['gflop_per_s']:.0f}"
        lines.append(f"| {r['settings']} | {r['stage']} | {r['method']} | {r['mode']} ({r['precision']}) | {step} "
                     f"| {gain} | {flops or ' | '} | {r['peak_mb']:.0f} |")
    cpu = result.get("cpu", {})
    head = f"CPU: {cpu.get('model', '?')}, {cpu.get('cores', '?')} cores, flags {', '.join(cpu.get('flags', []))}\n\n"
    return head + "\n".join(lines) + "\n"


def write_speed(out, methods: list[str], settings: list[str], paper_methods: list[str] | None, command: str,
                log=None, modes: list[str] = ("fp32", "default")) -> str:
    """Measure (:func:`measure_speed`) and write ``out/speed.json`` and ``out/speed.md`` with their
    provenance; return the table."""
    import json
    from pathlib import Path
    from pscl.provenance import provenance
    from pscl.files import write_text
    out = Path(out)
    result = {**measure_speed(methods, settings, modes, paper_methods=paper_methods, log=log), **provenance(),
              "command": command}
    write_text(out / "speed.json", json.dumps(result, indent=1))
    table = speed_table(result)
    sizes = "\n".join(f"- {name}: {cfg}" for name, cfg in result["settings"].items())
    write_text(out / "speed.md", f"# Speed\n\n- command: `{command}`\n- commit: {result['commit']}\n"
                                 f"- machine: {result['machine']}\n- date: {result['date']}\n- modes: {result['modes']}\n"
                                 f"{sizes}\n\n{table}")
    return table
