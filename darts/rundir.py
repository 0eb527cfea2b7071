"""The run-directory contract between stages, the pipeline and the report (docs/design.md).

Every stage writes one folder; this module is the one place that says where each folder is, which
files each kind holds, and how to read them back. Writers (search, train, pipeline) build paths and
file names from here; readers (pipeline, report, tests) list folders and read the labels a run
recorded (``meta.json``, ``snapshots.json``) or the structured names built here, never parse paths
with regular expressions.

  data/<name>/                                        MANIFEST
  runs/search_<space>/<order>/s<seed>/                SEARCH_FILES
  runs/search_<space>/random/sample<i>/               GENOTYPE (random search's cells)
  runs/select_<space>/<method>/                       SELECT_FILES, candidates/<name>/ (TRAIN_FILES)
  runs/train_<dataset>/<method>[-r<run>]/             TRAIN_FILES
  runs/snapshot_eval/<space>/<order>-s<seed>/         SNAPSHOT_FILES, e<epoch>/ (TRAIN_FILES + GENOTYPE)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darts.errors import DartsError
from darts.io import read_json

ORDERS = ("first", "second")
RANDOM = "random"  # the method (and the folder beside the orders) of random search

# File names, one constant each.
MANIFEST = "manifest.json"
GENOTYPE = "genotype.json"
ALPHAS = "alphas.json"
HISTORY = "history.jsonl"
METRICS_CSV = "metrics.csv"
METRICS = "metrics.json"
META = "meta.json"
SEARCH_COST = "search_cost.json"
TRAIN_COST = "train_cost.json"
WEIGHTS = "weights.pt"
SELECTED = "selected.json"
SNAPSHOTS = "snapshots.json"
CANDIDATES = "candidates"  # a selection's sub-folder of candidate training runs

# What each kind of run folder holds once it finished.
SEARCH_FILES = (GENOTYPE, ALPHAS, HISTORY, METRICS_CSV, METRICS, SEARCH_COST, META)
TRAIN_FILES = (METRICS, HISTORY, METRICS_CSV, WEIGHTS, META, TRAIN_COST)
SELECT_FILES = (SELECTED, GENOTYPE, META)
SNAPSHOT_FILES = (SNAPSHOTS, META)
# Written only at the end of a run: a rerun deletes them first, so a stale result never outlives a failure.
SEARCH_RESULTS = (GENOTYPE, ALPHAS, METRICS, SEARCH_COST)
TRAIN_RESULTS = (METRICS, WEIGHTS, TRAIN_COST)


# Path builders: every folder of the pipeline, from its labels.

def data_dir(data_root: Path, name: str) -> Path:
    return Path(data_root) / name


def order_dir(runs_root: Path, space: str, order: str) -> Path:
    """The searches of one order (one folder: a selection's dependency): runs/search_<space>/<order>/."""
    return Path(runs_root) / f"search_{space}" / order


def search_dir(runs_root: Path, space: str, order: str, seed: int) -> Path:
    return order_dir(runs_root, space, order) / f"s{seed}"


def random_root(runs_root: Path, space: str) -> Path:
    """Random search's folder, beside DARTS' orders: runs/search_<space>/random/."""
    return order_dir(runs_root, space, RANDOM)


def random_dir(runs_root: Path, space: str, sample: int) -> Path:
    """One random cell: runs/search_<space>/random/sample<i>/."""
    return random_root(runs_root, space) / sample_name(sample)


def sample_name(sample: int) -> str:
    return f"sample{sample}"


def select_root(runs_root: Path, space: str) -> Path:
    return Path(runs_root) / f"select_{space}"


def select_dir(runs_root: Path, space: str, method: str) -> Path:
    return select_root(runs_root, space) / method


def candidate_dir(select: Path, name: str) -> Path:
    return Path(select) / CANDIDATES / name


def seed_name(order: str, seed: int) -> str:
    """A search's name among candidates and snapshots: <order>-s<seed>."""
    return f"{order}-s{seed}"


def train_stage(dataset: str) -> str:
    return f"train_{dataset}"


def train_name(method: str, run: int | None = None) -> str:
    """<method>-r<run> (CIFAR-10's repeated runs) or <method>."""
    return method if run is None else f"{method}-r{run}"


def split_train_name(name: str) -> tuple[str, int]:
    """The inverse of :func:`train_name`: (method, run), run 0 where the name has none."""
    method, sep, run = name.rpartition("-r")
    if sep and method and run.isdigit():
        return method, int(run)
    return name, 0


def train_dir(runs_root: Path, dataset: str, method: str, run: int | None = None) -> Path:
    return Path(runs_root) / train_stage(dataset) / train_name(method, run)


def snapshot_root(runs_root: Path, space: str) -> Path:
    return Path(runs_root) / "snapshot_eval" / space


def snapshot_dir(runs_root: Path, space: str, order: str, seed: int) -> Path:
    return snapshot_root(runs_root, space) / seed_name(order, seed)


def snapshot_epoch_dir(snapshot: Path, epoch: int) -> Path:
    """The training run of the cell a search derived after ``epoch``: <snapshot>/e<epoch>/."""
    return Path(snapshot) / f"e{epoch}"


# Readers.

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


def run_dirs(parent: Path) -> list[Path]:
    """The sub-folders of ``parent`` (hidden ones left out), sorted by name; none if it is absent."""
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def read_optional(path: Path) -> dict[str, Any] | None:
    """A JSON object, or ``None`` where the file is absent."""
    return read_json(path) if path.is_file() else None


def read_run(path: Path, cost_file: str | None, label: dict[str, Any] | None = None) -> Run:
    """A run directory with ``metrics.json`` (required), ``meta.json`` and ``cost_file`` (optional)."""
    metrics = read_optional(path / METRICS)
    if metrics is None:
        raise DartsError(f"{path}: no {METRICS} (did the stage finish?)")
    cost = read_cost(path / cost_file) if cost_file and (path / cost_file).is_file() else None
    return Run(path, metrics, read_optional(path / META), cost, dict(label or {}))


def read_cost(path: Path) -> dict[str, Any]:
    """A ``search_cost.json`` / ``train_cost.json``: ``device_hours`` and ``gpu_days`` are required."""
    cost = read_json(path)
    for key in ("device_hours", "gpu_days"):
        if key not in cost:
            raise DartsError(f"{path}: missing key '{key}' (expected the fields of darts.recording.device_cost)")
    return cost


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
