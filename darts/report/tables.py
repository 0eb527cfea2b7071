"""The four results tables: every row of the paper's table, and ours beside the row it is diffed against.

One row per (method, source), wide. Our rows are computed from the stage outputs only: the metric
mean and sample std (ddof=1) over the final runs, the search cost summed over the
``search_cost.json`` of every search of that order (GPU days only when every search ran on a GPU;
otherwise device days in their own column), the selection and final-evaluation costs in their own
columns, dataset sizes, and the directories, seeds and git revisions the numbers came from.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from darts.errors import DartsError
from darts.io import atomic_path, read_json
from darts.report.paper import PAPER_CSV, load_paper, paper_costs, paper_wide
from darts.report.runs import Run, final_runs, search_runs, selection
from darts.rundir import MANIFEST, ORDERS

METHOD_LABELS = {
    "first": "DARTS (first order)",
    "second": "DARTS (second order)",
    "random": "Random search baseline",
    "DARTS_V1": "DARTS_V1 (published genotype)",
    "DARTS_V2": "DARTS_V2 (published genotype)",
    "NASNet": "NASNet-A (published genotype)",
    "AmoebaNet": "AmoebaNet-A (published genotype)",
    "ENAS": "ENAS (published genotype)",
}
METHOD_NOTES = {
    "random": "search cost = training the random candidates for selection, as the paper counts it",
    "DARTS_V2": "official code's DARTS_V2 cell, diffed against the second-order row "
                "(that V2 is the camera-ready cell is an inference)",
    "DARTS_V1": "official code's DARTS_V1 cell (June 2018 release); no paper row states its numbers",
}


@dataclass(frozen=True)
class TableSpec:
    """What one results table shows and where its numbers come from."""

    key: str                                 # file stem under results/
    title: str
    dataset: str                             # data/<dataset>/, and the paper's 'dataset' column
    paper_dataset: str
    paper_tables: tuple[str, ...]            # rows of these 'table' values are shown
    stage: str                               # runs/<stage>/<method>[-r<run>]/
    space: str                               # cnn | rnn: whose searches and selections feed it
    metrics: dict[str, str]                  # our metrics.json key -> the paper's metric name
    unit: str
    sizes: tuple[str, ...]                   # dataset-size keys of metrics.json
    paper_rows: dict[str, str] = field(default_factory=dict)  # our method -> the paper row it is diffed against
    tolerance: str = ""                      # params.compare key used where the paper gives no std
    mult_adds: bool = False


SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        key="table1_cifar10", title="Table 1: CIFAR-10", dataset="cifar10", paper_dataset="CIFAR-10",
        paper_tables=("Table 1", "Sect. 3.3", "Appendix B"), stage="train_cifar10", space="cnn",
        metrics={"test_error": "test_error"}, unit="%", sizes=("train_images", "test_images"),
        paper_rows={
            "first": "DARTS (first order) + cutout",
            "second": "DARTS (second order) + cutout",
            "random": "Random search baseline + cutout",
            "DARTS_V2": "DARTS (second order) + cutout",
            "NASNet": "NASNet-A + cutout (Zoph et al. 2018) [DARTS setup]",
            "AmoebaNet": "AmoebaNet-A + cutout (Real et al. 2018) [DARTS setup]",
        },
        tolerance="cifar10_error",
    ),
    TableSpec(
        key="table2_ptb", title="Table 2: Penn Treebank", dataset="ptb", paper_dataset="PTB",
        paper_tables=("Table 2",), stage="train_ptb", space="rnn",
        metrics={"valid_ppl": "valid_perplexity", "test_ppl": "test_perplexity"}, unit="perplexity",
        sizes=("train_tokens",),
        paper_rows={
            "first": "DARTS (first order)",
            "second": "DARTS (second order)",
            "random": "Random search baseline",
            "DARTS_V2": "DARTS (second order)",
            "ENAS": "ENAS (Pham et al. 2018b) [DARTS setup]",
        },
        tolerance="ptb_ppl",
    ),
    TableSpec(
        key="table3_imagenet", title="Table 3: ImageNet (mobile setting)", dataset="imagenet",
        paper_dataset="ImageNet", paper_tables=("Table 3",), stage="train_imagenet", space="cnn",
        metrics={"top1_error": "top1_error", "top5_error": "top5_error"}, unit="%",
        sizes=("train_images", "val_images", "classes"),
        paper_rows={"second": "DARTS (searched on CIFAR-10)", "DARTS_V2": "DARTS (searched on CIFAR-10)"},
        tolerance="imagenet_error", mult_adds=True,
    ),
    TableSpec(
        key="table4_wikitext2", title="Table 4: WikiText-2", dataset="wikitext2", paper_dataset="WikiText-2",
        paper_tables=("Table 4",), stage="train_wikitext2", space="rnn",
        metrics={"valid_ppl": "valid_perplexity", "test_ppl": "test_perplexity"}, unit="perplexity",
        sizes=("train_tokens",),
        paper_rows={
            "second": "DARTS (searched on PTB)",
            "DARTS_V2": "DARTS (searched on PTB)",
            "ENAS": "ENAS (Pham et al. 2018b) (searched on PTB) [DARTS setup]",
        },
        tolerance="wikitext2_ppl",
    ),
)
SPEC_BY_KEY = {spec.key: spec for spec in SPECS}


def columns(spec: TableSpec) -> list[str]:
    """The table's columns, in order: identity, metrics, size and cost, the diff, provenance."""
    metric_cols = [f"{m}_{s}" for m in spec.metrics for s in ("mean", "std")]
    return [
        "method", "source", "scale", "status", *metric_cols, "runs", "params_m",
        *(["mult_adds_m"] if spec.mult_adds else []),
        "search_cost_gpu_days", "search_cost_device_days", "search_device",
        "selection_gpu_days", "selection_device_days", "eval_gpu_days_per_run", "eval_device_days_per_run",
        *spec.sizes, "data_subset", "paper_row", *[f"diff_{m}" for m in spec.metrics],
        "paper_table", "search_method", "num_ops", "note",
        "search_runs", "selection", "run_dirs", "seeds", "git_revision",
    ]


