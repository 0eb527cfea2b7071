"""Reading the stage outputs under ``runs/`` (the run-directory contract of docs/design.md).

Only reading: every number the tables and plots show comes from these files, and every row names
the directories it came from. A missing required file or key is a DartsError naming the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.errors import DartsError
from darts.io import read_json

FINAL_DIR = re.compile(r"^(?P<method>.+?)(?:-r(?P<run>\d+))?$")
ORDERS = ("first", "second")
SEED_DIR = re.compile(r"^s(?P<seed>\d+)$")
SKIPPED = "skipped"  # the marker `darts gate` writes for a matrix instance inactive at this scale
SNAPSHOT_SEARCH_DIR = re.compile(r"^(?P<order>first|second)-s(?P<seed>\d+)$")
SNAPSHOT_EPOCH_DIR = re.compile(r"^e(?P<epoch>\d+)$")


@dataclass
class Run:
    """One run directory: its metrics, provenance and cost record (``None`` where absent)."""

    dir: Path
    metrics: dict[str, Any]
    meta: dict[str, Any] | None
    cost: dict[str, Any] | None
    label: dict[str, Any] = field(default_factory=dict)

    @property
    def scale(self) -> str | None:
        params = (self.meta or {}).get("params") or {}
        return params.get("scale")

    @property
    def seed(self) -> int | None:
        return (self.meta or {}).get("seed", self.label.get("seed"))

    @property
    def git_revision(self) -> str | None:
        return (self.meta or {}).get("git_revision")

    @property
    def not_run(self) -> bool:
        return self.metrics.get("status") == "not_run"


@dataclass
class Selection:
    """A best-of-N selection: ``selected.json`` plus the candidates' training runs."""

    dir: Path
    chosen: str
    score: float | None
    metric: str | None
    candidates: list[Run]
    meta: dict[str, Any] | None


def skipped(path: Path) -> bool:
    """A matrix instance that did not run at this scale (``darts gate``'s marker): readers ignore it."""
    marker = path / "metrics.json"
    return marker.is_file() and read_json(marker).get("status") == SKIPPED


def run_dirs(parent: Path) -> list[Path]:
    """The sub-folders of ``parent`` that hold a run, skip markers left out, sorted by name."""
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".") and not skipped(p))


def read_run(path: Path, cost_file: str | None, label: dict[str, Any] | None = None) -> Run:
    """A run directory with ``metrics.json`` (required), ``meta.json`` and ``cost_file`` (optional)."""
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").is_file() else None
    if metrics is None:
        raise DartsError(f"{path}: no metrics.json (did the stage finish?)")
    meta = read_json(path / "meta.json") if (path / "meta.json").is_file() else None
    cost = read_cost(path / cost_file) if cost_file and (path / cost_file).is_file() else None
    return Run(path, metrics, meta, cost, dict(label or {}))


def read_cost(path: Path) -> dict[str, Any]:
    """A ``search_cost.json`` / ``train_cost.json``: ``device_hours`` and ``gpu_days`` are required."""
    cost = read_json(path)
    for key in ("device_hours", "gpu_days"):
        if key not in cost:
            raise DartsError(f"{path}: missing key '{key}' (expected the fields of darts.recording.device_cost)")
    return cost


def final_runs(runs_root: Path, stage: str) -> dict[str, list[Run]]:
    """``runs/<stage>/<method>[-r<run>]/`` grouped by method, runs in index order."""
    grouped: dict[str, list[Run]] = {}
    for path in run_dirs(runs_root / stage):
        match = FINAL_DIR.match(path.name)
        method, index = match["method"], int(match["run"]) if match["run"] else 0
        grouped.setdefault(method, []).append(read_run(path, "train_cost.json", {"run": index}))
    for runs in grouped.values():
        runs.sort(key=lambda r: r.label["run"])
    return grouped


def search_runs(runs_root: Path, space: str, order: str | None = None) -> list[Run]:
    """``runs/search_<space>/<order>/s<seed>/`` (of one order, or both), sorted by order and seed."""
    found = []
    for each in (order,) if order else ORDERS:
        for path in run_dirs(runs_root / f"search_{space}" / each):
            match = SEED_DIR.match(path.name)
            if match:
                found.append(read_run(path, "search_cost.json", {"order": each, "seed": int(match["seed"])}))
    return sorted(found, key=lambda r: (r.label["order"], r.label["seed"]))


def selection(runs_root: Path, space: str, method: str) -> Selection | None:
    """``runs/select_<space>/<method>/``: the chosen candidate and every candidate's training run."""
    path = runs_root / f"select_{space}" / method
    if not (path / "selected.json").is_file():
        return None
    record = read_json(path / "selected.json")
    if "chosen" not in record:
        raise DartsError(f"{path / 'selected.json'}: missing key 'chosen'")
    candidates = [read_run(p, "train_cost.json", {"name": p.name}) for p in run_dirs(path / "candidates")]
    meta = read_json(path / "meta.json") if (path / "meta.json").is_file() else None
    return Selection(path, str(record["chosen"]), record.get("score"), record.get("metric"), candidates, meta)


def snapshot_runs(runs_root: Path, space: str) -> list[Run]:
    """``runs/snapshot_eval/<space>/<order>-s<seed>/e<epoch>/`` (the data of the paper's Fig. 3)."""
    found = []
    for search in run_dirs(runs_root / "snapshot_eval" / space):
        match = SNAPSHOT_SEARCH_DIR.match(search.name)
        if not match:
            continue
        for path in run_dirs(search):
            epoch = SNAPSHOT_EPOCH_DIR.match(path.name)
            if epoch:
                label = {"order": match["order"], "seed": int(match["seed"]), "epoch": int(epoch["epoch"])}
                found.append(read_run(path, "train_cost.json", label))
    return sorted(found, key=lambda r: (r.label["order"], r.label["seed"], r.label["epoch"]))


def read_history(path: Path, required: tuple[str, ...] = ("epoch",)) -> list[dict[str, Any]]:
    """``history.jsonl``: one object per epoch; each of ``required`` must be in every line."""
    if not path.is_file():
        raise DartsError(f"{path}: file not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DartsError(f"{path}:{number}: not valid JSON: {exc}") from None
        missing = [k for k in required if k not in row]
        if missing:
            raise DartsError(f"{path}:{number}: missing {', '.join(repr(k) for k in missing)}")
        rows.append(row)
    if not rows:
        raise DartsError(f"{path}: no epochs recorded")
    return rows
