"""Peak memory (and seconds) of one CNN search step at the paper's search size, with and without the
GPU levers: activation checkpointing per cell and bf16 autocast.

Batch 64, 8 cells, 16 channels, 32x32 inputs, the CPU's layout (channels_last). Each row runs in a
fresh process (one alpha step + one weight step) and reports its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) and the memory after building the network, so a
row's peak is its own; the ratio column compares a row to the same order without the levers.

    python benchmarks/bench_search_memory.py [--batch 64] [--threads 2] [--orders first second]
                                             [--bf16] [--exact]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _rss_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    raise RuntimeError("VmRSS not in /proc/self/status")


def measure(order: str, hessian: str, checkpoint: bool, bf16: bool, batch: int, threads: int) -> dict:
    import torch
    import torch.nn.functional as F
    from torch import nn

    from darts.search.bilevel import Architect
    from darts.search.cnn import cross_entropy
    from darts.spaces.cnn.search_network import SearchNetwork

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    fmt = torch.channels_last
    model = SearchNetwork(16, 10, 8, checkpoint_cells=checkpoint).to(memory_format=fmt)
    weights = model.weight_parameters()
    w_opt = torch.optim.SGD(weights, lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    architect = Architect(model, w_opt, a_opt, cross_entropy, order=order, hessian=hessian)
    make = lambda: (torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt),  # noqa: E731
                    torch.randint(0, 10, (batch,)))
    train, valid = make(), make()
    baseline = _rss_gb()
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        architect.step(train, valid)
        loss = F.cross_entropy(model(train[0]), train[1])
    w_opt.zero_grad(set_to_none=True)
    loss.backward(inputs=weights)
    nn.utils.clip_grad_norm_(weights, 5.0)
    w_opt.step()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KB on Linux
    return {"order": order, "hessian": hessian if order == "second" else "-", "checkpoint": checkpoint,
            "bf16": bf16, "batch": batch, "peak_gb": peak, "baseline_gb": baseline, "seconds": seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--orders", nargs="+", default=["first", "second"], choices=("first", "second"))
    parser.add_argument("--exact", action="store_true", help="also second order with the exact Hessian")
    parser.add_argument("--bf16", action="store_true", help="also the bf16 rows")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(**json.loads(args.one), batch=args.batch, threads=args.threads)))
        return 0

    settings = [(o, "finite_difference") for o in args.orders] + ([("second", "exact")] if args.exact else [])
    load = os.getloadavg()[0]
    rows = []
    for order, hessian in settings:
        for bf16 in (False, True) if args.bf16 else (False,):
            for checkpoint in (False, True):
                one = json.dumps({"order": order, "hessian": hessian, "checkpoint": checkpoint, "bf16": bf16})
                out = subprocess.run([sys.executable, __file__, "--one", one, "--batch", str(args.batch),
                                      "--threads", str(args.threads)], check=True, capture_output=True, text=True)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
                print("measured", rows[-1], file=sys.stderr, flush=True)
    import torch

    print(f"CNN search step, batch {args.batch}, 8 cells, 16 channels, 32x32, channels_last; {args.threads} threads "
          f"of {os.cpu_count()} cores; torch {torch.__version__}; load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print("| order | hessian | bf16 | checkpoint cells | peak RSS GB | after build GB | peak vs no checkpoint | s/step |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    reference = {(r["order"], r["hessian"], r["bf16"]): r["peak_gb"] for r in rows if not r["checkpoint"]}
    for r in rows:
        ratio = r["peak_gb"] / reference[(r["order"], r["hessian"], r["bf16"])]
        print(f"| {r['order']} | {r['hessian']} | {'yes' if r['bf16'] else 'no'} | "
              f"{'yes' if r['checkpoint'] else 'no'} | {r['peak_gb']:.2f} | {r['baseline_gb']:.2f} | {ratio:.2f} "
              f"| {r['seconds']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
