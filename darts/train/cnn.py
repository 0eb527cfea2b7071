"""Retraining a CNN genotype from scratch: CIFAR-10 final runs, CIFAR-10 selection runs, ImageNet.

One loop serves all three. What differs is small and lives in ``Task`` and the data/model
builders: the data (the 50k training set, the first half of the search split, or ImageNet), the
schedule (cosine or step, from params), label smoothing (params), and the reported metric (test
error, held-out error, or top-1/top-5). The evaluation set is read once, after the last epoch,
so it influences nothing during training; the last epoch is reported, never the best.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from darts import distributed as D
from darts import rundir, runtime, schedules
from darts.config import Params, TrainCNN, config_hash, section_dict
from darts.data import loading
from darts.errors import DartsError
from darts.evaluation import EvalResult, evaluate_classifier
from darts.checkpoint import save_tensors
from darts.run import Run

if TYPE_CHECKING:
    from darts.genotypes import CNNGenotype

log = logging.getLogger(__name__)

DatasetName = Literal["cifar10", "imagenet"]
Split = Literal["full", "search"]


@dataclass(frozen=True)
class Task:
    """Which of the three runs this is: it names the params section and the reported metric."""

    dataset: DatasetName
    split: Split = "full"

    def __post_init__(self) -> None:
        if self.dataset == "imagenet" and self.split != "full":
            raise DartsError("--split search is a CIFAR-10 selection run; ImageNet trains on its full training set")

    @property
    def section(self) -> str:
        """The params section: ``train_cifar10``, ``select_cnn`` or ``train_imagenet``."""
        if self.dataset == "imagenet":
            return "train_imagenet"
        return "select_cnn" if self.split == "search" else "train_cifar10"

    @property
    def eval_name(self) -> str:
        """What the evaluation set is called in metrics.json."""
        if self.dataset == "imagenet":
            return "val"
        return "valid" if self.split == "search" else "test"


@dataclass
class TaskData:
    train: Dataset
    eval: Dataset
    num_classes: int
    summary: dict[str, Any]  # data manifest summary: provenance and part of the run's key


def learning_rate(cfg: TrainCNN, epoch: int) -> float:
    """The learning rate of epoch ``epoch`` (0-based; epoch 0 trains at ``cfg.lr``).

    cosine: annealed from ``lr`` towards ``lr_min`` over ``epochs`` (CIFAR-10);
    step: ``lr * lr_gamma ** (epoch // lr_decay_period)`` (ImageNet: x0.97 per epoch).
    """
    if cfg.lr_schedule == "cosine":
        return schedules.cosine(cfg.lr, cfg.lr_min, epoch, cfg.epochs)
    return schedules.step(cfg.lr, cfg.lr_gamma, cfg.lr_decay_period, epoch)


def drop_path_prob(cfg: TrainCNN, epoch: int) -> float:
    """Ramped linearly from 0 at epoch 0 towards ``cfg.drop_path_prob`` (the official schedule)."""
    return schedules.linear_ramp(cfg.drop_path_prob, epoch, cfg.epochs)


def load_data(task: Task, params: Params, root: Path) -> TaskData:
    """The training set and the evaluation set of the task, with the section's image caps."""
    cfg: TrainCNN = getattr(params, task.section)
    if task.dataset == "imagenet":
        from darts.data import imagenet

        train_set = imagenet.train_dataset(root)
        eval_set, num_classes, summary = load_eval_data(task, params, root)
        return TaskData(loading.take(train_set, cfg.train_images), eval_set, num_classes, summary)
    from darts.data import cifar

    train_x, train_y, test_x, test_y = cifar.load_cifar10(root)
    if task.split == "search":
        fit_idx, held_idx = cifar.search_split(len(train_y), params.search_cnn.train_portion)
        fit_x, fit_y, eval_x, eval_y = train_x[fit_idx], train_y[fit_idx], train_x[held_idx], train_y[held_idx]
    else:
        fit_x, fit_y, eval_x, eval_y = train_x, train_y, test_x, test_y
    return TaskData(
        train=cifar.train_dataset(fit_x, fit_y, cutout=cfg.cutout, limit=cfg.train_images),
        eval=cifar.eval_dataset(eval_x, eval_y, limit=cfg.eval_images),
        num_classes=10,
        summary=cifar.manifest_summary(root),
    )


def load_eval_data(task: Task, params: Params, root: Path) -> tuple[Dataset, int, dict[str, Any]]:
    """Only the evaluation set (for `darts evaluate`): (dataset, number of classes, data summary)."""
    cfg: TrainCNN = getattr(params, task.section)
    if task.dataset == "imagenet":
        from darts.data import imagenet

        val_set = imagenet.val_dataset(root)
        return loading.take(val_set, cfg.eval_images), imagenet.num_classes(val_set), imagenet.manifest_summary(root)
    data = load_data(task, params, root)
    return data.eval, data.num_classes, data.summary


def build_model(task: Task, cfg: TrainCNN, genotype: CNNGenotype, num_classes: int) -> nn.Module:
    """The evaluation network of the task; the auxiliary tower only when its loss has a weight."""
    from darts.spaces.cnn.eval_network import NetworkCIFAR, NetworkImageNet

    network = NetworkImageNet if task.dataset == "imagenet" else NetworkCIFAR
    return network(cfg.init_channels, num_classes, cfg.layers, cfg.auxiliary_weight > 0, genotype)


def load_trained(task: Task, cfg: TrainCNN, genotype: CNNGenotype, num_classes: int, weights: Path) -> nn.Module:
    """The network the params describe, with saved weights loaded strictly (ours or the official ones)."""
    from darts.spaces.cnn.weights import load_official_state_dict

    model = build_model(task, cfg, genotype, num_classes)
    load_official_state_dict(model, weights)
    return model


def run_key(task: Task, params: Params, genotype: CNNGenotype, seed: int, data_summary: dict,
            world_size: int = 1) -> str:
    """The checkpoint key: everything that determines the run, so a changed input starts fresh. The
    number of processes is in it (each rank's BatchNorm statistics and drop-path draws): a rerun on
    another world size starts fresh (one process keeps the key it always had)."""
    parts: list[Any] = [task.dataset, task.split, section_dict(params, task.section), genotype.to_json(), seed,
                        data_summary]
    if task.split == "search":
        parts.append({"train_portion": params.search_cnn.train_portion})
    if world_size > 1:
        parts.append({"world_size": world_size})
    return config_hash(*parts)


def train(task: Task, params: Params, genotype: CNNGenotype, seed: int, out: Path, data_root: Path) -> dict:
    """Train ``genotype`` from scratch with the task's recipe; write the run directory; return metrics."""
    cfg: TrainCNN = getattr(params, task.section)
    device = runtime.setup(params.runtime, seed)
    world, device = D.init_world(device)
    try:
        data = load_data(task, params, data_root)
        key = run_key(task, params, genotype, seed, data.summary, world.size)
        model = build_model(task, cfg, genotype, data.num_classes).to(device)  # the same on every rank
        if world.distributed:  # then each rank its own drop-path draws
            runtime.seed_everything(loading.derive_seed(seed, "rank", world.rank))
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        net = D.wrap_model(model, world, device)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)
        run = Run(params, task.section, key, seed, out, {"model": model, "optimizer": optimizer}, "train", world,
                  dataset=task.dataset, split=task.split, genotype=genotype.to_json(), data=data.summary,
                  world_size=world.size)

        criterion = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        batch = D.per_rank_batch(cfg.batch_size, world)
        for epoch in range(run.start_epoch, cfg.epochs):
            t0 = time.monotonic()
            lr = learning_rate(cfg, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.drop_path_prob = drop_path_prob(cfg, epoch)
            loader = _train_loader(data.train, batch, world, seed, epoch, params, device)
            loss, acc = train_epoch(net, loader, optimizer, criterion, cfg, device, world)
            if not math.isfinite(loss):
                raise DartsError(f"training diverged: non-finite loss ({loss}) in epoch {epoch + 1} "
                                 f"(lr {lr:.4g}); no checkpoint of this epoch was written")
            run.end_epoch({"epoch": epoch + 1, "lr": lr, "drop_path_prob": model.drop_path_prob,
                           "train_loss": loss, "train_acc": acc, "seconds": round(time.monotonic() - t0, 3)},
                          ("train_loss", "train_acc", "lr"))
            D.barrier(world)

        D.sync_buffers(model, world)
        result = evaluate(model, data.eval, cfg, device, world, params.runtime.num_workers)
        metrics = report(task, cfg, result, model, data)
        run.finish(metrics, device, {rundir.WEIGHTS: lambda path: save_weights(model, path)})
        if world.is_main:
            log.info("%s: %s", task.section, ", ".join(f"{k}={v}" for k, v in metrics.items()
                                                         if k.endswith(("error", "loss"))))
        return metrics
    finally:
        D.shutdown(world)


def _train_loader(dataset: Dataset, batch: int, world: D.World, seed: int, epoch: int, params: Params,
                  device: torch.device) -> DataLoader:
    """This rank's batches of ``epoch``: order and augmentation are functions of (seed, epoch) alone."""
    per_rank = math.ceil(len(dataset) / world.size)  # type: ignore[arg-type]
    # A last batch of a single image cannot be batch-normalised at 1x1 in the auxiliary tower.
    return loading.epoch_loader(dataset, batch, seed=seed, epoch=epoch, drop_last=per_rank % batch == 1,
                                num_workers=params.runtime.num_workers, pin_memory=device.type == "cuda",
                                rank=world.rank, world_size=world.size)


def _autocast(cfg: TrainCNN, device: torch.device) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if cfg.bf16 else nullcontext()


def _to_device(x: torch.Tensor, cfg: TrainCNN, device: torch.device) -> torch.Tensor:
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return x.to(device, non_blocking=True, memory_format=fmt)


def train_epoch(net: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, criterion: nn.Module,
                cfg: TrainCNN, device: torch.device, world: D.World) -> tuple[float, float]:
    """One pass over this rank's share; returns the (global) mean training loss (with the weighted
    auxiliary term, as the official logs) and top-1 accuracy (%).

    Sums stay on the device, so the loop never waits on the GPU; a non-finite loss shows in the
    returned mean and stops the run before the epoch is checkpointed. So does a non-finite gradient
    norm, which clipping would otherwise turn into a silent zero update.
    """
    net.train()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss * n, correct, n, non-finite norms
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for x, y in loader:
        x, y = _to_device(x, cfg, device), y.to(device, non_blocking=True)
        with _autocast(cfg, device):
            logits, logits_aux = net(x)
            loss = criterion(logits.float(), y)
            if logits_aux is not None:
                loss = loss + cfg.auxiliary_weight * criterion(logits_aux.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        n = y.numel()
        sums += torch.stack([loss.detach().double() * n, (logits.argmax(1) == y).sum().double(),
                             torch.tensor(float(n), dtype=torch.float64, device=device),
                             (~torch.isfinite(grad_norm)).double()])
    loss_sum, correct, count, bad_norms = D.all_sum(sums, world).tolist()
    if bad_norms:
        raise DartsError(f"training diverged: non-finite gradient norm in {int(bad_norms)} step(s) of the epoch "
                         "(clipping would silently zero those updates); no checkpoint of this epoch was written")
    return loss_sum / max(count, 1.0), 100.0 * correct / max(count, 1.0)


def evaluate(model: nn.Module, dataset: Dataset, cfg: TrainCNN, device: torch.device, world: D.World,
             num_workers: int = 0) -> EvalResult:
    """Mean cross-entropy (no smoothing) and top-1/top-5 accuracy over the whole set, all ranks."""
    loader = loading.eval_loader(dataset, cfg.eval_batch_size, num_workers=num_workers,
                                 pin_memory=device.type == "cuda", rank=world.rank, world_size=world.size)

    def logits(x: torch.Tensor) -> torch.Tensor:
        with _autocast(cfg, device):
            return model(x)[0].float()

    batches = ((_to_device(x, cfg, device), y.to(device, non_blocking=True)) for x, y in loader)
    return evaluate_classifier(model, batches, device, logits, lambda sums: D.all_sum(sums, world))


def report(task: Task, cfg: TrainCNN, result: EvalResult, model: nn.Module, data: TaskData) -> dict[str, Any]:
    """metrics.json of the run, with the keys docs/design.md lists for the task."""
    from darts.spaces.cnn.counting import count_mult_adds, count_parameters

    name = task.eval_name
    metrics: dict[str, Any] = {}
    if task.dataset == "imagenet":
        metrics |= {"top1_error": round(100.0 - result.top1, 4), "top5_error": round(100.0 - result.top5, 4),
                    "val_loss": result.loss}
    else:
        metrics |= {f"{name}_error": round(100.0 - result.top1, 4), f"{name}_acc": round(result.top1, 4),
                    f"{name}_loss": result.loss}
    resolution = 224 if task.dataset == "imagenet" else 32
    metrics |= {
        "params": count_parameters(model),
        "mult_adds": count_mult_adds(model, (3, resolution, resolution)),
        "epochs": cfg.epochs,
        "classes": data.num_classes,
        "train_images": len(data.train),
        f"{name}_images": result.images,
    }
    return metrics


def save_weights(model: nn.Module, path: Path) -> None:
    """The bare network's state dict (official keys), contiguous CPU tensors, written atomically."""
    save_tensors({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, path)