def build_tables(runs_root: str | Path, data_root: str | Path = "data",
                 paper_csv: str | Path = PAPER_CSV) -> dict[str, pd.DataFrame]:
    """All four tables, keyed by file stem."""
    paper = load_paper(paper_csv)
    return {spec.key: build_table(spec, Path(runs_root), Path(data_root), paper) for spec in SPECS}


def build_table(spec: TableSpec, runs_root: Path, data_root: Path, paper: pd.DataFrame) -> pd.DataFrame:
    paper_rows = _paper_rows(spec, paper)
    by_method = {row["method"]: row for row in paper_rows}
    for method, row_name in spec.paper_rows.items():
        if row_name not in by_method:
            raise DartsError(f"paper row {row_name!r} (for ours '{method}') is not in "
                             f"{spec.paper_tables[0]} of the paper's data")
    ours = [our_row(spec, method, runs, runs_root, data_root, by_method.get(spec.paper_rows.get(method, "")))
            for method, runs in _ordered(final_runs(runs_root, spec.stage))]
    ordered: list[dict[str, Any]] = []
    for row in paper_rows:
        ordered.append(row)
        ordered.extend(o for o in ours if o["paper_row"] == row["method"])
    ordered.extend(o for o in ours if not o["paper_row"])
    frame = pd.DataFrame(ordered, columns=columns(spec))
    for column in ("runs", "num_ops", *spec.sizes):
        frame[column] = _as_int(frame[column])
    return frame


