"""The CNN search on CIFAR-10 (Sect. 2.3, Alg. 1; App. A.1.1).

The first half of the training set trains the weights, the second half the architecture. Each step
updates the alphas on the next batch of a cycled stream over the second half, then the weights on
a batch of the first half (SGD, cosine-annealed learning rate, epoch 0 at the initial rate,
gradient clipping). Both streams are functions of (seed, epoch), so a resumed run sees the batches
an uninterrupted one would. Writes the run directory of docs/design.md.

Data-parallel under torchrun (DEVIATIONS.md, "Data-parallel search"): ``batch_size`` is the global
batch; each rank takes its slice of every batch of both streams (the union is the one-process
batch), BatchNorm normalises each rank's slice on its own (ghost batches), and the architecture and
weight steps use gradients averaged over the ranks, so weights and alphas stay the same on every
rank. Rank 0 writes; every rank resumes from the checkpoint.
"""

from __future__ import annotations

import copy
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from darts import distributed as D
from darts import runtime, schedules
from darts.config import Params, SearchCNN, config_hash, section_dict
from darts.data import cifar
from darts.data.loading import derive_seed, epoch_loader, eval_loader
from darts.errors import DartsError
from darts.evaluation import evaluate_classifier, topk_hits
from darts.run import Run
from darts.search.bilevel import Architect
from darts.search.common import (
    all_finite_check,
    alphas_softmax,
    average_buffers,
    average_gradients,
    check_finite,
    eigenvalue_due,
    in_world,
    reducer,
    result_files,
)
from darts.spaces.cnn.search_network import SearchNetwork

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class SearchData:
    weights: Dataset  # first half, augmented: trains the weights
    arch: Dataset  # second half, augmented: trains the alphas
    held_out: Dataset  # second half without augmentation: validation metrics, diagnostics
    summary: dict[str, Any]


def load_search_data(cfg: SearchCNN, root: str | Path) -> SearchData:
    weights, arch = cifar.search_datasets(root, cfg.train_portion, cfg.train_images, cfg.cutout)
    held_out = copy.copy(arch)
    held_out.transform = cifar.eval_transform()
    return SearchData(weights, arch, held_out, cifar.manifest_summary(root))


def learning_rate(cfg: SearchCNN, epoch: int) -> float:
    """Cosine annealing from ``lr`` to ``lr_min`` over ``epochs``; epoch 0 (0-based) trains at ``lr``."""
    return schedules.cosine(cfg.lr, cfg.lr_min, epoch, cfg.epochs)


def cross_entropy(forward: Callable[..., torch.Tensor], batch: Batch) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(forward(x), y)


def run_key(params: Params, seed: int, data_summary: dict[str, Any], layout: torch.memory_format,
            world_size: int = 1) -> str:
    """Everything that determines the search: a changed input starts a fresh run.

    The memory layout enters resolved (``auto`` becomes what it ran as): in float32 the layout
    changes the alpha gradients (DEVIATIONS.md), so a run never resumes in another layout, e.g. a
    CPU (channels_last) checkpoint on CUDA (contiguous); ``auto`` on the CPU and an explicit
    ``channels_last`` are the same run. The number of processes is in the key too (each one's
    BatchNorm sees its own slice of the batch): a rerun on another world size starts fresh."""
    sections = section_dict(params, "search_cnn")
    sections["search_cnn"]["memory_format"] = layout_name(layout)
    sections["search_cnn"]["world_size"] = world_size
    return config_hash("search_cnn", sections, seed, data_summary)


def search(params: Params, seed: int, out: str | Path, data_root: str | Path) -> dict[str, Any]:
    """Run (or resume) the search; write the run directory; return its final metrics."""
    return in_world(params.runtime, seed, lambda device, world: _search(params, seed, out, data_root, device, world))


