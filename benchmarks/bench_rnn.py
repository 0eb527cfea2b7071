"""Tokens per second of the RNN search step (alpha step + weight step; first order, second order
with finite-difference or exact Hessian-vector products) at the paper's search size (300, PTB's
10,000 words), and of one evaluation-training step (DARTS_V2 cell, size 850, batch 64), on the CPU.

The search step is timed on the windows `darts search rnn` uses (BPTT 35, AR/TAR, clipping,
dropout on), with random tokens. ``fb-equiv`` is the step's time in units of one plain
forward-backward of the search model on the same window. On a shared machine run one thread
(``--threads 1``: oversubscribed OpenMP threads spin) and read the CPU seconds.

    python benchmarks/bench_rnn.py [--threads 1] [--steps 3] [--batch 16 64] [--no-eval]
"""

from __future__ import annotations

import argparse
import os
import time

CONFIGS = [("first", "finite_difference"), ("second", "finite_difference"), ("second", "exact")]
# The official RNN search step (quark0/darts rnn/, modern torch) on this 2-core machine, batch 16, BPTT 35.
OFFICIAL_SECONDS = {"first": (1.4, 1.6), "second": (3.1, 3.7)}
VOCAB, BPTT = 10_000, 35
PARAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "params.yaml")


def _window(batch: int, hidden):
    import torch

    from darts.search.rnn import LMBatch

    tokens = torch.randint(0, VOCAB, (BPTT + 1, batch))
    return LMBatch(tokens[:-1], tokens[1:], hidden, 0.0, 1e-3)


def search_step_seconds(order: str, hessian: str, batch: int, steps: int) -> dict:
    import torch
    from torch import nn

    from darts.config import load_section
    from darts.search.rnn import LMBatch, build_architect, build_search_model
    from darts.spaces.rnn.model import lm_loss

    torch.manual_seed(0)
    cfg = load_section("search_rnn", PARAMS, order=order, hessian=hessian)
    model = build_search_model(cfg, VOCAB).train()
    architect = build_architect(model, cfg)
    weights = model.weight_parameters()
    hidden = model.init_hidden(batch)

    def weight_step(window: LMBatch) -> None:
        out = model(window.data, window.hidden)
        loss, _ = lm_loss(out, window.targets, cfg.ar_alpha, cfg.tar_beta)
        architect.weight_optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        nn.utils.clip_grad_norm_(weights, cfg.grad_clip)
        architect.weight_optimizer.step()

    def search_step() -> None:
        train, valid = _window(batch, hidden), _window(batch, hidden)._replace(ar_alpha=0.0, tar_beta=0.0)
        architect.step(train, valid)
        weight_step(train)

    search_step()  # warm-up
    plain = []
    for _ in range(2):
        window = _window(batch, hidden)
        t0 = time.perf_counter()
        weight_step(window)
        plain.append(time.perf_counter() - t0)
    times, cpu = _timed(search_step, steps)
    return {"seconds": sum(times) / len(times), "seconds_min": min(times), "cpu_seconds": min(cpu),
            "fb_equiv": min(times) / min(plain)}


def eval_step_seconds(batch: int, steps: int) -> dict:
    import torch
    from torch import nn

    from darts.config import load_section
    from darts.genotypes import PUBLISHED
    from darts.spaces.rnn.model import Dropouts, build_eval_model, lm_loss

    torch.manual_seed(0)
    cfg = load_section("train_ptb", PARAMS)
    model = build_eval_model(VOCAB, cfg.emsize, cfg.nhid, PUBLISHED["rnn"]["DARTS_V2"], Dropouts.of(cfg)).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    hidden = model.init_hidden(batch)

    def step() -> None:
        tokens = torch.randint(0, VOCAB, (BPTT + 1, batch))
        out = model(tokens[:-1], hidden)
        loss, _ = lm_loss(out, tokens[1:], cfg.ar_alpha, cfg.tar_beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()

    step()
    times, cpu = _timed(step, steps)
    return {"seconds": sum(times) / len(times), "seconds_min": min(times), "cpu_seconds": min(cpu)}


def _timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of each call: on a shared machine the CPU seconds of a
    one-thread run stay close to what an idle machine's wall clock would show."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation-training step")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"CPU, {args.threads} threads of {os.cpu_count()} cores; torch {torch.__version__}; "
          f"load average {load:.2f} before")
    print("\nSearch step (alpha step + weight step), size 300, vocabulary 10,000, BPTT 35")
    print("| order | hessian | batch | s/step (mean) | s/step (min) | CPU s/step | tokens/s | tokens/CPU-s "
          "| fb-equiv | CPU s vs official |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch:
        for order, hessian in CONFIGS:
            r = search_step_seconds(order, hessian, batch, args.steps)
            lo, hi = OFFICIAL_SECONDS[order]
            vs = f"{r['cpu_seconds'] / hi:.2f}-{r['cpu_seconds'] / lo:.2f}" if batch == 16 else "-"
            print(f"| {order} | {hessian if order == 'second' else '-'} | {batch} | {r['seconds']:.2f} "
                  f"| {r['seconds_min']:.2f} | {r['cpu_seconds']:.2f} | {batch * BPTT / r['seconds_min']:.0f} "
                  f"| {batch * BPTT / r['cpu_seconds']:.0f} | {r['fb_equiv']:.2f} | {vs} |", flush=True)
    if not args.no_eval:
        r = eval_step_seconds(64, args.steps)
        print("\nEvaluation training step, DARTS_V2, size 850, batch 64, BPTT 35")
        print("| s/step (mean) | s/step (min) | CPU s/step | tokens/s | tokens/CPU-s |\n|---:|---:|---:|---:|---:|")
        print(f"| {r['seconds']:.2f} | {r['seconds_min']:.2f} | {r['cpu_seconds']:.2f} "
              f"| {64 * BPTT / r['seconds_min']:.0f} | {64 * BPTT / r['cpu_seconds']:.0f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
