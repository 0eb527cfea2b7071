"""One resumable run: the shape every epoch loop shares (the CNN and RNN searches, CIFAR-10/ImageNet
and language-model retraining).

A loop builds its model and optimizers, opens a ``Run`` (which clears the previous results from
``out``, restores every stateful object and random generator from the checkpoint of the same run
key, if there is one, and rewrites the history that checkpoint holds), trains from
``run.start_epoch``, calls ``end_epoch`` after each epoch and ``finish`` once at the end. Data order
must be a function of (seed, epoch) (see darts.data.loading), so it needs no state.

Only rank 0 of a distributed run writes; every rank calls ``end_epoch`` (the random states of all
ranks are gathered into the checkpoint).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol

import torch

from darts import rundir, runtime
from darts.checkpoint import Checkpoint
from darts.config import Params, section_dict
from darts.distributed import World, gather_objects
from darts.errors import DartsError
from darts.io import write_json
from darts.recording import Recorder, device_cost, write_meta

log = logging.getLogger(__name__)

Kind = Literal["search", "train"]
_RESULTS = {"search": rundir.SEARCH_RESULTS, "train": rundir.TRAIN_RESULTS}
_COST = {"search": rundir.SEARCH_COST, "train": rundir.TRAIN_COST}


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def nonfinite(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``values`` that are numbers (floats or scalar tensors) but not finite."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (float, torch.Tensor)) and not math.isfinite(float(v))}


def divergence(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The signs of divergence among a run's metrics: a NaN anywhere, or an infinite loss. An infinite
    perplexity of a finite loss (>= 700 nats, e.g. an early epoch at lr 20) is not one."""
    return {k: v for k, v in nonfinite(metrics).items() if math.isnan(v) or k.endswith("loss")}


def listed(bad: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v}" for k, v in bad.items())


class Run:
    """Checkpoint (keyed by ``key``), random states, history, outputs of one run in ``out``.

    ``stateful`` (model, optimizers, anything with ``state_dict``/``load_state_dict``) is restored
    from the checkpoint if there is one. ``kind`` names the run's result files (docs/design.md):
    a search writes genotype, alphas, metrics and search cost; a training run metrics, weights and
    train cost. ``meta`` goes into meta.json beside the params of ``section`` and ``runtime``.
    """

    def __init__(self, params: Params, section: str, key: str, seed: int, out: str | Path,
                 stateful: Mapping[str, Stateful], kind: Kind, world: World = World(), **meta: Any):
        self.out, self.kind, self.world, self.stateful = Path(out), kind, world, stateful
        self.section = section
        if world.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for name in (*_RESULTS[kind], rundir.HISTORY, rundir.METRICS_CSV):
                (self.out / name).unlink(missing_ok=True)  # a stale result must not outlive a rerun that fails
        self.checkpoint = Checkpoint(params.runtime.checkpoint_dir, section, key)
        self.start_epoch, history, self._wall_before = 0, [], 0.0
        state = self.checkpoint.load()
        if state is not None:
            self._restore(state)
            self.start_epoch, history, self._wall_before = state["epoch"], state["history"], state["wall_seconds"]
        self._started = time.monotonic()
        self.recorder = Recorder(self.out, getattr(params, section).epochs, history)
        if world.is_main:
            write_meta(self.out, section_dict(params, "runtime", section), seed=seed, run_key=key, **meta)
            if history:  # the epochs the checkpoint holds, whatever the folder held before
                self.recorder.write_history()

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            states, rng = state["states"], state["rng"]
            if not isinstance(rng, list):  # one state per rank; a dict is the format before this class
                raise TypeError("rng")
            for name, obj in self.stateful.items():
                obj.load_state_dict(states[name])
        except (KeyError, TypeError) as exc:
            raise DartsError(f"{self.checkpoint.path}: not a checkpoint of this version of the {self.section} run "
                             f"(missing {exc}); delete it to start this run fresh") from None
        if len(rng) == self.world.size:
            runtime.set_rng_state(rng[self.world.rank])
        else:
            log.warning("checkpoint written by %d processes, resumed by %d: fresh random streams",
                        len(rng), self.world.size)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.recorder.history

    def wall_seconds(self) -> float:
        return self._wall_before + time.monotonic() - self._started

    def end_epoch(self, row: dict[str, Any], summary_keys: tuple[str, ...] = ()) -> None:
        """Record the epoch (history.jsonl, metrics.csv, a line with ETA), then checkpoint it.
        A NaN metric or an infinite loss is divergence: the run stops before the epoch is recorded."""
        if bad := divergence(row):
            raise DartsError(f"{self.section} diverged at epoch {row['epoch']}: non-finite {listed(bad)}; "
                             "no checkpoint of this epoch was written (lower the learning rate or check the data)")
        if self.world.is_main:
            self.recorder.log_epoch(row, summary_keys)
        else:
            self.history.append(row)
        rng = gather_objects(runtime.rng_state(), self.world)
        if self.world.is_main:
            self.checkpoint.save({
                "epoch": row["epoch"],
                "states": {name: obj.state_dict() for name, obj in self.stateful.items()},
                "rng": rng,
                "history": self.history,
                "wall_seconds": self.wall_seconds(),
            })

    def finish(self, metrics: dict[str, Any], device: torch.device,
               files: Mapping[str, Callable[[Path], None]] = {}) -> None:
        """Write the results: ``files`` (name -> writer of that path), the cost record, the history,
        and metrics.json last. Every result is written on every path (fresh, resumed, finished)."""
        if bad := divergence(metrics):
            raise DartsError(f"{self.section} diverged: non-finite {listed(bad)} in the final metrics; "
                             "no results were written (lower the learning rate or check the data)")
        if not self.world.is_main:
            return
        for name, write in files.items():
            write(self.out / name)
        write_json(self.out / _COST[self.kind], device_cost(device, self.wall_seconds()))
        self.recorder.write_history()
        write_json(self.out / rundir.METRICS, metrics)