def write_tables(tables: dict[str, pd.DataFrame], out: str | Path) -> list[Path]:
    """``<out>/<key>.csv`` for each table (numbers with 6 significant digits)."""
    written = []
    for key, frame in tables.items():
        path = Path(out) / f"{key}.csv"
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6g")
        written.append(path)
    return written


def _paper_rows(spec: TableSpec, paper: pd.DataFrame) -> list[dict[str, Any]]:
    wide = paper_wide(paper, spec.paper_tables)
    costs = paper_costs(paper, spec.paper_dataset)
    rows = []
    for rec in wide.to_dict("records"):
        row: dict[str, Any] = {"method": rec["method"], "source": "paper", "scale": "paper", "status": "published",
                               "paper_table": rec["paper_table"], "note": rec["note"],
                               "search_method": rec.get("search_method", ""), "num_ops": rec.get("num_ops", math.nan)}
        for ours, theirs in spec.metrics.items():
            row[f"{ours}_mean"] = rec.get(theirs, math.nan)
            row[f"{ours}_std"] = rec.get(f"{theirs}_std", math.nan)
        row["params_m"] = rec.get("params", math.nan)
        if spec.mult_adds:
            row["mult_adds_m"] = rec.get("mult_adds", math.nan)
        cost = rec.get("search_cost", math.nan)
        if rec.get("search_cost_unit") == "CPU days":
            row["search_cost_device_days"], row["search_device"] = cost, "cpu"
        else:
            row["search_cost_gpu_days"] = cost
        if rec["method"].startswith("DARTS ("):
            row["selection_gpu_days"] = costs.get("selection_cost", math.nan)
            row["eval_gpu_days_per_run"] = costs.get("final_eval_cost", math.nan)
        rows.append(row)
    return rows


def our_row(spec: TableSpec, method: str, runs: list[Run], runs_root: Path, data_root: Path,
            paper_row: dict[str, Any] | None) -> dict[str, Any]:
    """One row of ours: the final runs of ``method`` with their search, selection and provenance."""
    done = [r for r in runs if not r.not_run]
    row: dict[str, Any] = {
        "method": METHOD_LABELS.get(method, method), "source": "ours",
        "status": "ok" if done else f"not run: {runs[0].metrics.get('reason', 'no reason recorded')}",
        "runs": len(done), "paper_row": paper_row["method"] if paper_row else "",
        "note": METHOD_NOTES.get(method, ""),
        "search_method": {"first": "gradient-based", "second": "gradient-based", "random": "random"}.get(method, ""),
    }
    for key in spec.metrics:
        values = [_required(r, key) for r in done]
        row[f"{key}_mean"], row[f"{key}_std"] = _mean_std(values)
        if paper_row is not None:
            row[f"diff_{key}"] = row[f"{key}_mean"] - paper_row[f"{key}_mean"]
    row["params_m"] = _mean([r.metrics["params"] / 1e6 for r in done if "params" in r.metrics])
    if spec.mult_adds:
        row["mult_adds_m"] = _mean([r.metrics["mult_adds"] / 1e6 for r in done if "mult_adds" in r.metrics])
    for key in spec.sizes:
        row[key] = _single([r.metrics.get(key) for r in done])
    row["data_subset"] = _data_subset(done, data_root / spec.dataset / MANIFEST)

    searches = search_runs(runs_root, spec.space, method) if method in ORDERS else []
    chosen = selection(runs_root, spec.space, method)
    if method == "random" and chosen is not None:
        search_costs, select_costs = _costs(chosen.candidates), []
    else:
        search_costs = _costs(searches)
        select_costs = _costs(chosen.candidates) if chosen else []
    row["search_cost_gpu_days"], row["search_cost_device_days"], row["search_device"] = _total(search_costs)
    row["selection_gpu_days"], row["selection_device_days"], _ = _total(select_costs)
    eval_costs = [r.cost for r in runs if r.cost is not None]
    gpu, device, _ = _total(eval_costs)
    row["eval_gpu_days_per_run"] = gpu / len(eval_costs) if gpu is not None else math.nan
    row["eval_device_days_per_run"] = device / len(eval_costs) if device is not None else math.nan

    rel = runs_root.parent
    row["search_runs"] = ";".join(str(r.dir.relative_to(rel)) for r in searches)
    if chosen is not None:
        score = f" {chosen.metric}={chosen.score:g}" if chosen.metric and chosen.score is not None else ""
        row["selection"] = f"{chosen.dir.relative_to(rel)}: chose {chosen.chosen}{score}"
    row["run_dirs"] = ";".join(str(r.dir.relative_to(rel)) for r in runs)
    row["seeds"] = ";".join(str(r.seed) for r in runs if r.seed is not None)
    row["git_revision"] = ";".join(sorted({r.git_revision for r in runs if r.git_revision}))
    scales = [r.scale for r in (*runs, *searches, *(chosen.candidates if chosen else []))]
    if chosen is not None and chosen.meta is not None:
        scales.append((chosen.meta.get("params") or {}).get("scale"))
    row["scale"] = _scale(scales)
    return row


