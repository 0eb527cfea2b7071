"""The paper's numbers, kept as data with their source.

``results/paper/darts_tables.csv`` is the project's own copy of the published values (long format:
``table, dataset, method, metric, value, std, unit, source_note``), taken from the camera-ready
paper (arXiv 1806.09055v2) and checked in a test against ``../shared/paper/darts_tables.csv``.
Nothing here is typed in by hand: every paper row of the results tables comes from that file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from darts.errors import DartsError

PAPER_CSV = Path(__file__).resolve().parents[2] / "results" / "paper" / "darts_tables.csv"
COLUMNS = ("table", "dataset", "method", "metric", "value", "std", "unit", "source_note")
TEXT_METRICS = frozenset({"search_method"})


def load_paper(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The long table, with ``value``/``std`` as floats (NaN for the paper's '–') except text metrics.

    Raises DartsError naming the file when it is missing, has other columns, or a number does not parse.
    """
    path = Path(path)
    if not path.is_file():
        raise DartsError(f"{path}: the paper's numbers are missing (the project keeps them in results/paper/)")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if tuple(frame.columns) != COLUMNS:
        raise DartsError(f"{path}: expected columns {', '.join(COLUMNS)}, got {', '.join(frame.columns)}")
    numeric = ~frame["metric"].isin(TEXT_METRICS)
    frame["text"] = frame["value"].where(~numeric, "")
    for column in ("value", "std"):
        frame[column] = [_number(v, path, row) if keep else math.nan
                         for row, (v, keep) in enumerate(zip(frame[column], numeric), start=2)]
    return frame


def paper_wide(paper: pd.DataFrame, tables: tuple[str, ...]) -> pd.DataFrame:
    """One row per (table, method) of the named tables, in the paper's order.

    Columns: ``paper_table``, ``method``, ``<metric>`` and ``<metric>_std`` for every numeric
    metric, ``<metric>_unit``, ``search_method`` and ``note`` (the source notes, joined).
    """
    part = paper[paper["table"].isin(tables)]
    rows: dict[tuple[str, str], dict] = {}
    for rec in part.itertuples(index=False):
        row = rows.setdefault((rec.table, rec.method), {"paper_table": rec.table, "method": rec.method, "notes": []})
        if rec.metric in TEXT_METRICS:
            row[rec.metric] = rec.text
        else:
            row[rec.metric] = rec.value
            row[f"{rec.metric}_std"] = rec.std
            row[f"{rec.metric}_unit"] = rec.unit
        if rec.source_note and rec.source_note not in row["notes"]:
            row["notes"].append(rec.source_note)
    out = [{**{k: v for k, v in r.items() if k != "notes"}, "note": "; ".join(r["notes"])} for r in rows.values()]
    return pd.DataFrame(out)


def paper_costs(paper: pd.DataFrame, dataset: str) -> dict[str, float]:
    """The paper's selection and final-evaluation costs of a dataset, in GPU days (the 'Costs' rows)."""
    part = paper[(paper["table"] == "Costs") & (paper["dataset"] == dataset)]
    wanted = ("selection_cost", "final_eval_cost")
    return {rec.metric: rec.value for rec in part.itertuples(index=False) if rec.metric in wanted}


def _number(text: str, path: Path, line: int) -> float:
    if text in ("", "NA"):
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DartsError(f"{path}:{line}: not a number: {text!r}") from None
