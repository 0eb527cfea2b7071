"""Training throughput of the CNN evaluation networks, through the real training step.

Run: python benchmarks/bench_train_cnn.py [--steps N] [--warmup N] [--threads N]

Measures images/s of `darts.train.cnn.train_epoch` (forward with the auxiliary tower and drop
path, backward, clipping, SGD step) on in-memory random images, warm-up steps excluded:
  - CIFAR-10 network, paper size (20 cells, 36 channels, DARTS_V2), batch 96 at 32x32;
  - ImageNet network, paper size (14 cells, 48 channels, 1000 classes), batch 32 on the CPU
    (128, the paper's, on a GPU) at 224x224.
On a GPU it also runs every combination of bf16 autocast and channels-last and converts the
throughput into seconds per epoch of the paper's runs (50,000 and 1,281,167 training images).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from darts.config import load_section
from darts.genotypes import load_genotype
from darts.spaces.cnn.eval_network import NetworkCIFAR, NetworkImageNet
from darts import distributed as D
from darts.train.cnn import train_epoch

EPOCH_IMAGES = {"cifar10": 50_000, "imagenet": 1_281_167}
PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def images_per_second(dataset: str, batch: int, steps: int, warmup: int, device: torch.device,
                      bf16: bool = False, channels_last: bool = False) -> float:
    genotype = load_genotype("DARTS_V2", "cnn")
    if dataset == "cifar10":
        cfg = load_section("train_cifar10", PARAMS, batch_size=batch, bf16=bf16, channels_last=channels_last)
        model, size, classes = NetworkCIFAR(36, 10, 20, True, genotype), 32, 10
    else:
        cfg = load_section("train_cifar10", PARAMS, layers=14, init_channels=48, batch_size=batch, bf16=bf16,
                           channels_last=channels_last, label_smoothing=0.1)
        model, size, classes = NetworkImageNet(48, 1000, 14, True, genotype), 224, 1000
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.drop_path_prob = cfg.drop_path_prob
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    def run(n_steps: int) -> float:
        data = TensorDataset(torch.randn(n_steps * batch, 3, size, size), torch.randint(0, classes, (n_steps * batch,)))
        loader = DataLoader(data, batch_size=batch, pin_memory=device.type == "cuda")
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        train_epoch(model, loader, optimizer, criterion, cfg, device, D.World())  # ends with a host sync
        return time.perf_counter() - t0

    run(warmup)
    return steps * batch / run(steps)


def cpu_name() -> str:
    """The CPU model (platform.processor() is empty on Linux) and the core count."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    print(f"device: {name}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"{args.steps} timed steps after {args.warmup} warm-up\n")
    cases = [("cifar10", 96), ("imagenet", 128 if device.type == "cuda" else 32)]
    on_gpu = device.type == "cuda"
    variants = [(False, False), (True, False), (False, True), (True, True)] if on_gpu else [(False, False)]
    print("| network | batch | bf16 | channels-last | images/s | s/epoch (paper run) |")
    print("|---|---:|---|---|---:|---:|")
    for dataset, batch in cases:
        for bf16, channels_last in variants:
            ips = images_per_second(dataset, batch, args.steps, args.warmup, device, bf16, channels_last)
            print(f"| {dataset} | {batch} | {'yes' if bf16 else 'no'} | {'yes' if channels_last else 'no'} "
                  f"| {ips:.1f} | {EPOCH_IMAGES[dataset] / ips:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
