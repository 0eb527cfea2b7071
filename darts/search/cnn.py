"""The CNN search on CIFAR-10 (Sect. 2.3, Alg. 1; App. A.1.1).

The first half of the training set trains the weights, the second half the architecture. Each step
updates the alphas on the next batch of a cycled stream over the second half, then the weights on
a batch of the first half (SGD, cosine-annealed learning rate, epoch 0 at the initial rate,
gradient clipping). Both streams are functions of (seed, epoch), so a resumed run sees the batches
an uninterrupted one would. Writes the run directory of docs/design.md.
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

from darts import runtime, schedules
from darts.config import Params, SearchCNN, config_hash, section_dict
from darts.data import cifar
from darts.data.loading import derive_seed, epoch_loader, eval_loader
from darts.evaluation import evaluate_classifier, topk_hits
from darts.run import Run
from darts.search.bilevel import Architect
from darts.search.common import alphas_softmax, check_finite, eigenvalue_due, result_files
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


def run_key(params: Params, seed: int, data_summary: dict[str, Any], layout: torch.memory_format) -> str:
    """Everything that determines the search: a changed input starts a fresh run.

    The memory layout enters resolved (``auto`` becomes what it ran as): in float32 the layout
    changes the alpha gradients (DEVIATIONS.md), so a run never resumes in another layout, e.g. a
    CPU (channels_last) checkpoint on CUDA (contiguous); ``auto`` on the CPU and an explicit
    ``channels_last`` are the same run."""
    sections = section_dict(params, "search_cnn")
    sections["search_cnn"]["memory_format"] = layout_name(layout)
    return config_hash("search_cnn", sections, seed, data_summary)


def search(params: Params, seed: int, out: str | Path, data_root: str | Path) -> dict[str, Any]:
    """Run (or resume) the search; write the run directory; return its final metrics."""
    cfg = params.search_cnn
    device = runtime.setup(params.runtime, seed)
    data = load_search_data(cfg, data_root)
    layout = memory_format(cfg, device)
    key = run_key(params, seed, data.summary, layout)
    model = SearchNetwork(cfg.init_channels, cifar.NUM_CLASSES, cfg.layers, alpha_init=cfg.alpha_init,
                          alpha_init_scale=cfg.alpha_init_scale,
                          track_running_stats=cfg.track_running_stats).to(device)
    model = model.to(memory_format=layout)
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=cfg.arch_lr, betas=cfg.arch_betas,
                             weight_decay=cfg.arch_weight_decay)
    architect = Architect(model, w_opt, a_opt, cross_entropy, order=cfg.order, hessian=cfg.hessian,
                          fd_epsilon=cfg.fd_epsilon)
    run = Run(params, "search_cnn", key, seed, out, {"model": model, "weight_optimizer": w_opt, "arch_optimizer": a_opt},
              "search", order=cfg.order, hessian=cfg.hessian, data=data.summary)
    loader_kw = {"num_workers": params.runtime.num_workers, "pin_memory": device.type == "cuda"}
    # The eigenvalue diagnostic's fixed batch: the first of the held-out half, unaugmented.
    probe = _to(next(iter(eval_loader(data.held_out, cfg.batch_size, **loader_kw))), device, layout) \
        if cfg.eigenvalue_every else None

    for epoch in range(run.start_epoch, cfg.epochs):
        started = time.monotonic()
        lr = learning_rate(cfg, epoch)
        for group in w_opt.param_groups:
            group["lr"] = lr
        weight_batches = epoch_loader(data.weights, cfg.batch_size, seed=seed, epoch=epoch, **loader_kw)
        arch_batches = _cycle(data.arch, cfg.batch_size, derive_seed(seed, "arch"), epoch, loader_kw)
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        row |= train_epoch(model, architect, weight_batches, arch_batches, cfg, device, layout, epoch + 1,
                           params.runtime.progress)
        row |= evaluate(model, eval_loader(data.held_out, cfg.batch_size, **loader_kw), device, layout)
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


def train_epoch(model: SearchNetwork, architect: Architect, weight_batches: Any, arch_batches: Iterator[Batch],
                cfg: SearchCNN, device: torch.device, layout: torch.memory_format, epoch: int,
                progress: bool) -> dict[str, float]:
    """Alg. 1 over one pass of the weights' half: an alpha step, then a weight step, per batch."""
    from tqdm import tqdm

    model.train()
    weights = model.weight_parameters()
    sums = torch.zeros(5, dtype=torch.float64, device=device)  # loss * n, top-1, top-5, n, arch loss * n
    for step, batch in enumerate(tqdm(weight_batches, desc=f"epoch {epoch}", disable=not progress, leave=False), 1):
        x, y = _to(batch, device, layout)
        arch = architect.step((x, y), _to(next(arch_batches), device, layout))
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        check_finite({"train loss": loss.detach(), "architecture loss": arch.loss}, epoch, step)
        w_opt = architect.weight_optimizer
        w_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        check_finite({"weight gradient norm": nn.utils.clip_grad_norm_(weights, cfg.grad_clip)}, epoch, step)
        w_opt.step()
        top1, top5 = topk_hits(logits.detach(), y)
        n = float(y.numel())
        sums += torch.stack([loss.detach().double() * n, top1, top5, _scalar(n, device), arch.loss.double() * n])
    loss_sum, top1, top5, n, arch_sum = sums.tolist()
    return {"train_loss": loss_sum / n, "train_acc": 100.0 * top1 / n, "train_top5": 100.0 * top5 / n,
            "arch_loss": arch_sum / n}


def evaluate(model: nn.Module, loader: Any, device: torch.device, layout: torch.memory_format) -> dict[str, float]:
    """Loss and top-1/top-5 accuracy (%) on the held-out half, BatchNorm in eval mode."""
    result = evaluate_classifier(model, (_to(batch, device, layout) for batch in loader), device)
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
    if choice == "auto":
        choice = "channels_last" if device.type == "cpu" else "contiguous"
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
