"""The paper's numbers: the project's copy equals the shared source, and every paper row reaches the tables."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from darts.errors import DartsError
from darts.report.paper import PAPER_CSV, load_paper
from darts.report.tables import SPECS, build_tables

SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "paper" / "darts_tables.csv"


def test_project_copy_equals_the_shared_paper_data():
    if not SHARED_CSV.is_file():
        pytest.skip(f"{SHARED_CSV} not present")
    assert PAPER_CSV.read_bytes() == SHARED_CSV.read_bytes()


def _csv_rows() -> list[dict[str, str]]:
    with PAPER_CSV.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _close(a: float, b: str) -> bool:
    if b in ("", "NA"):
        return math.isnan(a)
    return math.isclose(a, float(b), rel_tol=0, abs_tol=1e-9)


def test_every_paper_row_is_in_its_table_with_the_papers_values(tmp_path):
    (tmp_path / "runs").mkdir()
    tables = build_tables(tmp_path / "runs", tmp_path / "data")
    checked = 0
    for spec in SPECS:
        frame = tables[spec.key]
        paper = frame[frame["source"] == "paper"].set_index("method")
        expected = [r for r in _csv_rows() if r["table"] in spec.paper_tables]
        assert set(paper.index) == {r["method"] for r in expected}
        assert (paper["scale"] == "paper").all()
        for rec in expected:
            row = paper.loc[rec["method"]]
            ours = {v: k for k, v in spec.metrics.items()}.get(rec["metric"])
            if ours is not None:
                assert _close(row[f"{ours}_mean"], rec["value"]), (spec.key, rec)
                assert _close(row[f"{ours}_std"], rec["std"]), (spec.key, rec)
                checked += 1
            elif rec["metric"] == "params":
                assert _close(row["params_m"], rec["value"]), (spec.key, rec)
            elif rec["metric"] == "mult_adds":
                assert _close(row["mult_adds_m"], rec["value"]), (spec.key, rec)
            elif rec["metric"] == "search_cost":
                column = "search_cost_device_days" if rec["unit"] == "CPU days" else "search_cost_gpu_days"
                assert _close(row[column], rec["value"]), (spec.key, rec)
            elif rec["metric"] == "search_method":
                assert row["search_method"] == rec["value"]
    assert checked == sum(1 for r in _csv_rows() if r["metric"] in
                          ("test_error", "valid_perplexity", "test_perplexity", "top1_error", "top5_error")
                          and r["table"].startswith(("Table", "Sect.", "Appendix")))


def test_cpu_day_search_cost_is_never_shown_as_gpu_days(tmp_path):
    (tmp_path / "runs").mkdir()
    ptb = build_tables(tmp_path / "runs", tmp_path / "data")["table2_ptb"].set_index("method")
    nas = ptb.loc["NAS (Zoph & Le 2017)"]
    assert nas["search_cost_device_days"] == 1e4 and math.isnan(nas["search_cost_gpu_days"])
    assert nas["search_device"] == "cpu"


def test_paper_costs_fill_the_darts_rows(tmp_path):
    (tmp_path / "runs").mkdir()
    tables = build_tables(tmp_path / "runs", tmp_path / "data")
    second = tables["table1_cifar10"].set_index("method").loc["DARTS (second order) + cutout"]
    assert (second["search_cost_gpu_days"], second["selection_gpu_days"], second["eval_gpu_days_per_run"]) == (4, 1, 1.5)
    assert tables["table3_imagenet"].set_index("method").loc["DARTS (searched on CIFAR-10)", "eval_gpu_days_per_run"] == 12


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text.replace("3.46", "three"), "not a number: 'three'"),
    (lambda text: text.replace("source_note", "note", 1), "expected columns"),
])
def test_bad_paper_data_names_the_file(tmp_path, mutate, message):
    bad = tmp_path / "darts_tables.csv"
    bad.write_text(mutate(PAPER_CSV.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(DartsError, match=message) as err:
        load_paper(bad)
    assert str(bad) in str(err.value)
