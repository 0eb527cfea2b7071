"""Write the results tables, figures and report from the stage outputs.

  darts tabulate [--runs runs] [--out results]

Writes <out>/table1_cifar10.csv, table2_ptb.csv, table3_imagenet.csv, table4_wikitext2.csv (every
row of the paper's tables, ours beside the row each is diffed against), <out>/metrics.json (our
headline numbers, the pipeline's DVC metrics), <out>/figures/*.png and <out>/figures_pdf/*.pdf (names:
darts.report.figures.figure_names) and <out>/REPORT.md. Smoke-scale outputs say so in the scale
column, every figure title and the report's first line.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from darts.config import add_config_args, params_from_args
from darts.errors import DartsError
from darts.io import write_text

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", default="runs", help="the stage outputs (default: runs)")
    parser.add_argument("--out", default="results",
                        help="where the tables, figures/ and REPORT.md go (default: results)")
    parser.add_argument("--deviations", default="DEVIATIONS.md",
                        help="the project's deviations, quoted in the report (default: DEVIATIONS.md)")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.report.figures import pdf_dir, render_all
    from darts.report.headline import headline_metrics, write_headline
    from darts.report.report import build_report
    from darts.report.tables import build_tables, write_tables

    params = params_from_args(args)
    runs, out = Path(args.runs), Path(args.out)
    if not runs.is_dir():
        raise DartsError(f"{runs}: no such folder of stage outputs (run the pipeline first, or pass --runs)")
    tables = build_tables(runs, params.data.root)
    written = write_tables(tables, out)
    headline = write_headline(out / "metrics.json", headline_metrics(runs))
    figures_dir = out / "figures"
    figures = render_all(runs, tables, figures_dir, params.compare)
    made = [p for paths in figures.values() for p in paths]
    for folder in (figures_dir, pdf_dir(figures_dir)):
        _remove_stale(folder, made)
    report = out / "REPORT.md"
    write_text(report, build_report(tables, figures, out, params.compare, Path(args.deviations), f"{runs}/"))
    ours = sum(int((t["source"] == "ours").sum()) for t in tables.values())
    print(f"wrote {len(written)} tables ({ours} rows of ours), {headline}, "
          f"{sum(len(v) for v in figures.values())} figures and {report}")
    return 0


def _remove_stale(figures_dir: Path, made: list[Path]) -> None:
    """Figures of runs that no longer exist must not linger beside the fresh ones."""
    keep = {p.stem for p in made}
    for path in figures_dir.iterdir() if figures_dir.is_dir() else ():
        if path.suffix in (".png", ".pdf") and path.stem not in keep:
            log.info("removing stale figure %s", path)
            path.unlink()
