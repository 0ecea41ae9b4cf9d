"""Where a training step's time goes: torch.profiler over the speed bench's own steps.

Usage: python benchmarks/scripts/profile_step.py OUT.md [--method pscl-simclr|simclr|finetune] [--settings quick|paper]
       [--mode fp32|fp32-cl|default] [--steps 2] [--threads 0]

Runs ``pscl.bench.speed.pretrain_step`` (or ``finetune_step``) once to warm up, then ``--steps`` times
under the profiler, and writes OUT.md: the step time, the share of self CPU time per kind of work
(convolutions, matrix products, normalisation, element-wise, layout copies, indexing/matching, optimiser,
the rest) and the top operators. The share outside convolutions and matrix products is what bf16 and
AMX cannot speed up.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

from torch.profiler import ProfilerActivity, profile

from pscl.bench.speed import MODES, SETTINGS, finetune_step, pretrain_step
from pscl.cpu import cpu_summary
from pscl.files import write_text
from pscl.provenance import provenance

# first match wins: operator name fragments -> kind of work
KINDS = (("convolution", ("conv", "mkldnn_convolution")),
         ("matrix product", ("mm", "matmul", "linear", "addmm", "bmm", "einsum")),
         ("normalisation", ("batch_norm", "layer_norm", "group_norm", "norm")),
         ("layout copy", ("copy_", "to_copy", "contiguous", "clone", "_to_copy", "cat", "stack")),
         ("indexing / matching", ("index", "gather", "scatter", "topk", "sort", "argmax", "max", "nonzero",
                                  "masked", "where", "grid_sampler", "interpolate", "upsample", "pool")),
         ("optimiser", ("adam", "_foreach", "lerp")),
         ("element-wise", ("add", "mul", "sub", "div", "relu", "leaky", "exp", "log", "softmax", "pow", "sqrt",
                           "sum", "mean", "fill", "zero", "neg", "rsub", "clamp", "sigmoid", "abs")))


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, fragments in KINDS:
        if any(f in low for f in fragments):
            return kind
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--method", default="pscl-simclr")
    ap.add_argument("--settings", default="paper", choices=sorted(SETTINGS))
    ap.add_argument("--mode", default="default", choices=sorted(MODES))
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    c = replace(SETTINGS[a.settings], threads=a.threads, **MODES[a.mode])
    step, precision = finetune_step(c) if a.method == "finetune" else pretrain_step(a.method, c)
    step()  # warm-up
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            step()
    dt = (time.perf_counter() - t0) / a.steps
    # top-level operators only (no double counting of a kernel inside its caller): self time
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = {}
    for e in events:
        shares[kind_of(e.key)] = shares.get(kind_of(e.key), 0.0) + e.self_cpu_time_total
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:25]
    cpu = cpu_summary()
    prov = provenance()
    lines = [f"# Profile: {a.method}, {a.settings} settings, {a.mode} mode ({precision})", "",
             f"- command: `python benchmarks/scripts/profile_step.py {a.out} --method {a.method} --settings {a.settings} "
             f"--mode {a.mode} --steps {a.steps} --threads {a.threads}`",
             f"- commit: {prov['commit']}", f"- machine: {prov['machine']}", f"- date: {prov['date']}",
             f"- CPU: {cpu['model']}, flags {', '.join(cpu['flags'])}; seed 0, synthetic micrographs",
             f"- step (under the profiler, which adds overhead): {dt:.2f} s", "",
             "| kind of work | share of self CPU time |", "|---|---|"]
    lines += [f"| {k} | {v / total:.1%} |" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])]
    lines += ["", "| operator | kind | self CPU ms per step | share | calls per step |", "|---|---|---|---|---|"]
    lines += [f"| `{e.key}` | {kind_of(e.key)} | {e.self_cpu_time_total / 1e3 / a.steps:.0f} "
              f"| {e.self_cpu_time_total / total:.1%} | {e.count // a.steps} |" for e in top]
    write_text(a.out, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
