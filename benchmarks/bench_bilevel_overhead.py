"""The second-order finite-difference alpha step, ours before and after the per-pass overhead work
(fused ``torch._foreach`` weight arithmetic, one scratch set of buffer copies
instead of clones per evaluation, fp32 finite-difference points), side by side in one process.

Both Architects are built on the same network, optimizers and batches and run alternately; the
baseline is ``darts/search/bilevel.py`` as of ``--baseline`` (a git revision), loaded from git.
Each repetition times one ``arch_gradient`` of each (the weights do not move, so every repetition
computes the same thing); the table gives medians and their ratio, plus a cProfile of one step
of each split into the network's kernels and the Python around them.

    python benchmarks/bench_bilevel_overhead.py [--batch 16] [--threads 2] [--reps 5]
                                                [--layout channels_last contiguous]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BASELINE = "9c933f37f50071bf35ede23cb1185679d2079f75"  # bilevel.py before the overhead work


def load_baseline(rev: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{rev}:darts/search/bilevel.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("bilevel_baseline")
    module.__file__ = f"<bilevel.py at {rev[:10]}>"
    sys.modules[module.__name__] = module
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def _python_share(profile: cProfile.Profile) -> tuple[float, float]:
    """(total seconds, seconds outside torch's C++ kernels and the autograd engine)."""
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _), (_, _, _, ct, _) in stats.items())
    kernels = sum(tt for (file, _, name), (_, _, tt, _, _) in stats.items()
                  if file == "~" and ("torch." in name or "TensorBase" in name or "run_backward" in name
                                      or "_foreach" in name))
    return total, total - kernels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--layout", nargs="+", default=["channels_last"], choices=("channels_last", "contiguous"))
    parser.add_argument("--baseline", default=BASELINE)
    args = parser.parse_args()

    import torch

    from darts.search.bilevel import Architect
    from darts.search.cnn import cross_entropy
    from darts.spaces.cnn.search_network import SearchNetwork

    torch.set_num_threads(args.threads)
    old = load_baseline(args.baseline)
    load = os.getloadavg()[0]
    lines = []
    for layout in args.layout:
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        torch.manual_seed(0)
        model = SearchNetwork(16, 10, 8).to(memory_format=fmt)
        w_opt = torch.optim.SGD(model.weight_parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
        a_opt = torch.optim.Adam(model.arch_parameters(), lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
        for p in model.weight_parameters():  # momentum buffers, as after the first weight step
            p.grad = 0.01 * torch.randn_like(p)
        w_opt.step()
        w_opt.zero_grad(set_to_none=True)
        architects = {"before": old.Architect(model, w_opt, a_opt, cross_entropy, order="second"),
                      "after": Architect(model, w_opt, a_opt, cross_entropy, order="second")}
        gen = torch.Generator().manual_seed(1)
        batches = [(torch.randn(args.batch, 3, 32, 32, generator=gen).contiguous(memory_format=fmt),
                    torch.randint(0, 10, (args.batch,), generator=gen)) for _ in range(2)]
        grads = {k: a.arch_gradient(*batches)[0] for k, a in architects.items()}  # warm-up, and the check
        diff = max(float((g1 - g0).norm() / g0.norm()) for g0, g1 in zip(grads["before"], grads["after"]))
        times: dict[str, list[float]] = {k: [] for k in architects}
        for rep in range(args.reps):
            order = list(architects) if rep % 2 == 0 else list(reversed(architects))
            for k in order:
                t0 = time.perf_counter()
                architects[k].arch_gradient(*batches)
                times[k].append(time.perf_counter() - t0)
        profiles = {}
        for k, a in architects.items():
            prof = cProfile.Profile()
            prof.enable()
            a.arch_gradient(*batches)
            prof.disable()
            profiles[k] = _python_share(prof)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k in architects:
            total, python = profiles[k]
            lines.append(f"| {layout} | {k} | {med[k]:.2f} | {min(times[k]):.2f} | {med[k] / med['before']:.3f} "
                         f"| {python:.2f} of {total:.2f} | {diff:.1e} |")
    print(f"Second-order FD alpha step (arch_gradient), batch {args.batch}, 8 cells, 16 channels, 32x32; "
          f"{args.threads} threads of {os.cpu_count()} cores; {args.reps} alternating repetitions; baseline "
          f"{args.baseline[:10]}; torch {torch.__version__}; load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print("| layout | bilevel.py | median s | min s | vs before | profiled: Python outside kernels, s "
          "| alpha-gradient rel. difference |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
