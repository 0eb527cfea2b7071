"""Reading the stage outputs under ``runs/`` (the run-directory contract of docs/design.md).

Only reading: every number the tables and plots show comes from these files, and every row names
the directories it came from. A missing required file or key is a DartsError naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from darts import rundir
from darts.errors import DartsError
from darts.io import read_json
from darts.rundir import Run, read_history, read_run, run_dirs

__all__ = ["Run", "Selection", "final_runs", "read_history", "search_runs", "selection", "snapshot_runs"]


@dataclass
class Selection:
    """A best-of-N selection: ``selected.json`` plus the candidates' training runs."""

    dir: Path
    chosen: str
    score: float | None
    metric: str | None
    candidates: list[Run]
    meta: dict[str, Any] | None


def final_runs(runs_root: Path, stage: str) -> dict[str, list[Run]]:
    """``runs/<stage>/<method>[-r<run>]/`` grouped by method, runs in index order."""
    grouped: dict[str, list[Run]] = {}
    for path in run_dirs(runs_root / stage):
        method, index = rundir.split_train_name(path.name)
        grouped.setdefault(method, []).append(read_run(path, rundir.TRAIN_COST, {"run": index}))
    for runs in grouped.values():
        runs.sort(key=lambda r: r.label["run"])
    return grouped


def search_runs(runs_root: Path, space: str, order: str | None = None) -> list[Run]:
    """``runs/search_<space>/<order>/s<seed>/`` (of one order, or both), sorted by order and seed.

    The order is the folder listed; the seed is the one the search recorded in its ``meta.json``.
    """
    found = []
    for each in (order,) if order else rundir.ORDERS:
        for path in run_dirs(rundir.order_dir(runs_root, space, each)):
            run = read_run(path, rundir.SEARCH_COST, {"order": each})
            if not isinstance((run.meta or {}).get("seed"), int):
                raise DartsError(f"{path / rundir.META}: missing integer 'seed' (every search records its seed)")
            run.label["seed"] = run.meta["seed"]
            found.append(run)
    return sorted(found, key=lambda r: (r.label["order"], r.label["seed"]))


def selection(runs_root: Path, space: str, method: str) -> Selection | None:
    """``runs/select_<space>/<method>/``: the chosen candidate and every candidate's training run."""
    path = rundir.select_dir(runs_root, space, method)
    if not (path / rundir.SELECTED).is_file():
        return None
    record = read_json(path / rundir.SELECTED)
    if "chosen" not in record:
        raise DartsError(f"{path / rundir.SELECTED}: missing key 'chosen'")
    candidates = [read_run(p, rundir.TRAIN_COST, {"name": p.name}) for p in run_dirs(path / rundir.CANDIDATES)]
    return Selection(path, str(record["chosen"]), record.get("score"), record.get("metric"), candidates,
                     rundir.read_optional(path / rundir.META))


def snapshot_runs(runs_root: Path, space: str) -> list[Run]:
    """``runs/snapshot_eval/<space>/<order>-s<seed>/e<epoch>/`` (the data of the paper's Fig. 3).

    Each search's ``snapshots.json`` names its order, seed and epochs; a folder without one has not finished.
    """
    found = []
    for search in run_dirs(rundir.snapshot_root(runs_root, space)):
        if not (search / rundir.SNAPSHOTS).is_file():
            continue
        record = read_json(search / rundir.SNAPSHOTS)
        missing = [k for k in ("order", "seed", "snapshots") if k not in record]
        if missing:
            raise DartsError(f"{search / rundir.SNAPSHOTS}: missing {', '.join(repr(k) for k in missing)}")
        for snapshot in record["snapshots"]:
            label = {"order": record["order"], "seed": int(record["seed"]), "epoch": int(snapshot["epoch"])}
            path = rundir.snapshot_epoch_dir(search, label["epoch"])
            found.append(read_run(path, rundir.TRAIN_COST, label))
    return sorted(found, key=lambda r: (r.label["order"], r.label["seed"], r.label["epoch"]))
