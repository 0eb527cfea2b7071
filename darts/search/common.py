"""What the CNN and RNN searches share inside their epoch loops: the alpha summary of the history,
the step-level NaN guard, the diagnostics schedule and the collectives of the data-parallel search
(DEVIATIONS.md, "Data-parallel search"). Checkpoint, history and outputs are
``darts.run.Run`` (docs/design.md, "Run directories")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from darts import distributed, rundir, runtime
from darts.distributed import World
from darts.errors import DartsError
from darts.io import write_json
from darts.run import listed, nonfinite

if TYPE_CHECKING:
    from darts.config import Runtime
    from darts.genotypes import Genotype


def result_files(genotype: Genotype, alphas: Mapping[str, Tensor]) -> dict[str, Callable[[Path], None]]:
    """The search's results beside metrics and cost, for ``Run.finish``: alphas.json (raw), genotype.json."""
    raw = {name: a.detach().cpu().tolist() for name, a in alphas.items()}
    return {rundir.ALPHAS: lambda path: write_json(path, raw), rundir.GENOTYPE: genotype.save}


def alphas_softmax(alphas: Mapping[str, Tensor], digits: int = 6) -> dict[str, list]:
    """softmax(alpha) over the ops of each edge, rounded for a readable history."""
    return {name: torch.softmax(a.detach().float(), dim=-1).cpu().round(decimals=digits).tolist()
            for name, a in alphas.items()}


def check_finite(values: Mapping[str, Tensor | float], epoch: int, step: int) -> None:
    """Stop a diverged search before it writes a genotype (``epoch`` and ``step`` from 1)."""
    if bad := nonfinite(values):
        raise DartsError(f"search diverged at epoch {epoch}, step {step}: non-finite {listed(bad)}; "
                         "no genotype was written (lower the learning rate or check the data)")


def eigenvalue_due(every: int, epoch: int) -> bool:
    """Whether the Hessian-eigenvalue diagnostic runs after ``epoch`` (from 1); ``every`` 0 = never."""
    return every > 0 and epoch % every == 0


def mean_over_ranks(tensors: list[Tensor], world: World) -> list[Tensor]:
    """Each tensor's element-wise mean over the processes (one flat all-reduce); the tensors
    themselves for one process. Every rank gets the same bits (one reduction, broadcast)."""
    if not world.distributed or not tensors:
        return list(tensors)
    flat = torch.cat([t.detach().reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    flat /= world.size
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def reducer(world: World) -> Callable[[list[Tensor]], list[Tensor]] | None:
    """The ``Architect``'s ``reduce`` for this world (None for one process)."""
    return (lambda tensors: mean_over_ranks(tensors, world)) if world.distributed else None


def average_gradients(weights: list[Tensor], world: World) -> None:
    """Replace each weight's gradient by its mean over the processes (before clipping and the step)."""
    if not world.distributed:
        return
    present = [w for w in weights if w.grad is not None]
    for w, g in zip(present, mean_over_ranks([w.grad for w in present], world)):
        w.grad = g


def average_buffers(model: nn.Module, world: World) -> None:
    """Every rank's floating buffers (BatchNorm running averages, each rank's own batches) replaced by
    their mean over the processes, so evaluation and the checkpoint see one model."""
    if not world.distributed:
        return
    buffers = [b for b in model.buffers() if b.is_floating_point()]
    for b, mean in zip(buffers, mean_over_ranks(buffers, world)):
        b.copy_(mean)


def all_finite_check(values: Mapping[str, Tensor], world: World) -> dict[str, Tensor]:
    """``values`` summed over the processes (a non-finite value on any rank stays non-finite), so
    every rank's NaN guard takes the same decision; ``values`` itself for one process."""
    if not world.distributed:
        return dict(values)
    names = list(values)
    stacked = torch.stack([values[n].detach().double() for n in names])
    dist.all_reduce(stacked)
    return dict(zip(names, stacked.unbind()))


Result = TypeVar("Result")


def in_world(runtime_params: Runtime, seed: int, body: Callable[[torch.device, World], Result]) -> Result:
    """Set up the device and seeds, join the process group (none for one process), run ``body``, leave it."""
    device = runtime.setup(runtime_params, seed)
    world, device = distributed.init_world(device)
    try:
        return body(device, world)
    finally:
        distributed.shutdown(world)
