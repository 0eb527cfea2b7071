"""Seconds per CNN search step (alpha step + weight step, ``darts.search.cnn.train_epoch``) on the
CPU: one process with T threads against 2 data-parallel processes (gloo) with T/2 threads each,
on the same global batch, measured side by side (rounds alternate between the two), so a noisy
machine slows both alike. Reports the median of each and their ratio.

    python benchmarks/bench_search_ddp.py [--threads 2] [--rounds 3] [--steps 3] [--batch 16]
        [--layers 3] [--channels 4] [--order second] [--hessian finite_difference]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from darts.config import load_section  # noqa: E402
from darts.distributed import World  # noqa: E402
from darts.search import cnn  # noqa: E402
from darts.search.bilevel import Architect  # noqa: E402
from darts.search.common import reducer  # noqa: E402
from darts.spaces.cnn.search_network import SearchNetwork  # noqa: E402


def step_times(args: argparse.Namespace, world: World) -> list[float]:
    """Seconds of each timed step on this rank (its slice of every global batch)."""
    cfg = load_section("search_cnn", Path(__file__).resolve().parents[1] / "params.yaml", "smoke")  # grad_clip, fp32 (bf16 off), no checkpointing
    torch.manual_seed(0)
    layout = torch.channels_last
    model = SearchNetwork(args.channels, 10, args.layers).to(memory_format=layout)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    architect = Architect(model, w_opt, a_opt, cnn.cross_entropy, order=args.order, hessian=args.hessian,
                          reduce=reducer(world))
    gen = torch.Generator().manual_seed(1)

    def batch():
        x = torch.randn(args.batch, 3, 32, 32, generator=gen)
        y = torch.randint(0, 10, (args.batch,), generator=gen)
        return x[world.rank::world.size], y[world.rank::world.size]

    times = []
    for step in range(args.steps + 1):  # the first is warm-up
        w, a = batch(), batch()
        if world.distributed:
            dist.barrier()
        t0 = time.perf_counter()
        cnn.train_epoch(model, architect, [w], iter([a]), cfg, torch.device("cpu"), layout, 1, False, world)
        if step:
            times.append(time.perf_counter() - t0)
    return times


def _worker(rank: int, size: int, port: int, args: argparse.Namespace, out: str) -> None:
    torch.set_num_threads(max(1, args.threads // size))
    world = World(rank, size)
    if size > 1:
        os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        times = step_times(args, world)
        if rank == 0:
            torch.save(times, out)
    finally:
        if size > 1:
            dist.destroy_process_group()


def measure(size: int, args: argparse.Namespace) -> list[float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "times.pt")
        mp.spawn(_worker, args=(size, port, args, out), nprocs=size)
        return torch.load(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads in all: 1 process x T, or 2 x T/2")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (1 process, then 2)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round, after 1 warm-up")
    parser.add_argument("--batch", type=int, default=16, help="global batch")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--order", choices=("first", "second"), default="second")
    parser.add_argument("--hessian", choices=("finite_difference", "exact"), default="finite_difference")
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(args.rounds):
        for size in (1, 2):
            times[size] += measure(size, args)
            print(f"round {r + 1}: {size} process(es): median {statistics.median(times[size][-args.steps:]):.3f} s/step",
                  flush=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"\nCNN search step, {args.layers} cells x {args.channels} channels, global batch {args.batch} at 32x32, "
          f"order {args.order} ({args.hessian}), channels_last, {args.threads} threads in all, "
          f"{args.rounds} rounds x {args.steps} steps, torch {torch.__version__}, {os.cpu_count()} cores")
    print("| processes | threads each | median s/step | ratio to 1 process |")
    print("|---:|---:|---:|---:|")
    print(f"| 1 | {args.threads} | {one:.3f} | 1.00 |")
    print(f"| 2 | {max(1, args.threads // 2)} | {two:.3f} | {two / one:.2f} |")


if __name__ == "__main__":
    main()
