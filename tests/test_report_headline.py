"""results/metrics.json: readable keys, our numbers worked out from the planted runs, nothing non-finite."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from darts.errors import DartsError
from darts.report.headline import headline_metrics, write_headline
from test_report_planted import CIFAR_ERRORS, PTB_PPL, WT2_PPL, search_hours, plant_runs

EPOCHS = 3


def strict(text: str) -> dict:
    """JSON that Python's reader accepts only without NaN/Infinity."""
    def refuse(name: str) -> None:
        raise AssertionError(f"non-finite {name} in metrics.json")
    return json.loads(text, parse_constant=refuse)


def test_paper_scale_headline_has_every_section_with_the_planted_numbers(tmp_path):
    runs = plant_runs(tmp_path, scale="paper", gpu=True, epochs=EPOCHS, seeds=(0, 1))
    metrics = strict(write_headline(tmp_path / "results" / "metrics.json", headline_metrics(runs)).read_text())

    assert list(metrics) == ["cifar10", "imagenet", "ptb", "wikitext2", "search_cnn", "search_rnn"]
    assert set(metrics["cifar10"]) == set(CIFAR_ERRORS)
    for method, errors in CIFAR_ERRORS.items():
        expected = {"test_error_mean": pytest.approx(statistics.fmean(errors)), "runs": len(errors)}
        if len(errors) > 1:
            expected["test_error_std"] = pytest.approx(statistics.stdev(errors))
        assert metrics["cifar10"][method] == expected
    assert metrics["imagenet"] == {"second": {"top1_error": 26.9, "top5_error": 8.8}}
    assert metrics["ptb"] == {m: {"valid_ppl": v, "test_ppl": t} for m, (v, t) in PTB_PPL.items()}
    assert metrics["wikitext2"] == {m: {"valid_ppl": v, "test_ppl": t} for m, (v, t) in WT2_PPL.items()}
    # planted search scores: valid_acc = 30 + 10 * epoch + seed, valid_ppl = 900 / epoch + seed
    for order in ("first", "second"):
        days = sum(search_hours(order, s) for s in (0, 1)) / 24
        assert metrics["search_cnn"][order] == {"valid_acc_mean": pytest.approx(30 + 10 * EPOCHS + 0.5),
                                                "seeds": 2, "cost_gpu_days": pytest.approx(days)}
        assert metrics["search_rnn"][order] == {"valid_ppl_mean": pytest.approx(900 / EPOCHS + 0.5),
                                                "seeds": 2, "cost_gpu_days": pytest.approx(days)}


def test_smoke_headline_leaves_out_what_did_not_run_and_what_is_not_finite(tmp_path):
    runs = plant_runs(tmp_path, scale="smoke", gpu=False, epochs=EPOCHS, seeds=(0,), orders=("second",))
    broken = runs / "train_wikitext2" / "second" / "metrics.json"
    broken.write_text(json.dumps({"valid_ppl": 71.0, "test_ppl": math.inf}))
    metrics = strict(write_headline(tmp_path / "metrics.json", headline_metrics(runs)).read_text())

    assert "imagenet" not in metrics                                      # not run: no ImageNet data
    assert metrics["wikitext2"] == {"second": {"valid_ppl": 71.0}}        # inf left out, not written
    assert metrics["cifar10"]["random"] == {"test_error_mean": CIFAR_ERRORS["random"][0], "runs": 1}  # no std of 1
    assert metrics["cifar10"]["second"]["runs"] == len(CIFAR_ERRORS["second"])
    assert list(metrics["search_cnn"]) == ["second"]
    assert metrics["search_cnn"]["second"]["cost_device_days"] == pytest.approx(search_hours("second", 0) / 24)
    assert "cost_gpu_days" not in metrics["search_cnn"]["second"]


def test_a_missing_metric_names_the_file(tmp_path):
    runs = plant_runs(tmp_path, scale="paper", seeds=(0,))
    bad = runs / "train_ptb" / "second" / "metrics.json"
    bad.write_text(json.dumps({"valid_ppl": 58.0}))
    with pytest.raises(DartsError, match=f"{bad}: missing key 'test_ppl'"):
        headline_metrics(runs)
