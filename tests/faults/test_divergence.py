"""Divergence: a NaN validation or test loss (or any NaN, nested ones included, or an infinite
loss) stops the run with the divergence error (exit 1) and writes no result; no JSON file ever
holds NaN or Infinity; an overflowed perplexity of a finite loss (> 700 nats) is written as null,
its loss beside it, and is not divergence."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from darts import rundir
from darts.cli import main
from darts.config import load_params
from darts.errors import DartsError
from darts.io import write_json, write_jsonl
from darts.run import Run, divergence
from killing import REPO, mirror_root, strict_json

COMMANDS = {
    "search cnn": ["search", "cnn", "--seed", "0", "--order", "first", "--data", "cifar10-mini",
                   "--set", "search_cnn.lr=1e6", "--set", "search_cnn.epochs=1"],
    "train cifar10": ["train", "cifar10", "--genotype", "DARTS_V2", "--seed", "0", "--data", "cifar10-mini",
                      "--set", "train_cifar10.lr=1e6", "--set", "train_cifar10.epochs=1",
                      "--set", "train_cifar10.train_images=64", "--set", "train_cifar10.eval_images=64"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_diverged_run_exits_1_writes_no_result_and_no_json_holds_nan(tmp_path, command, capsys):
    out = tmp_path / "out"
    args = [a if a != "cifar10-mini" else str(mirror_root() / a) for a in COMMANDS[command]]
    code = main([*args, "--out", str(out), "--params", str(REPO / "params.yaml"), "--scale", "smoke",
                 "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}"])
    assert code == 1
    assert "diverged" in capsys.readouterr().err
    results = rundir.SEARCH_RESULTS if command.startswith("search") else rundir.TRAIN_RESULTS
    assert not [n for n in results if (out / n).exists()]
    for path in out.glob("*.json*"):
        strict_json(path)


def _run(tmp_path: Path, out: Path, rows: list[dict], metrics: dict) -> None:
    params = load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}",
                                                         f"train_ptb.epochs={len(rows)}"])
    model = torch.nn.Linear(1, 1)
    run = Run(params, "train_ptb", "overflow", 0, out, {"model": model}, "train")
    for row in rows:
        run.end_epoch(row)
    run.finish(metrics, torch.device("cpu"), {rundir.WEIGHTS: lambda p: torch.save(model.state_dict(), p)})


def test_an_overflowed_perplexity_is_written_null_beside_its_finite_loss(tmp_path):
    out = tmp_path / "out"
    rows = [{"epoch": 1, "valid_loss": 750.0, "valid_ppl": math.inf}, {"epoch": 2, "valid_loss": 5.0,
                                                                      "valid_ppl": math.exp(5.0)}]
    _run(tmp_path, out, rows, {"valid_loss": 750.0, "valid_ppl": math.inf})
    history = strict_json(out / rundir.HISTORY)
    assert history[0] == {"epoch": 1, "valid_loss": 750.0, "valid_ppl": None} and history[1]["valid_ppl"] > 0
    assert strict_json(out / rundir.METRICS) == {"valid_loss": 750.0, "valid_ppl": None}
    assert "inf" not in (out / rundir.METRICS_CSV).read_text().lower()


@pytest.mark.parametrize("row", [
    {"epoch": 1, "valid_loss": math.nan},
    {"epoch": 1, "test_loss": math.inf},
    {"epoch": 1, "valid_ppl": math.nan},
    {"epoch": 1, "alphas_softmax": {"normal": [[0.5, math.nan]]}},
], ids=["nan loss", "infinite loss", "nan perplexity", "nan nested in the alphas"])
def test_a_nan_or_an_infinite_loss_anywhere_is_divergence(tmp_path, row):
    with pytest.raises(DartsError, match="diverged at epoch 1: non-finite"):
        _run(tmp_path, tmp_path / "out", [row], {})
    assert not (tmp_path / "out" / rundir.HISTORY).exists()
    assert divergence({"valid_loss": 750.0, "valid_ppl": math.inf}) == {}


def test_diverged_final_metrics_write_no_result(tmp_path):
    with pytest.raises(DartsError, match="diverged: non-finite test_loss=nan in the final metrics"):
        _run(tmp_path, tmp_path / "out", [{"epoch": 1, "valid_loss": 5.0}], {"test_loss": math.nan})
    assert not [n for n in rundir.TRAIN_RESULTS if (tmp_path / "out" / n).exists()]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_write_json_refuses_a_non_finite_number_naming_the_file(tmp_path, value):
    for write, obj in ((write_json, {"loss": value}), (write_jsonl, [{"loss": value}])):
        path = tmp_path / "out.json"
        with pytest.raises(DartsError, match=f"cannot write {path}: a value is not a finite number"):
            write(path, obj)
        assert list(tmp_path.iterdir()) == []
