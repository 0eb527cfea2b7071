"""Seconds, passes and peak memory of one CNN search step (alpha step + weight step) at the paper's
search size (8 cells, 16 channels, 32x32 CIFAR-sized inputs), on the CPU.

Each configuration runs in a fresh process, so its peak resident memory (VmHWM) is its own.
``passes`` counts network forwards and backwards per step (hooks on the network); ``fb-equiv``
is the step's time in units of one plain training forward-backward, the cost measure used in BENCHMARKS.md.

    python benchmarks/bench_search_step.py [--threads 2] [--steps 3] [--batch 16 64]
                                           [--layout channels_last contiguous]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = [("first", "finite_difference"), ("second", "finite_difference"), ("second", "exact")]
# The official code (quark0/darts, modern torch) on a 2-core machine, batch 16.
OFFICIAL_SECONDS = {"first": (5.6, 7.0), "second": (12.0, 14.0)}
OFFICIAL_PEAK_GB = (3.3, 4.2)


def _vm(field: str) -> float:
    """A /proc/self/status memory field, in GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024**2
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(order: str, hessian: str, batch: int, layout: str, steps: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from darts.search.bilevel import Architect
    from darts.search.cnn import cross_entropy
    from darts.spaces.cnn.search_network import SearchNetwork

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    baseline = _vm("VmRSS")
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = SearchNetwork(16, 10, 8).to(memory_format=fmt)
    weights = model.weight_parameters()
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    architect = Architect(model, w_opt, a_opt, cross_entropy, order=order, hessian=hessian)
    counts = {"forward": 0, "backward": 0}

    def count_backward(_grad):
        counts["backward"] += 1

    def count(_module, _inputs, output):
        counts["forward"] += 1
        if output.requires_grad:
            output.register_hook(count_backward)

    model.register_forward_hook(count)
    make = lambda: (torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt),  # noqa: E731
                    torch.randint(0, 10, (batch,)))

    def weight_step(x, y):
        loss = F.cross_entropy(model(x), y)
        w_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        nn.utils.clip_grad_norm_(weights, 5.0)
        w_opt.step()

    def search_step():
        train, valid = make(), make()
        architect.step(train, valid)
        weight_step(*train)

    search_step()  # warm-up; also creates the momentum buffers the virtual step reads
    plain = []
    for _ in range(2):
        x, y = make()
        t0 = time.perf_counter()
        weight_step(x, y)
        plain.append(time.perf_counter() - t0)
    counts.update(forward=0, backward=0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        search_step()
        times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    return {
        "order": order, "hessian": hessian if order == "second" else "-", "batch": batch, "layout": layout,
        "seconds": step_s, "seconds_min": min(times),
        "forwards": counts["forward"] / steps, "backwards": counts["backward"] / steps,
        "fb_equiv": step_s / min(plain), "peak_gb": _vm("VmHWM"), "baseline_gb": baseline,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--layout", nargs="+", default=["channels_last"], choices=("channels_last", "contiguous"))
    parser.add_argument("--one", nargs=4, metavar=("ORDER", "HESSIAN", "BATCH", "LAYOUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        order, hessian, batch, layout = args.one
        print(json.dumps(measure(order, hessian, int(batch), layout, args.steps, args.threads)))
        return 0

    load = os.getloadavg()[0]
    rows = []
    for batch in args.batch:
        for layout in args.layout:
            for order, hessian in CONFIGS:
                out = subprocess.run([sys.executable, __file__, "--one", order, hessian, str(batch), layout,
                                      "--steps", str(args.steps), "--threads", str(args.threads)],
                                     check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
    import torch

    print(f"CPU search step, 8 cells, 16 channels, 32x32; {args.threads} threads of {os.cpu_count()} cores; "
          f"torch {torch.__version__}; load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
    print("| order | hessian | batch | layout | s/step (mean) | s/step (min) | forwards | backwards | fb-equiv "
          "| peak RSS GB | baseline GB | vs official time | vs official peak |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lo, hi = OFFICIAL_SECONDS[r["order"]]
        vs_time = f"{r['seconds'] / hi:.2f}-{r['seconds'] / lo:.2f}" if r["batch"] == 16 else "-"
        vs_peak = f"{r['peak_gb'] / OFFICIAL_PEAK_GB[1]:.2f}-{r['peak_gb'] / OFFICIAL_PEAK_GB[0]:.2f}" \
            if r["batch"] == 16 else "-"
        print(f"| {r['order']} | {r['hessian']} | {r['batch']} | {r['layout']} | {r['seconds']:.2f} | {r['seconds_min']:.2f} "
              f"| {r['forwards']:.0f} | {r['backwards']:.0f} | {r['fb_equiv']:.2f} | {r['peak_gb']:.2f} "
              f"| {r['baseline_gb']:.2f} | {vs_time} | {vs_peak} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
