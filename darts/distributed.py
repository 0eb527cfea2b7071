"""One process or many, with the same loop code: the process group, this process's place in it,
and the collectives a loop needs. Shared infrastructure: training and search both import it.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the process group is initialised from
the environment, each process takes one GPU (``LOCAL_RANK``), the model is wrapped in
DistributedDataParallel, each rank takes its share of every batch (the data loaders of
``darts.data.loading`` shard by rank) and only rank 0 writes files. As a single process every
helper here is a no-op, so the caller never branches on the world size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from darts.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs, checkpoints and writes outputs."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes in the environment; pin this rank's GPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World(), device
    world = World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        torch.cuda.set_device(world.local_rank)
        device = torch.device("cuda", world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DDP around the model when distributed; the model itself otherwise."""
    if not world.distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def per_rank_batch(batch_size: int, world: World) -> int:
    """The params give the global batch (the paper's); each rank takes an equal share."""
    if batch_size % world.size:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the {world.size} processes of this run")
    return batch_size // world.size


def all_sum(values: torch.Tensor, world: World) -> torch.Tensor:
    """Element-wise sum over ranks (the identity for one process)."""
    if world.distributed:
        values = values.clone()
        dist.all_reduce(values)
    return values


def gather_objects(obj: Any, world: World) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list for one process)."""
    if not world.distributed:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def sync_buffers(model: nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts them at the start of each forward, so after the last training step each rank
    still holds statistics updated by its own batch; evaluation must use the saved ones.
    """
    if world.distributed:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()
