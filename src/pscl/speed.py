"""`pscl bench speed`: throughput and peak memory at fixed sizes, each in a fresh process.

Every measurement runs in its own spawned process so its peak resident memory (``ru_maxrss``)
is its own. Timings exclude warm-up steps. Inputs are synthetic micrographs: speed does not
depend on content.
"""
from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class SpeedConfig:
    widths: tuple[int, ...] = (32, 64, 128, 256)
    crop: int = 128
    pretrain_batch: int = 16
    finetune_batch: int = 8
    steps: int = 5
    warmup: int = 2
    image_size: tuple[int, int] = (703, 1024)  # a MetalDAM micrograph
    tile: int = 512
    overlap: int = 128
    threads: int = 0  # 0: torch's default


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


def _pretrain_speed(method: str, cfg: dict) -> dict:
    import torch
    from pscl.data.views import make_views
    from pscl.data.synth import CLASSES
    from pscl.methods import GUIDED, PretrainConfig, build_method
    from pscl.methods.base import ema_update
    c = SpeedConfig(**cfg)
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(0)
    model = build_method(PretrainConfig(method=method, widths=c.widths, crop=c.crop, batch_size=c.pretrain_batch,
                                        classes=CLASSES if method in GUIDED else None))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    batch = _batch(c.pretrain_batch, c.crop)
    for i in range(c.warmup + c.steps):
        if i == c.warmup:
            t0 = time.perf_counter()
        v1, v2, geo = make_views(batch["image"])
        loss = model.loss(v1, v2, geo, batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        for online, target in model.momentum_pairs():
            ema_update(online, target, 0.99)
    dt = time.perf_counter() - t0
    return {"stage": "pretrain", "method": method, "pairs_per_s": c.pretrain_batch * c.steps / dt,
            "s_per_step": dt / c.steps, "peak_mb": _peak_mb()}


def _full_pass_speed(cfg: dict) -> dict:
    """The floor of any method that trains the decoder: both views through the whole U-Net,
    forward and backward, no heads or losses (a reference row, not a method)."""
    import torch
    from pscl.data.views import make_views
    from pscl.nn import UNet
    c = SpeedConfig(**cfg)
    if c.threads:
        torch.set_num_threads(c.threads)
    net = UNet(1, c.widths)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = _batch(c.pretrain_batch, c.crop)["image"]
    for i in range(c.warmup + c.steps):
        if i == c.warmup:
            t0 = time.perf_counter()
        v1, v2, _ = make_views(x)
        loss = net(v1).mean() + net(v2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    return {"stage": "pretrain", "method": "(reference: whole U-Net, 2 views)", "pairs_per_s": c.pretrain_batch * c.steps / dt,
            "s_per_step": dt / c.steps, "peak_mb": _peak_mb()}


def _finetune_speed(cfg: dict) -> dict:
    import torch
    from pscl.losses import segmentation_loss
    from pscl.nn import UNet
    c = SpeedConfig(**cfg)
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(0)
    net = UNet(5, c.widths)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = _batch(c.finetune_batch, c.crop)["image"]
    y = torch.randint(0, 5, (c.finetune_batch, c.crop, c.crop))
    for i in range(c.warmup + c.steps):
        if i == c.warmup:
            t0 = time.perf_counter()
        loss = segmentation_loss(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    dt = time.perf_counter() - t0
    return {"stage": "finetune", "method": "any", "steps_per_s": c.steps / dt, "s_per_step": dt / c.steps,
            "peak_mb": _peak_mb()}


def _inference_speed(cfg: dict) -> dict:
    import torch
    from pscl.nn import UNet
    from pscl.predict import segment
    c = SpeedConfig(**cfg)
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(0)
    net = UNet(5, c.widths).eval()
    image = np.random.default_rng(0).random(c.image_size, dtype=np.float32)
    segment(net, image[:256, :256], tile=c.tile, overlap=c.overlap)  # warm-up
    base = _peak_mb()
    t0 = time.perf_counter()
    segment(net, image, tile=c.tile, overlap=c.overlap)
    dt = time.perf_counter() - t0
    mp_ = image.size / 1e6
    return {"stage": "inference", "method": "any", "s_per_megapixel": dt / mp_, "seconds": dt,
            "image": list(c.image_size), "peak_mb": _peak_mb(), "peak_mb_before": base}


def _call(args):
    fn, a = args
    return fn(*a)


def _isolated(fn, *args) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.map(_call, [(fn, args)])[0]


def measure_speed(methods: list[str], config: SpeedConfig | None = None) -> dict:
    """Pretraining pairs/s per method, fine-tuning steps/s, inference s/MP, peak memory."""
    config = config or SpeedConfig()
    cfg = asdict(config)
    rows = [_isolated(_pretrain_speed, m, cfg) for m in methods]
    rows.append(_isolated(_full_pass_speed, cfg))
    rows.append(_isolated(_finetune_speed, cfg))
    rows.append(_isolated(_inference_speed, cfg))
    return {"config": cfg, "rows": rows}


def speed_table(result: dict) -> str:
    """Markdown table of :func:`measure_speed`'s rows."""
    lines = ["| stage | method | throughput | peak memory (MB) |", "|---|---|---|---|"]
    for r in result["rows"]:
        if r["stage"] == "pretrain":
            thr = f"{r['pairs_per_s']:.2f} image pairs/s ({r['s_per_step']:.2f} s/step)"
        elif r["stage"] == "finetune":
            thr = f"{r['steps_per_s']:.3f} steps/s ({r['s_per_step']:.2f} s/step)"
        else:
            thr = f"{r['s_per_megapixel']:.2f} s/megapixel ({r['image'][1]}x{r['image'][0]}: {r['seconds']:.2f} s)"
        lines.append(f"| {r['stage']} | {r['method']} | {thr} | {r['peak_mb']:.0f} |")
    return "\n".join(lines) + "\n"
