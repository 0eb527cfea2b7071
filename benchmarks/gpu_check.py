"""The GPU acceptance check: every GPU number BENCHMARKS.md lacks, in one run.

    python3 benchmarks/gpu_check.py [--data DIR] [--budget-s 480]

On a machine with CUDA it prints, each as a named Markdown table row:
  - the smoke pipeline's commands run directly on ``cuda`` (``darts search cnn``, ``darts train cifar10``);
  - seconds per step and peak memory (``torch.cuda.max_memory_allocated``) of the CNN search at the
    paper's size (8 cells, 16 channels, batch 64 at 32x32) for first order and second order
    (finite differences), fp32 and bf16, with and without activation checkpointing per cell (the
    params ``search_cnn.bf16`` / ``search_cnn.checkpoint_cells``; a row says "option not available"
    where this version has no such option), through ``darts.search.cnn.build_search``/``train_epoch``;
  - the projected hours of one paper-scale search (steps per epoch x 50 epochs) per order;
  - seconds per epoch of the CIFAR-10 and ImageNet evaluation networks (bf16, channels_last), from
    benchmarks/bench_train_cnn.py;
  - ``darts search cnn`` (smoke size) launched by torchrun with every visible GPU.
Without CUDA it says so and runs the same rows at tiny sizes (CI keeps it working, in < 2 minutes);
those numbers are not GPU numbers.

The GPU machine has torch but not pydantic: the script installs the wheels of ``.whl/`` (made
beforehand: BENCHMARKS.md, "GPU (benchmarks/gpu_check.py)") into a temporary folder when ``import pydantic`` fails. Data:
``--data``, else ``$DARTS_DATA_MIRROR/cifar10-mini``, ``.gpu_data/cifar10-mini`` or
``../shared/datasets/cifar10-mini``.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SITE = Path(tempfile.gettempdir()) / "darts-gpu-check-site"
PAPER_STEPS_PER_EPOCH = math.ceil(25_000 / 64)  # half of CIFAR-10's training set trains the weights, batch 64
PAPER_EPOCHS = 50
ORDERS = {"first": ("first", "finite_difference"), "second_fd": ("second", "finite_difference")}
PRECISIONS = ("fp32", "bf16")
CHECKPOINTING = ("off", "on")


def row_names(gpus: int) -> list[str]:
    """Every row the check prints, in order (the CPU test checks each is printed)."""
    names = ["device", "smoke search cnn", "smoke train cifar10"]
    names += [f"search step {o} {p} ckpt={c}" for o in ORDERS for p in PRECISIONS for c in CHECKPOINTING]
    names += [f"projected paper search hours {o}" for o in ORDERS]
    names += ["eval epoch cifar10 bf16 channels_last", "eval epoch imagenet bf16 channels_last"]
    names += [f"ddp search cnn nproc={gpus}"]
    return names


def row(name: str, value: str, note: str = "") -> None:
    print(f"| {name} | {value} | {note} |", flush=True)


def ensure_packages() -> None:
    """pydantic & co. from the carried wheels, when this Python lacks them (the GPU machine)."""
    try:
        import pydantic  # noqa: F401
        return
    except ImportError:
        pass
    wheels = sorted(glob.glob(str(REPO / ".whl" / "*.whl")))
    if not wheels:
        sys.exit("pydantic is missing and there is no .whl/ folder of wheels (BENCHMARKS.md, section \"GPU (benchmarks/gpu_check.py)\")")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                    "--no-cache-dir", "--upgrade", "--target", str(SITE), *wheels], check=True)
    sys.path.insert(0, str(SITE))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE), str(REPO), os.environ.get("PYTHONPATH", "")])


def find_data(given: str | None) -> Path:
    candidates = [given] if given else [
        os.path.join(os.environ["DARTS_DATA_MIRROR"], "cifar10-mini") if os.environ.get("DARTS_DATA_MIRROR") else None,
        str(REPO / ".gpu_data" / "cifar10-mini"), str(REPO.parent / "shared" / "datasets" / "cifar10-mini")]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c)
    sys.exit(f"no cifar10-mini found (tried {[c for c in candidates if c]}); pass --data")


def darts_cmd(args: list[str], env: dict, launcher: list[str] | None = None) -> tuple[float, str]:
    """Run ``darts ARGS`` (optionally under torchrun): (seconds, 'ok' or the error's last line)."""
    cmd = [*(launcher or [sys.executable]), "-m", "darts", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return seconds, f"FAILED (exit {proc.returncode}): {tail[:200]}"
    return seconds, "ok"


def search_step(order: str, precision: str, ckpt: str, gpu: bool, steps: int, warmup: int) -> tuple[str, str, float]:
    """(value, note, seconds per step or nan) of one search-step configuration."""
    import torch

    from darts.config import SearchCNN, load_section
    from darts.distributed import World
    from darts.search import cnn

    wanted = {"bf16": precision == "bf16", "checkpoint_cells": ckpt == "on"}
    missing = [k for k, v in wanted.items() if v and k not in SearchCNN.model_fields]
    if missing:
        return "option not available", f"no search_cnn.{'/'.join(missing)} in this version", math.nan
    options = {k: v for k, v in wanted.items() if k in SearchCNN.model_fields}
    o, hessian = ORDERS[order]
    # the CPU rows take the layout the GPU rows run in (``auto`` resolves to contiguous on CUDA); bf16
    # autocast in channels_last on the CPU gives NaN gradients here (torch 2.x CPU kernels)
    size = dict(layers=8, init_channels=16, batch_size=64) if gpu else \
        dict(layers=3, init_channels=4, batch_size=8, memory_format="contiguous")
    cfg = load_section("search_cnn", REPO / "params.yaml", order=o, hessian=hessian, **size, **options)
    device = torch.device("cuda" if gpu else "cpu")
    layout = cnn.memory_format(cfg, device)
    torch.manual_seed(0)
    model, architect = cnn.build_search(cfg, device, layout)
    gen = torch.Generator().manual_seed(1)

    def batch():
        x = torch.randn(cfg.batch_size, 3, 32, 32, generator=gen)
        return x.to(device), torch.randint(0, 10, (cfg.batch_size,), generator=gen).to(device)

    times = []
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        w, a = batch(), batch()
        t0 = time.perf_counter()
        cnn.train_epoch(model, architect, [w], iter([a]), cfg, device, layout, 1, False, World())  # ends in .tolist()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    seconds = statistics.median(times)
    peak = f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB peak" if gpu else "peak n/a (CPU)"
    del model, architect
    if gpu:
        torch.cuda.empty_cache()
    shape = f"{size['layers']} cells x {size['init_channels']} ch, batch {size['batch_size']}, {layout_name(layout)}"
    return f"{seconds:.3f} s/step, {peak}", f"median of {steps}; {shape}", seconds


def layout_name(layout) -> str:
    import torch

    return "channels_last" if layout == torch.channels_last else "contiguous"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a cifar10-mini folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run folders")
    args = parser.parse_args()
    ensure_packages()
    import torch

    sys.path.insert(0, str(REPO))
    gpu = torch.cuda.is_available()
    gpus = torch.cuda.device_count() if gpu else 2
    data = find_data(args.data)
    work = Path(tempfile.mkdtemp(prefix="darts-gpu-check-"))
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)])),
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    device_flag = "cuda" if gpu else "cpu"
    # CUDA has no deterministic adaptive pooling backward: the smoke overlay's determinism stays on the CPU.
    common = ["--scale", "smoke", "--device", device_flag, "--set", f"runtime.checkpoint_dir={work / 'ckpt'}",
              "--set", f"runtime.deterministic={'false' if gpu else 'true'}"]
    started = time.perf_counter()

    print("| row | value | note |\n|---|---|---|")
    if gpu:
        row("device", torch.cuda.get_device_name(0), f"{gpus} visible GPU(s); torch {torch.__version__}")
    else:
        row("device", "CPU only: no CUDA device", "tiny sizes, every row still runs; these are NOT GPU numbers")

    seconds, status = darts_cmd(["search", "cnn", "--seed", "0", "--out", str(work / "search"), "--data", str(data),
                                 "--order", "second", *common], env)
    row("smoke search cnn", f"{seconds:.1f} s", status)
    genotype = work / "search" / "genotype.json"
    short = [] if gpu else ["--set", "train_cifar10.epochs=1"]  # the CPU run's 2-minute budget
    seconds, status = darts_cmd(["train", "cifar10", "--genotype", str(genotype) if genotype.exists() else "DARTS_V2",
                                 "--seed", "0", "--out", str(work / "train"), "--data", str(data), *common, *short], env)
    row("smoke train cifar10", f"{seconds:.1f} s", status)

    steps, warmup = (5, 2) if gpu else (1, 1)
    per_step: dict[str, float] = {}
    for order in ORDERS:
        for precision in PRECISIONS:
            for ckpt in CHECKPOINTING:
                try:
                    value, note, s = search_step(order, precision, ckpt, gpu, steps, warmup)
                except Exception as exc:  # a row that fails says why; the others still run
                    value, note, s = "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}", math.nan
                row(f"search step {order} {precision} ckpt={ckpt}", value, note)
                if precision == "fp32" and ckpt == "off":
                    per_step[order] = s
    for order in ORDERS:
        hours = per_step[order] * PAPER_STEPS_PER_EPOCH * PAPER_EPOCHS / 3600
        shape = "the paper's size" if gpu else "the tiny size above: not a projection of anything"
        row(f"projected paper search hours {order}", f"{hours:.2f} h",
            f"fp32, {PAPER_STEPS_PER_EPOCH} steps/epoch x {PAPER_EPOCHS} epochs (alpha + weight step), at {shape}")

    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_train_cnn import EPOCH_IMAGES, images_per_second

    for dataset, gpu_batch, cpu_batch in (("cifar10", 96, 4), ("imagenet", 128, 2)):
        name = f"eval epoch {dataset} bf16 channels_last"
        try:
            device = torch.device("cuda" if gpu else "cpu")
            ips = images_per_second(dataset, gpu_batch if gpu else cpu_batch, 5 if gpu else 1, 2 if gpu else 1,
                                    device, bf16=True, channels_last=True)
            row(name, f"{EPOCH_IMAGES[dataset] / ips:,.0f} s/epoch",
                f"{ips:.1f} images/s, batch {gpu_batch if gpu else cpu_batch}, paper-size network, "
                f"{EPOCH_IMAGES[dataset]:,} images/epoch")
        except Exception as exc:
            row(name, "FAILED", f"{type(exc).__name__}: {str(exc)[:200]}")
        if gpu:
            torch.cuda.empty_cache()

    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
    seconds, status = darts_cmd(["search", "cnn", "--seed", "0", "--out", str(work / "ddp"), "--data", str(data),
                                 *common], env, launcher)
    if status == "ok":
        from darts.io import read_json

        status = f"ok: world_size {read_json(work / 'ddp' / 'meta.json').get('world_size')}, " \
                 f"{'nccl' if gpu else 'gloo'}, smoke size"
    row(f"ddp search cnn nproc={gpus}", f"{seconds:.1f} s", status)

    print(f"\ntotal {time.perf_counter() - started:.0f} s; runs in {work}" + ("" if args.keep else " (removed)"))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
