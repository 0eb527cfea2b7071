"""results/metrics.json: the few headline numbers of our runs, the pipeline's only DVC metrics file.

Small on purpose, so `dvc exp show` fits a terminal and `dvc metrics diff` compares two experiments
by readable keys (``cifar10.second.test_error_mean``). Only our numbers (the paper's are in the
tables), only finite ones: a value that cannot be computed (a std of one run, a stage not run at this
scale) is left out rather than written as NaN, and the JSON is strict.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from darts.errors import DartsError
from darts.io import write_text
from darts.report.runs import Run, final_runs, search_runs

# section -> (runs/<stage>, metrics.json keys reported as mean (and std) over a method's runs)
FINAL = {
    "cifar10": ("train_cifar10", ("test_error",)),
    "imagenet": ("train_imagenet", ("top1_error", "top5_error")),
    "ptb": ("train_ptb", ("valid_ppl", "test_ppl")),
    "wikitext2": ("train_wikitext2", ("valid_ppl", "test_ppl")),
}
SEARCH_SCORE = {"cnn": "valid_acc", "rnn": "valid_ppl"}   # the search network's final validation score
ROUND = 6   # significant digits: enough for any difference an experiment makes, short enough to read


def headline_metrics(runs_root: Path) -> dict[str, dict[str, dict[str, float | int]]]:
    """``{section: {method: {key: number}}}`` from the run folders; sections without runs are left out.

    CIFAR-10 (several runs per method): ``test_error_mean``, ``test_error_std``, ``runs``. ImageNet,
    PTB, WikiText-2 (one run per method): the metric itself, a mean when there are several runs.
    ``search_<space>.<order>``: the final validation score's mean over seeds (``valid_acc_mean``, %;
    ``valid_ppl_mean``), ``seeds``, and the summed cost of those searches in ``cost_gpu_days`` when
    every one ran on a GPU, else in ``cost_device_days``.
    """
    out: dict[str, dict[str, dict[str, float | int]]] = {}
    for section, (stage, keys) in FINAL.items():
        methods = {}
        for method, runs in final_runs(runs_root, stage).items():
            done = [r for r in runs if not r.not_run]
            if done:
                methods[method] = _final(done, keys, with_std=section == "cifar10")
        if methods:
            out[section] = methods
    for space, key in SEARCH_SCORE.items():
        orders = {}
        for order in ("first", "second"):
            searches = search_runs(runs_root, space, order)
            if searches:
                orders[order] = _search(searches, key)
        if orders:
            out[f"search_{space}"] = orders
    return out


def write_headline(path: Path, metrics: dict[str, Any]) -> Path:
    """Strict JSON (no NaN or Infinity), written atomically."""
    write_text(path, json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    return path


def _final(runs: list[Run], keys: tuple[str, ...], with_std: bool) -> dict[str, float | int]:
    row: dict[str, float | int] = {}
    for key in keys:
        values = [_number(r, key) for r in runs]
        if with_std:
            _put(row, f"{key}_mean", statistics.fmean(values))
            _put(row, f"{key}_std", statistics.stdev(values) if len(values) > 1 else math.nan)
        else:
            _put(row, key, statistics.fmean(values))
    if with_std:
        row["runs"] = len(runs)
    return row


def _search(searches: list[Run], key: str) -> dict[str, float | int]:
    row: dict[str, float | int] = {}
    _put(row, f"{key}_mean", statistics.fmean(_number(r, key) for r in searches))
    row["seeds"] = len(searches)
    costs = [r.cost for r in searches]
    if all(c is not None for c in costs):
        gpu = [c["gpu_days"] for c in costs]
        if all(g is not None for g in gpu):
            _put(row, "cost_gpu_days", sum(float(g) for g in gpu))
        else:
            _put(row, "cost_device_days", sum(float(c["device_hours"]) for c in costs) / 24.0)
    return row


def _number(run: Run, key: str) -> float:
    if key not in run.metrics:
        raise DartsError(f"{run.dir / 'metrics.json'}: missing key '{key}'")
    try:
        return float(run.metrics[key])
    except (TypeError, ValueError):
        raise DartsError(f"{run.dir / 'metrics.json'}: '{key}' is {run.metrics[key]!r}, not a number") from None


def _put(row: dict[str, float | int], key: str, value: float) -> None:
    """Finite values only, rounded to ROUND significant digits."""
    if math.isfinite(value):
        row[key] = float(f"{value:.{ROUND}g}")
