"""The one resumable-run shape (darts.run.Run): a kill and resume logs no epoch twice and leaves the
run folder exact, every result is written on every path, stale results never outlive a rerun,
a non-finite metric is divergence and no JSON file holds NaN; plus the shared schedules and
evaluation."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from darts import rundir, schedules
from darts.checkpoint import read_verified, write_verified
from darts.cli import main
from darts.config import load_params
from darts.errors import DartsError
from darts.evaluation import perplexity
from darts.io import write_jsonl
from darts.run import Run, divergence, nonfinite

REPO = Path(__file__).resolve().parents[1]
RESULTS = (*rundir.TRAIN_RESULTS, rundir.HISTORY, rundir.METRICS_CSV)


class _Killed(Exception):
    pass


def _toy(tmp_path: Path, out: Path, epochs: int, *, stop_after: int | None = None, lr: float = 0.1) -> dict:
    """A training loop on a tiny regression in the shape every darts loop has."""
    params = load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}",
                                                         f"train_cifar10.epochs={epochs}"])
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    run = Run(params, "train_cifar10", f"toy-{lr}", 0, out, {"model": model, "optimizer": opt}, "train")
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(1))  # data: a function of the seed alone
    y = x.sum(1, keepdim=True)
    for epoch in range(run.start_epoch, epochs):
        loss = nn.functional.mse_loss(model(x + 0.1 * torch.randn_like(x)), y)  # draws: the RNG is resumed too
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.end_epoch({"epoch": epoch + 1, "train_loss": loss.item(), "weights": model.weight.tolist()})
        if stop_after == epoch + 1:
            raise _Killed
    metrics = {"train_loss": run.history[-1]["train_loss"], "epochs": epochs}
    run.finish(metrics, torch.device("cpu"), {rundir.WEIGHTS: lambda p: torch.save(model.state_dict(), p)})
    return metrics


def _folder(out: Path) -> dict[str, object]:
    """The run folder's files and the content of every deterministic one."""
    files = {p.name: p for p in out.iterdir()}
    return {name: (p.read_text() if name in (rundir.HISTORY, rundir.METRICS_CSV, rundir.METRICS) else None)
            for name, p in files.items()}


@pytest.mark.parametrize("folder", ["as killed", "ahead of the checkpoint"])
def test_killed_run_resumes_to_the_folder_of_an_uninterrupted_one(tmp_path, folder):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    _toy(tmp_path / "a", whole, 3)
    with pytest.raises(_Killed):
        _toy(tmp_path / "b", resumed, 3, stop_after=2)
    assert len((resumed / rundir.HISTORY).read_text().splitlines()) == 2
    assert not (resumed / rundir.METRICS).exists()
    if folder == "ahead of the checkpoint":  # killed after writing epoch 3's history, before its checkpoint
        write_jsonl(resumed / rundir.HISTORY, [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}])
        (resumed / rundir.METRICS_CSV).write_text("epoch\n1\n2\n3\n")
    _toy(tmp_path / "b", resumed, 3)
    assert _folder(resumed) == _folder(whole)


def test_a_finished_checkpoint_resumed_into_an_empty_folder_writes_every_result(tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    _toy(tmp_path, first, 2)
    _toy(tmp_path, again, 2)  # nothing left to train
    assert sorted(p.name for p in again.iterdir()) == sorted(p.name for p in first.iterdir())
    assert set(RESULTS) <= {p.name for p in again.iterdir()}
    assert _folder(again) == _folder(first)


def test_a_checkpoint_of_another_format_is_set_aside_and_the_run_starts_fresh(tmp_path, caplog):
    _toy(tmp_path, tmp_path / "whole", 2)
    (path,) = (tmp_path / "ckpt").glob("*/*/state.pt")
    state = read_verified(path)
    for bad in ({**state, "rng": state["rng"][0]},  # the searches' earlier format: one RNG state, not one per rank
                {**state, "history": state["history"][:1]}):
        write_verified(bad, path)
        caplog.clear()
        _toy(tmp_path, tmp_path / "run", 2)
        assert f"checkpoint {path} cannot be used: not a checkpoint of this version" in caplog.text
        assert _folder(tmp_path / "run") == _folder(tmp_path / "whole")  # trained from epoch 0 again
    torch.save(state, path)  # the format before digests: unverifiable
    caplog.clear()
    _toy(tmp_path, tmp_path / "run", 2)
    assert "an earlier darts version (no digest)" in caplog.text
    assert len(list(path.parent.glob("state.pt.corrupt-*"))) == 3


def test_non_finite_metric_is_divergence_and_clears_the_previous_results(tmp_path):
    out = tmp_path / "run"
    _toy(tmp_path, out, 2)
    with pytest.raises(DartsError, match=r"diverged at epoch \d: non-finite train_loss"):
        _toy(tmp_path, out, 2, lr=1e30)
    assert not any((out / name).exists() for name in rundir.TRAIN_RESULTS)
    assert len((out / rundir.HISTORY).read_text().splitlines()) == 1  # this run's epoch 1 only


def test_divergence_is_a_nan_metric_or_an_infinite_loss_not_an_overflowed_perplexity():
    assert set(divergence({"valid_loss": math.nan, "train_loss": math.inf, "lr": 0.1, "epoch": 3})) == \
        {"valid_loss", "train_loss"}
    assert set(divergence({"valid_acc": math.nan, "grad_norm": torch.tensor(math.inf)})) == {"valid_acc"}
    assert divergence({"valid_loss": 750.0, "valid_ppl": perplexity(750.0)}) == {}
    assert set(nonfinite({"grad_norm": torch.tensor(math.inf), "epoch": 3})) == {"grad_norm"}  # the step guards


def test_diverged_cifar10_retraining_exits_1_and_leaves_no_earlier_result(tmp_path, mirror):
    """A rerun with changed params that fails leaves none of the previous run's results
    (train cifar10 kept them), and a NaN test loss is divergence, not a metric."""
    out = tmp_path / "run"
    args = ["train", "cifar10", "--genotype", "DARTS_V2", "--seed", "0", "--out", str(out),
            "--data", str(mirror / "cifar10-mini"), "--params", str(REPO / "params.yaml"), "--scale", "smoke",
            "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", "--set", "train_cifar10.epochs=1",
            "--set", "train_cifar10.train_images=64", "--set", "train_cifar10.eval_images=64"]
    assert main(args) == 0
    assert (out / rundir.METRICS).exists() and (out / rundir.WEIGHTS).exists()
    assert main([*args, "--set", "train_cifar10.lr=1e6"]) == 1
    assert not any((out / name).exists() for name in rundir.TRAIN_RESULTS)


def test_schedules_and_perplexity():
    assert schedules.cosine(0.025, 0.001, 0, 50) == 0.025
    assert schedules.cosine(1.0, 0.0, 25, 50) == pytest.approx(0.5)
    assert schedules.step(1.0, 0.5, 3, 7) == 0.25
    assert schedules.linear_ramp(0.2, 300, 600) == pytest.approx(0.1)
    assert perplexity(math.log(100.0)) == pytest.approx(100.0) and perplexity(800.0) == math.inf