def _search(params: Params, seed: int, out: str | Path, data_root: str | Path, device: torch.device,
            world: D.World) -> dict[str, Any]:
    cfg = params.search_cnn
    batch = D.per_rank_batch(cfg.batch_size, world)
    data = load_search_data(cfg, data_root)
    layout = memory_format(cfg, device)
    key = run_key(params, seed, data.summary, layout, world.size)
    model, architect = build_search(cfg, device, layout, world)
    if world.distributed:  # the same initial network on every rank, then each rank its own random stream
        runtime.seed_everything(derive_seed(seed, "rank", world.rank))
    w_opt, a_opt = architect.weight_optimizer, architect.arch_optimizer
    run = Run(params, "search_cnn", key, seed, out, {"model": model, "weight_optimizer": w_opt, "arch_optimizer": a_opt},
              "search", world, order=cfg.order, hessian=cfg.hessian, data=data.summary, world_size=world.size)
    loader_kw = {"num_workers": params.runtime.num_workers, "pin_memory": device.type == "cuda"}
    shard = {"rank": world.rank, "world_size": world.size}
    # The eigenvalue diagnostic's fixed batch: the first of the held-out half, unaugmented (this rank's slice).
    probe = _to(next(iter(eval_loader(data.held_out, batch, **loader_kw, **shard))), device, layout) \
        if cfg.eigenvalue_every else None

    for epoch in range(run.start_epoch, cfg.epochs):
        started = time.monotonic()
        lr = learning_rate(cfg, epoch)
        for group in w_opt.param_groups:
            group["lr"] = lr
        weight_batches = epoch_loader(data.weights, batch, seed=seed, epoch=epoch, **loader_kw, **shard)
        arch_batches = _cycle(data.arch, batch, derive_seed(seed, "arch"), epoch, loader_kw | shard)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        row |= train_epoch(model, architect, weight_batches, arch_batches, cfg, device, layout, epoch + 1,
                           params.runtime.progress and world.is_main, world)
        average_buffers(model, world)  # one model again: each rank's BatchNorm averages saw its own slices
        row |= evaluate(model, eval_loader(data.held_out, batch, **loader_kw, **shard), device, layout, world)
        if eigenvalue_due(cfg.eigenvalue_every, epoch + 1):
            row["hessian_eigenvalue"] = architect.hessian_eigenvalue(probe, cfg.eigenvalue_iterations)
        genotype = model.genotype()
        row |= {
            "skip_connects": sum(op == "skip_connect" for op, _ in genotype.normal),
            "seconds": round(time.monotonic() - started, 3),
            "order": cfg.order, "hessian": cfg.hessian,
            "genotype": genotype.to_json(),
            "alphas_softmax": alphas_softmax(_alphas(model)),
        }
        run.end_epoch(row, ("train_loss", "train_acc", "valid_acc", "skip_connects"))

    last = run.history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_acc", "valid_loss", "valid_acc", "skip_connects")}
    if "hessian_eigenvalue" in last:
        metrics["hessian_eigenvalue"] = last["hessian_eigenvalue"]
    run.finish(metrics, device, result_files(model.genotype(), _alphas(model)))
    return metrics


def build_search(cfg: SearchCNN, device: torch.device, layout: torch.memory_format,
                 world: D.World = D.World()) -> tuple[SearchNetwork, Architect]:
    """The search network (from the global random state) and its ``Architect`` with both optimizers,
    as the search runs them (also benchmarks/gpu_check.py's search step)."""
    model = SearchNetwork(cfg.init_channels, cifar.NUM_CLASSES, cfg.layers, alpha_init=cfg.alpha_init,
                          alpha_init_scale=cfg.alpha_init_scale,
                          track_running_stats=cfg.track_running_stats,
                          checkpoint_cells=cfg.checkpoint_cells).to(device)
    model = model.to(memory_format=layout)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=cfg.arch_lr, betas=cfg.arch_betas,
                             weight_decay=cfg.arch_weight_decay)
    return model, Architect(model, w_opt, a_opt, cross_entropy, order=cfg.order, hessian=cfg.hessian,
                            fd_epsilon=cfg.fd_epsilon, reduce=reducer(world))


