"""Our rows are computed from the stage outputs: planted outputs give the expected numbers, and a
changed output changes the table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from darts.errors import DartsError
from darts.report.tables import build_tables, write_tables
from test_report_planted import (CIFAR_ERRORS, PTB_PPL, SELECT_HOURS, TRAIN_HOURS, cost,
                                 plant_runs, search_hours)


@pytest.fixture()
def planted(tmp_path):
    return plant_runs(tmp_path, scale="paper", gpu=True)


def ours(table: pd.DataFrame, method: str) -> pd.Series:
    rows = table[(table["source"] == "ours") & (table["method"] == method)]
    assert len(rows) == 1, f"{method}: {len(rows)} rows of ours"
    return rows.iloc[0]


def test_cifar_rows_give_mean_std_costs_and_difference(planted):
    table = build_tables(planted, planted.parent / "data")["table1_cifar10"]
    first = ours(table, "DARTS (first order)")
    errors = np.array(CIFAR_ERRORS["first"])
    assert first["test_error_mean"] == pytest.approx(errors.mean())
    assert first["test_error_std"] == pytest.approx(errors.std(ddof=1))
    assert first["runs"] == len(errors)
    assert first["diff_test_error"] == pytest.approx(errors.mean() - 3.00)
    assert first["paper_row"] == "DARTS (first order) + cutout"
    assert first["search_cost_gpu_days"] == pytest.approx((search_hours("first", 0) + search_hours("first", 1)) / 24)
    assert first["selection_gpu_days"] == pytest.approx(2 * SELECT_HOURS / 24)
    assert first["eval_gpu_days_per_run"] == pytest.approx(TRAIN_HOURS / 24)
    assert first["scale"] == "paper" and first["status"] == "ok" and first["params_m"] == pytest.approx(3.3)
    assert (first["train_images"], first["test_images"]) == (50000, 10000)
    assert first["data_subset"] in (False,)
    assert first["search_runs"] == "runs/search_cnn/first/s0;runs/search_cnn/first/s1"
    assert first["run_dirs"] == ";".join(f"runs/train_cifar10/first-r{i}" for i in range(3))
    assert first["seeds"] == "0;1;2" and first["git_revision"] == "abc1234"
    assert first["selection"] == "runs/select_cnn/first: chose first-s0 valid_error=10"

    second = ours(table, "DARTS (second order)")
    assert second["search_cost_gpu_days"] == pytest.approx((search_hours("second", 0) + search_hours("second", 1)) / 24)
    assert second["diff_test_error"] == pytest.approx(np.mean(CIFAR_ERRORS["second"]) - 2.76)


def test_random_baseline_search_cost_is_its_candidates_training(planted):
    row = ours(build_tables(planted, planted.parent / "data")["table1_cifar10"], "Random search baseline")
    assert row["search_cost_gpu_days"] == pytest.approx(3 * SELECT_HOURS / 24)
    assert math.isnan(row["selection_gpu_days"])
    assert row["paper_row"] == "Random search baseline + cutout"
    assert math.isnan(row["test_error_std"])  # a single run has no std


def test_ours_sit_right_after_the_paper_row_they_are_diffed_against(planted):
    table = build_tables(planted, planted.parent / "data")["table1_cifar10"]
    methods = list(table["method"])
    for mine, theirs in [("DARTS (first order)", "DARTS (first order) + cutout"),
                         ("DARTS (second order)", "DARTS (second order) + cutout")]:
        assert methods.index(mine) == methods.index(theirs) + 1


def test_language_and_imagenet_rows(planted):
    tables = build_tables(planted, planted.parent / "data")
    ptb = ours(tables["table2_ptb"], "DARTS (second order)")
    valid, test = PTB_PPL["second"]
    assert (ptb["valid_ppl_mean"], ptb["test_ppl_mean"]) == (valid, test)
    assert ptb["diff_valid_ppl"] == pytest.approx(valid - 58.1) and ptb["diff_test_ppl"] == pytest.approx(test - 55.7)
    assert ptb["search_cost_gpu_days"] == pytest.approx((search_hours("second", 0) + search_hours("second", 1)) / 24)
    assert ptb["search_runs"] == "runs/search_rnn/second/s0;runs/search_rnn/second/s1"
    assert ptb["train_tokens"] == 929589
    imagenet = ours(tables["table3_imagenet"], "DARTS (second order)")
    assert (imagenet["top1_error_mean"], imagenet["mult_adds_m"]) == (26.9, 574.0)
    assert imagenet["diff_top5_error"] == pytest.approx(8.8 - 8.7)
    assert imagenet["paper_row"] == "DARTS (searched on CIFAR-10)"


def test_changing_an_output_changes_the_table(planted):
    data = planted.parent / "data"
    before = ours(build_tables(planted, data)["table1_cifar10"], "DARTS (second order)")
    metrics_path = planted / "train_cifar10" / "second-r0" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    metrics["test_error"] = 5.0
    metrics_path.write_text(json.dumps(metrics))
    (planted / "search_cnn" / "second" / "s1" / "search_cost.json").write_text(json.dumps(cost(96.0, gpu=True)))
    after = ours(build_tables(planted, data)["table1_cifar10"], "DARTS (second order)")
    assert after["test_error_mean"] == pytest.approx((5.0 + CIFAR_ERRORS["second"][1]) / 2)
    assert after["test_error_mean"] != before["test_error_mean"]
    assert after["search_cost_gpu_days"] == pytest.approx((search_hours("second", 0) + 96.0) / 24)


def test_cpu_searches_have_device_days_and_no_gpu_days(tmp_path):
    runs = plant_runs(tmp_path, scale="smoke", gpu=False)
    row = ours(build_tables(runs, tmp_path / "data")["table1_cifar10"], "DARTS (first order)")
    assert math.isnan(row["search_cost_gpu_days"])
    assert row["search_cost_device_days"] == pytest.approx((search_hours("first", 0) + search_hours("first", 1)) / 24)
    assert row["search_device"] == "x86_64"


def test_one_cpu_search_among_gpu_ones_voids_the_gpu_days(planted):
    (planted / "search_cnn" / "first" / "s1" / "search_cost.json").write_text(json.dumps(cost(12.0, gpu=False)))
    row = ours(build_tables(planted, planted.parent / "data")["table1_cifar10"], "DARTS (first order)")
    assert math.isnan(row["search_cost_gpu_days"])
    assert row["search_device"] == "NVIDIA H100;x86_64"


def test_smoke_rows_say_so_and_imagenet_not_run_is_a_row(tmp_path):
    runs = plant_runs(tmp_path, scale="smoke", gpu=False)
    tables = build_tables(runs, tmp_path / "data")
    for frame in tables.values():
        assert set(frame.loc[frame["source"] == "ours", "scale"]) <= {"smoke"}
    assert ours(tables["table1_cifar10"], "DARTS (first order)")["data_subset"] in (True,)
    imagenet = ours(tables["table3_imagenet"], "DARTS (second order)")
    assert imagenet["status"] == "not run: no ImageNet data" and imagenet["runs"] == 0
    assert math.isnan(imagenet["top1_error_mean"])


def test_written_csv_keeps_counts_whole_and_reads_back(planted, tmp_path):
    tables = build_tables(planted, planted.parent / "data")
    write_tables(tables, tmp_path / "results")
    text = (tmp_path / "results" / "table3_imagenet.csv").read_text()
    assert "1281167" in text and "e+06" not in text
    back = pd.read_csv(tmp_path / "results" / "table1_cifar10.csv")
    assert list(back.columns) == list(tables["table1_cifar10"].columns)
    assert ours(back, "DARTS (first order)")["test_error_mean"] == pytest.approx(3.2)


def test_missing_cost_record_and_metric_name_the_file(planted):
    (planted / "search_cnn" / "second" / "s0" / "search_cost.json").unlink()
    with pytest.raises(DartsError, match="search_cnn/second/s0: no cost record"):
        build_tables(planted, planted.parent / "data")
    plant_runs(planted.parent, scale="paper")
    (planted / "train_ptb" / "first" / "metrics.json").write_text(json.dumps({"valid_ppl": 60.0}))
    with pytest.raises(DartsError, match=r"train_ptb/first/metrics.json: missing key 'test_ppl'"):
        build_tables(planted, planted.parent / "data")


def test_subset_flag_falls_back_to_the_data_manifest(tmp_path):
    runs = plant_runs(tmp_path, scale="paper")
    for meta_path in (runs / "train_ptb").glob("*/meta.json"):
        meta = json.loads(meta_path.read_text())
        del meta["data"]
        meta_path.write_text(json.dumps(meta))
    assert pd.isna(ours(build_tables(runs, tmp_path / "data")["table2_ptb"], "DARTS (second order)")["data_subset"])
    (tmp_path / "data" / "ptb").mkdir(parents=True)
    (tmp_path / "data" / "ptb" / "manifest.json").write_text(json.dumps({"dataset": "ptb", "full": False}))
    assert ours(build_tables(runs, tmp_path / "data")["table2_ptb"], "DARTS (second order)")["data_subset"] in (True,)


def test_tabulate_without_runs_is_a_clear_error(tmp_path, capsys):
    from darts.cli import main

    assert main(["tabulate", "--runs", str(tmp_path / "nothing"), "--out", str(tmp_path / "results"),
                 "--params", str(Path(__file__).resolve().parents[1] / "params.yaml")]) == 1
    assert "no such folder of stage outputs" in capsys.readouterr().err
