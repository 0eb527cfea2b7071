"""results/REPORT.md: the tables and figures together for a reader, with a paragraph per table on
how ours compares and the project's deviations from the paper's protocol (from DEVIATIONS.md).

The first line says the scale: a smoke-scale report says so before anything else.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from darts.config import Compare
from darts.report.compare import Finding, RowIssue, compare_table
from darts.report.figures import figure_name
from darts.report.tables import SPECS, TableSpec

SECTIONS = (
    ("search", "Search progress (the paper's Figure 3)"),
    ("collapse", "Collapse diagnostics"),
    ("cells", "The selected cells (the paper's Figures 4-6)"),
    ("alphas", "Architecture weights over the search"),
)


def headline(tables: dict[str, pd.DataFrame]) -> str:
    """The report's first line: the scale of our rows, loudly when it is not the paper's."""
    scales = sorted({str(s) for t in tables.values() for s in t.loc[t["source"] == "ours", "scale"]})
    if not scales:
        return "# DARTS reproduction report: no results of ours yet"
    if scales == ["paper"]:
        return "# DARTS reproduction report (paper scale)"
    return (f"# DARTS reproduction report: {'+'.join(scales).upper()} SCALE, not a reproduction "
            "(these numbers only show that the pipeline runs end to end)")


def build_report(tables: dict[str, pd.DataFrame], figures: dict[str, list[Path]], out_dir: Path,
                 tolerances: Compare, deviations: Path | None, runs_label: str = "runs/") -> str:
    lines = [headline(tables), ""]
    lines += [f"Written by `darts tabulate` from the stage outputs under `{runs_label}`. The paper's numbers "
              "come from `results/paper/darts_tables.csv` (camera-ready, arXiv 1806.09055v2). Each table "
              "below is also a CSV beside this file, with every column (costs, dataset sizes, run "
              "directories, seeds, git revisions). `darts compare results/` prints the same diff.", ""]
    for spec in SPECS:
        findings, issues = compare_table(spec, tables[spec.key], tolerances)
        lines += [f"## {spec.title}", "", table_paragraph(spec, tables[spec.key], findings, issues), ""]
        lines += [markdown_table(_compact(spec, tables[spec.key])), ""]
        for group in ("vs_paper", "training"):
            lines += [_image(p, out_dir) for p in figures.get(group, []) if _for_table(p, spec)]
        lines.append("")
    for group, title in SECTIONS:
        paths = figures.get(group, [])
        if paths:
            lines += [f"## {title}", ""] + [_image(p, out_dir) for p in paths] + [""]
    lines += ["## Deviations from the paper's protocol", ""]
    if deviations is not None and deviations.is_file():
        lines.append(_demote(deviations.read_text(encoding="utf-8")))
    else:
        lines.append(f"`{deviations}` was not found: the deviations could not be listed.")
    return "\n".join(lines).rstrip() + "\n"


def table_paragraph(spec: TableSpec, frame: pd.DataFrame, findings: list[Finding], issues: list[RowIssue]) -> str:
    """How ours compares: one bullet per row of ours."""
    ours = frame[frame["source"] == "ours"]
    if ours.empty:
        return f"No runs of ours were found for this table (`runs/{spec.stage}/`); the paper's rows are shown alone."
    sentences = []
    for row in ours.to_dict("records"):
        method = row["method"]
        issue = next((i for i in issues if i.method == method), None)
        if row["status"] != "ok":
            sentences.append(f"- **{method}**: {row['status']}.")
            continue
        numbers = ", ".join(f"{key.replace('_', ' ')} {_pm(row[f'{key}_mean'], row[f'{key}_std'])}"
                            for key in spec.metrics)
        runs = int(row["runs"])
        text = f"- **{method}** ({row['scale']} scale, {runs} run{'s' if runs != 1 else ''}): {numbers}"
        mine = [f for f in findings if f.method == method]
        if mine:
            verdicts = "; ".join(
                f"{f.metric.replace('_', ' ')} {f.diff:+.2f} against {_pm(f.paper, f.paper_std)}, "
                f"{'outside' if f.flagged else 'within'} ±{f.allowed:.3g} ({f.basis})" for f in mine)
            text += f". Against the paper's *{mine[0].paper_row}*: {verdicts}"
        else:
            text += ". No paper row states this method's numbers"
        if issue is not None and row["scale"] != "paper":
            text += ". Not at paper scale, so not a reproduction"
        sentences.append(text + ".")
    return "\n".join(sentences)


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _compact(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns a reader scans: method, source, scale, each metric as mean ± std, size, cost, diff."""
    out = pd.DataFrame({"method": frame["method"], "source": frame["source"], "scale": frame["scale"]})
    for key in spec.metrics:
        pairs = zip(frame[f"{key}_mean"], frame[f"{key}_std"])
        out[f"{key.replace('_', ' ')} ({spec.unit})"] = [_pm(m, s) for m, s in pairs]
    out["runs"] = frame["runs"]
    out["params (M)"] = frame["params_m"]
    if spec.mult_adds:
        out["mult-adds (M)"] = frame["mult_adds_m"]
    out["search cost"] = [_cost(g, d) for g, d in zip(frame["search_cost_gpu_days"], frame["search_cost_device_days"])]
    for key in spec.metrics:
        out[f"diff {key.replace('_', ' ')}"] = [f"{v:+.2f}" if _finite(v) else "" for v in frame[f"diff_{key}"]]
    out["status"] = [s if s not in ("ok", "published") else "" for s in frame["status"]]
    return out


def _cost(gpu_days: object, device_days: object) -> str:
    if _finite(gpu_days):
        return f"{_num(gpu_days)} GPU days"
    if _finite(device_days):
        return f"{_num(device_days)} device days (not GPU)"
    return ""


def _num(value: object) -> str:
    """3 significant digits, without exponents for the paper's thousands of GPU days."""
    v = float(value)
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _pm(mean: object, std: object) -> str:
    if not _finite(mean):
        return "–"
    return f"{float(mean):.2f} ± {float(std):.2f}" if _finite(std) else f"{float(mean):.2f}"


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float):
        return _num(value)
    return str(value).replace("|", "\\|")


def _image(path: Path, out_dir: Path) -> str:
    rel = path.relative_to(out_dir) if path.is_relative_to(out_dir) else path
    return f"![{path.stem}]({rel.as_posix()})"


def _for_table(path: Path, spec: TableSpec) -> bool:
    return path.stem in (figure_name("vs_paper", table=spec.key), figure_name("training", dataset=spec.dataset))


def _demote(markdown: str) -> str:
    """DEVIATIONS.md nested under this report's heading: its title dropped, every heading one level down."""
    lines = markdown.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return re.sub(r"^(#{1,5}) ", r"#\1 ", "\n".join(lines).strip(), flags=re.MULTILINE)
