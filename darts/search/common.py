"""What the CNN and RNN searches share around their epoch loops: resumable state, the per-epoch
record, the diagnostics, the NaN guard and the final outputs (docs/design.md, "Run directories").

A search loop builds its model and optimizers, opens a ``SearchRun`` (which resumes them from the
checkpoint of the same configuration, if any), calls ``end_epoch`` after every epoch and ``finish``
once at the end; only ``finish`` writes genotype.json, so a run that stops early leaves none.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol

import torch
from torch import Tensor

from darts import runtime
from darts.checkpoint import Checkpoint
from darts.config import Params, section_dict
from darts.errors import DartsError
from darts.io import write_json
from darts.recording import Recorder, device_cost, write_meta

if TYPE_CHECKING:
    from darts.genotypes import Genotype

FINAL_OUTPUTS = ("genotype.json", "alphas.json", "metrics.json", "search_cost.json")


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


class SearchRun:
    """Checkpoint, history and outputs of one search.

    ``stateful`` (model, optimizers, ...) and every random generator are restored from the
    checkpoint keyed by ``key`` if there is one; the loop then starts at ``start_epoch``. Data
    order must be a function of (seed, epoch) (see darts.data.loading), so it needs no state.
    """

    def __init__(self, params: Params, section: str, key: str, seed: int, out: str | Path,
                 stateful: Mapping[str, Stateful], **meta: Any):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        for name in FINAL_OUTPUTS:  # a stale result must not outlive a rerun that fails
            (self.out / name).unlink(missing_ok=True)
        self.stateful = stateful
        self.checkpoint = Checkpoint(params.runtime.checkpoint_dir, section, key)
        self.start_epoch, history, self._wall_before = 0, [], 0.0
        state = self.checkpoint.load()
        if state is not None:
            for name, obj in stateful.items():
                obj.load_state_dict(state["states"][name])
            runtime.set_rng_state(state["rng"])
            self.start_epoch, history, self._wall_before = state["epoch"], state["history"], state["wall_seconds"]
        self._started = time.monotonic()
        write_meta(self.out, section_dict(params, "runtime", section), seed=seed, run_key=key, **meta)
        self.recorder = Recorder(self.out, getattr(params, section).epochs, history)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.recorder.history

    def wall_seconds(self) -> float:
        return self._wall_before + time.monotonic() - self._started

    def end_epoch(self, row: dict[str, Any], summary_keys: tuple[str, ...] = ()) -> None:
        """Record the epoch (history.jsonl, metrics.csv, a line with ETA), then checkpoint it."""
        self.recorder.log_epoch(row, summary_keys)
        self.checkpoint.save({
            "epoch": row["epoch"],
            "states": {name: obj.state_dict() for name, obj in self.stateful.items()},
            "rng": runtime.rng_state(),
            "history": self.history,
            "wall_seconds": self.wall_seconds(),
        })

    def finish(self, genotype: Genotype, alphas: Mapping[str, Tensor], metrics: dict[str, Any],
               device: torch.device) -> None:
        """genotype.json, alphas.json (raw), search_cost.json and metrics.json."""
        write_json(self.out / "alphas.json", {name: a.detach().cpu().tolist() for name, a in alphas.items()})
        write_json(self.out / "search_cost.json", device_cost(device, self.wall_seconds()))
        self.recorder.finish(metrics)
        genotype.save(self.out / "genotype.json")


def alphas_softmax(alphas: Mapping[str, Tensor], digits: int = 6) -> dict[str, list]:
    """softmax(alpha) over the ops of each edge, rounded for a readable history."""
    return {name: torch.softmax(a.detach().float(), dim=-1).cpu().round(decimals=digits).tolist()
            for name, a in alphas.items()}


def check_finite(values: Mapping[str, Tensor | float], epoch: int, step: int) -> None:
    """Stop a diverged search before it writes a genotype (``epoch`` and ``step`` from 1)."""
    bad = {k: float(v) for k, v in values.items() if not math.isfinite(float(v))}
    if bad:
        shown = ", ".join(f"{k}={v}" for k, v in bad.items())
        raise DartsError(f"search diverged at epoch {epoch}, step {step}: non-finite {shown}; "
                         "no genotype was written (lower the learning rate or check the data)")


def eigenvalue_due(every: int, epoch: int) -> bool:
    """Whether the Hessian-eigenvalue diagnostic runs after ``epoch`` (from 1); ``every`` 0 = never."""
    return every > 0 and epoch % every == 0

