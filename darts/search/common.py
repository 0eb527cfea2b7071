"""What the CNN and RNN searches share inside their epoch loops: the alpha summary of the history,
the step-level NaN guard and the diagnostics schedule. Checkpoint, history and outputs are
``darts.run.Run`` (docs/design.md, "Run directories")."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

import torch
from torch import Tensor

from darts import rundir
from darts.errors import DartsError
from darts.io import write_json
from darts.run import listed, nonfinite

if TYPE_CHECKING:
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
