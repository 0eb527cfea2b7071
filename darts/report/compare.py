"""Our numbers against the paper's, read back from the results tables.

A number of ours is flagged when it lies outside the paper's mean ± ``sigmas`` std, or, where the
paper gives a single number, outside the tolerance named by the table in ``params.compare``.
In strict mode, any flag, any row of ours that is not at paper scale and any row that did not run
is a failure, so the check can gate a release.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from darts.config import Compare
from darts.errors import DartsError
from darts.report.tables import SPECS, TableSpec


@dataclass(frozen=True)
class Finding:
    """One metric of one row of ours, set against the paper row it is diffed against."""

    table: str
    method: str
    scale: str
    metric: str
    ours: float
    ours_std: float
    paper_row: str
    paper: float
    paper_std: float
    allowed: float          # the largest |ours - paper| that passes
    basis: str              # e.g. "2 std" or "tolerance"

    @property
    def diff(self) -> float:
        return self.ours - self.paper

    @property
    def flagged(self) -> bool:
        return not abs(self.diff) <= self.allowed


@dataclass(frozen=True)
class RowIssue:
    """A row of ours that cannot count as a reproduction: not at paper scale, or not run."""

    table: str
    method: str
    reason: str


Comparison = dict[str, tuple[list[Finding], list[RowIssue]]]  # table key -> (findings, row issues)


def read_results(results_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The four tables ``darts tabulate`` wrote, keyed by file stem."""
    results_dir = Path(results_dir)
    tables = {}
    for spec in SPECS:
        path = results_dir / f"{spec.key}.csv"
        if not path.is_file():
            raise DartsError(f"{path}: not found (run `darts tabulate` first)")
        frame = pd.read_csv(path, keep_default_na=True)
        missing = {"method", "source", "scale", "status", "paper_row"} - set(frame.columns)
        if missing:
            raise DartsError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        tables[spec.key] = frame
    return tables


def band(spec: TableSpec, paper_std: float, tolerances: Compare) -> tuple[float, str]:
    """How far from the paper's number ours may lie, and on what basis."""
    if math.isfinite(paper_std) and paper_std > 0:
        return tolerances.sigmas * paper_std, f"{tolerances.sigmas:g} std"
    return getattr(tolerances, spec.tolerance), f"tolerance compare.{spec.tolerance}"


def compare_table(spec: TableSpec, frame: pd.DataFrame, tolerances: Compare) -> tuple[list[Finding], list[RowIssue]]:
    """Findings for every metric of every row of ours that has a paper row, and the rows that fail as a whole."""
    paper = frame[frame["source"] == "paper"].set_index("method")
    findings, issues = [], []
    for row in frame[frame["source"] == "ours"].to_dict("records"):
        scale, status = str(row["scale"]), str(row["status"])
        if status != "ok":
            issues.append(RowIssue(spec.key, row["method"], status))
            continue
        if scale != "paper":
            issues.append(RowIssue(spec.key, row["method"], f"{scale} scale, not paper scale"))
        ref = row["paper_row"] if isinstance(row["paper_row"], str) else ""
        if not ref:
            continue
        if ref not in paper.index:
            raise DartsError(f"{spec.key}: row {row['method']!r} is diffed against {ref!r}, which the table lacks")
        for metric in spec.metrics:
            theirs = float(paper.at[ref, f"{metric}_mean"])
            if not math.isfinite(theirs):
                continue
            theirs_std = float(paper.at[ref, f"{metric}_std"])
            allowed, basis = band(spec, theirs_std, tolerances)
            findings.append(Finding(spec.key, row["method"], scale, metric, float(row[f"{metric}_mean"]),
                                    float(row[f"{metric}_std"]), ref, theirs, theirs_std, allowed, basis))
    return findings, issues


def compare_results(tables: dict[str, pd.DataFrame], tolerances: Compare) -> Comparison:
    return {spec.key: compare_table(spec, tables[spec.key], tolerances) for spec in SPECS}


def format_comparison(results: Comparison) -> str:
    """The diff, table by table, one line per metric of ours; flagged lines end in 'OUTSIDE'."""
    lines = []
    for spec in SPECS:
        findings, issues = results[spec.key]
        lines.append(f"== {spec.title} ({spec.key}.csv)")
        if not findings and not issues:
            lines.append("   no rows of ours")
        for f in findings:
            verdict = "OUTSIDE" if f.flagged else "ok"
            lines.append(f"   {f.method:<32} {f.scale:<6} {f.metric:<11} ours {_pm(f.ours, f.ours_std):>16}"
                         f"  paper {_pm(f.paper, f.paper_std):>14}  diff {f.diff:+9.3f}"
                         f"  allowed ±{f.allowed:.3g} ({f.basis})  {verdict}")
        for issue in issues:
            lines.append(f"   {issue.method:<32} {issue.reason}")
    return "\n".join(lines)


def strict_failures(results: Comparison) -> list[str]:
    """Why the results are not a reproduction at paper scale; empty when they are."""
    failures = []
    for findings, issues in results.values():
        failures += [f"{f.table}: {f.method} {f.metric} {f.ours:.4g} is outside the paper's "
                     f"{f.paper:.4g} ± {f.allowed:.3g} ({f.basis})" for f in findings if f.flagged]
        failures += [f"{i.table}: {i.method}: {i.reason}" for i in issues]
    if not any(findings or issues for findings, issues in results.values()):
        failures.append("no rows of ours in any table: nothing was compared")
    return failures


def _pm(mean: float, std: float) -> str:
    if not math.isfinite(mean):
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if math.isfinite(std) else f"{mean:.3f}"