def _ordered(grouped: dict[str, list[Run]]) -> list[tuple[str, list[Run]]]:
    known = list(METHOD_LABELS)
    return sorted(grouped.items(), key=lambda kv: (known.index(kv[0]) if kv[0] in known else len(known), kv[0]))


def _required(run: Run, key: str) -> float:
    if key not in run.metrics:
        raise DartsError(f"{run.dir / 'metrics.json'}: missing key '{key}'")
    return float(run.metrics[key])


def _as_int(column: pd.Series) -> pd.Series:
    """Counts as integers (nullable), so 1281167 images never print as 1.28117e+06."""
    numbers = pd.to_numeric(column, errors="coerce")
    whole = numbers.dropna()
    if len(whole) != column.notna().sum() or not (whole == whole.round()).all():
        return column
    return numbers.astype("Int64")


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else math.nan


def _single(values: list[Any]) -> Any:
    """The value all runs share; several distinct values are joined with ';'."""
    distinct = sorted({v for v in values if v is not None}, key=str)
    if not distinct:
        return math.nan
    return distinct[0] if len(distinct) == 1 else ";".join(map(str, distinct))


def _costs(runs: list[Run]) -> list[dict[str, Any]]:
    missing = [r.dir for r in runs if r.cost is None]
    if missing:
        raise DartsError(f"{missing[0]}: no cost record (search_cost.json / train_cost.json); "
                         f"costs are computed from the recorded files, never typed in")
    return [r.cost for r in runs]


def _total(costs: list[dict[str, Any]]) -> tuple[float | None, float | None, str]:
    """(GPU days or None unless every record ran on a GPU, device days, device names)."""
    if not costs:
        return None, None, ""
    device_days = sum(float(c["device_hours"]) for c in costs) / 24.0
    gpu = [c["gpu_days"] for c in costs]
    gpu_days = sum(float(g) for g in gpu) if all(g is not None for g in gpu) else None
    names = sorted({str(c.get("device_name") or c.get("device") or "?") for c in costs})
    return gpu_days, device_days, ";".join(names)


def _data_subset(runs: list[Run], manifest: Path) -> Any:
    """Whether a subset of the dataset was used: meta.json's data summary, else the manifest's ``full``."""
    flags = set()
    for run in runs:
        data = (run.meta or {}).get("data")
        if isinstance(data, dict) and "subset" in data:
            flags.add(bool(data["subset"]))
    if not flags and manifest.is_file():
        record = read_json(manifest)
        if "full" in record:
            flags.add(not record["full"])
    return flags.pop() if len(flags) == 1 else (math.nan if not flags else "mixed")


def _scale(scales: list[str | None]) -> str:
    distinct = sorted({s for s in scales if s})
    if not distinct:
        return "unknown"
    return distinct[0] if len(distinct) == 1 else "mixed:" + "+".join(distinct)