def train_epoch(model: SearchNetwork, architect: Architect, weight_batches: Any, arch_batches: Iterator[Batch],
                cfg: SearchCNN, device: torch.device, layout: torch.memory_format, epoch: int,
                progress: bool, world: D.World = D.World()) -> dict[str, float]:
    """Alg. 1 over one pass of the weights' half: an alpha step, then a weight step, per batch (this
    rank's slices of them; the gradients of both steps are averaged over the ranks)."""
    from tqdm import tqdm

    model.train()
    weights = model.weight_parameters()
    sums = torch.zeros(5, dtype=torch.float64, device=device)  # loss * n, top-1, top-5, n, arch loss * n
    for step, batch in enumerate(tqdm(weight_batches, desc=f"epoch {epoch}", disable=not progress, leave=False), 1):
        x, y = _to(batch, device, layout)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):  # search_cnn.bf16
            arch = architect.step((x, y), _to(next(arch_batches), device, layout))
            logits = model(x)
        loss = F.cross_entropy(logits, y)
        check_finite(all_finite_check({"train loss": loss.detach(), "architecture loss": arch.loss}, world),
                     epoch, step)
        w_opt = architect.weight_optimizer
        w_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        average_gradients(weights, world)
        check_finite({"weight gradient norm": nn.utils.clip_grad_norm_(weights, cfg.grad_clip)}, epoch, step)
        w_opt.step()
        top1, top5 = topk_hits(logits.detach(), y)
        n = float(y.numel())
        sums += torch.stack([loss.detach().double() * n, top1, top5, _scalar(n, device), arch.loss.double() * n])
    loss_sum, top1, top5, n, arch_sum = D.all_sum(sums, world).tolist()
    return {"train_loss": loss_sum / n, "train_acc": 100.0 * top1 / n, "train_top5": 100.0 * top5 / n,
            "arch_loss": arch_sum / n}


def evaluate(model: nn.Module, loader: Any, device: torch.device, layout: torch.memory_format,
             world: D.World = D.World()) -> dict[str, float]:
    """Loss and top-1/top-5 accuracy (%) on the held-out half (each rank its slice), BatchNorm in eval mode."""
    result = evaluate_classifier(model, (_to(batch, device, layout) for batch in loader), device,
                                 reduce=lambda sums: D.all_sum(sums, world))
    model.train()
    return {"valid_loss": result.loss, "valid_acc": result.top1, "valid_top5": result.top5}


def _cycle(dataset: Dataset, batch_size: int, seed: int, epoch: int, loader_kw: dict) -> Iterator[Batch]:
    """Batches of ``dataset`` without end: pass k of epoch e is shuffled by (seed, k, e)."""
    for k in itertools.count():
        yield from epoch_loader(dataset, batch_size, seed=derive_seed(seed, k), epoch=epoch, **loader_kw)


def _alphas(model: SearchNetwork) -> dict[str, torch.Tensor]:
    return {"normal": model.alphas_normal, "reduce": model.alphas_reduce}


def _scalar(value: float, device: torch.device) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64, device=device)


def memory_format(cfg: SearchCNN, device: torch.device) -> torch.memory_format:
    """channels_last on the CPU under ``auto``: its convolutions and pools run ~1.6x faster there.
    Not the same float32 numbers as contiguous (DEVIATIONS.md); the resolved layout is in the run key."""
    choice = cfg.memory_format
    # bf16 autocast with channels_last on the CPU gives NaN gradients from the first step (torch 2.14.1)
    cpu_bf16 = device.type == "cpu" and cfg.bf16
    if choice == "auto":
        choice = "channels_last" if device.type == "cpu" and not cpu_bf16 else "contiguous"
    elif choice == "channels_last" and cpu_bf16:
        raise DartsError("search_cnn.bf16 with search_cnn.memory_format=channels_last on the CPU gives NaN "
                         "gradients (torch's CPU bf16 kernels); use memory_format auto or contiguous")
    return torch.channels_last if choice == "channels_last" else torch.contiguous_format


def layout_name(layout: torch.memory_format) -> str:
    """The ``memory_format`` value that names a resolved layout."""
    if layout == torch.channels_last:
        return "channels_last"
    if layout == torch.contiguous_format:
        return "contiguous"
    raise ValueError(f"not a search layout: {layout}")


def _to(batch: Batch, device: torch.device, layout: torch.memory_format) -> Batch:
    x, y = batch
    return x.to(device, non_blocking=True, memory_format=layout), y.to(device, non_blocking=True)
