"""`darts compare`: flags numbers outside the paper's band; --strict gates on flags and on smoke rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from darts.cli import main
from darts.config import load_section
from darts.report.compare import compare_results, read_results, strict_failures
from darts.report.tables import build_tables, write_tables
from test_report_planted import plant_runs

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def results_of(tmp_path: Path, **plant) -> Path:
    runs = plant_runs(tmp_path, **plant)
    write_tables(build_tables(runs, tmp_path / "data"), tmp_path / "results")
    return tmp_path / "results"


def compare(results: Path, *extra: str) -> int:
    return main(["compare", str(results), "--params", str(PARAMS), *extra])


def test_paper_scale_numbers_inside_the_bands_pass_strict(tmp_path, capsys):
    results = results_of(tmp_path, scale="paper")
    assert compare(results, "--strict") == 0
    out = capsys.readouterr().out
    assert "OUTSIDE" not in out and "within the paper's bands" in out
    assert "DARTS (first order)" in out and "test_error" in out


def test_a_number_outside_the_band_fails_strict_only(tmp_path, capsys):
    # first order: mean 3.60 against the paper's 3.00 ± 0.14, further than 2 std (0.28).
    results = results_of(tmp_path, scale="paper", cifar_errors={"first": [3.5, 3.7], "second": [2.7, 2.8]})
    assert compare(results) == 0
    assert compare(results, "--strict") == 1
    out = capsys.readouterr().out
    flagged = [line for line in out.splitlines() if line.rstrip().endswith("OUTSIDE")]
    assert len(flagged) == 2 and all("DARTS (first order)" in line and "+0.600" in line for line in flagged)


def test_the_band_is_sigmas_std_or_the_params_tolerance(tmp_path):
    results = read_results(results_of(tmp_path, scale="paper"))
    tolerances = load_section("compare", PARAMS)
    findings = {(f.table, f.method, f.metric): f for table in compare_results(results, tolerances).values() for f in table[0]}
    first = findings[("table1_cifar10", "DARTS (first order)", "test_error")]
    assert first.allowed == pytest.approx(2 * 0.14) and first.basis == "2 std"
    ptb = findings[("table2_ptb", "DARTS (first order)", "valid_ppl")]   # 61.0 against 60.2, single number
    assert ptb.allowed == 1.0 and ptb.diff == pytest.approx(0.8) and not ptb.flagged
    tight = compare_results(results, load_section("compare", PARAMS, ptb_ppl=0.5, sigmas=1.0))
    flagged = {(f.table, f.method, f.metric) for f in tight["table2_ptb"][0] if f.flagged}
    assert ("table2_ptb", "DARTS (first order)", "valid_ppl") in flagged
    assert not any(f.flagged for f in tight["table1_cifar10"][0] if f.method == "DARTS (second order)")


def test_params_tolerance_is_read_from_the_params_file(tmp_path, capsys):
    results = results_of(tmp_path, scale="paper")
    assert compare(results, "--strict", "--set", "compare.ptb_ppl=0.5") == 1
    assert "compare.ptb_ppl" in capsys.readouterr().out


def test_smoke_rows_fail_strict_even_inside_the_bands(tmp_path, capsys):
    results = results_of(tmp_path, scale="smoke", gpu=False)
    assert compare(results) == 0
    assert compare(results, "--strict") == 1
    out = capsys.readouterr().out
    assert "smoke scale, not paper scale" in out and "not run: no ImageNet data" in out


def test_no_rows_of_ours_is_not_a_pass(tmp_path):
    (tmp_path / "runs").mkdir()
    write_tables(build_tables(tmp_path / "runs", tmp_path / "data"), tmp_path / "results")
    failures = strict_failures(compare_results(read_results(tmp_path / "results"), load_section("compare", PARAMS)))
    assert failures == ["no rows of ours in any table: nothing was compared"]


def test_missing_results_is_a_clear_error(tmp_path, capsys):
    assert compare(tmp_path / "nowhere") == 1
    assert "table1_cifar10.csv: not found (run `darts tabulate` first)" in capsys.readouterr().err
