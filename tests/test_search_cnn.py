"""The CNN search loop on real CIFAR-10 images (shared/datasets/cifar10-mini), at a tiny size:
outputs, learning, kill-and-resume, fresh start on a changed hyperparameter, the NaN guard."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from darts.config import load_params
from darts.errors import DartsError
from darts.genotypes import CNNGenotype
from darts.io import read_json, read_jsonl
from darts.search import cnn
from darts.search.cnn import load_search_data, memory_format, run_key, search

REPO = Path(__file__).resolve().parents[1]
TINY = ["search_cnn.layers=3", "search_cnn.init_channels=4", "search_cnn.batch_size=16",
        "search_cnn.train_images=128", "search_cnn.epochs=2", "search_cnn.eigenvalue_every=2",
        "search_cnn.eigenvalue_iterations=2"]


def tiny_params(checkpoints: Path, *overrides: str):
    return load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={checkpoints}", *TINY, *overrides])


@pytest.fixture(scope="module")
def data(mirror: Path) -> Path:
    return mirror / "cifar10-mini"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data):
    """One uninterrupted second-order (finite-difference) search of 2 epochs x 4 steps."""
    root = tmp_path_factory.mktemp("reference")
    params = tiny_params(root / "checkpoints")
    metrics = search(params, 0, root / "run", data)
    return root, params, metrics


def test_run_directory_follows_the_contract(reference):
    root, params, metrics = reference
    run = root / "run"
    cfg = params.search_cnn
    genotype = CNNGenotype.from_json(read_json(run / "genotype.json"))
    alphas = read_json(run / "alphas.json")
    history = read_jsonl(run / "history.jsonl")

    assert [row["epoch"] for row in history] == [1, 2]
    assert history[-1]["genotype"] == genotype.to_json()
    assert {k: torch.tensor(v).shape for k, v in alphas.items()} == {"normal": (14, 8), "reduce": (14, 8)}
    for name, raw in alphas.items():
        expected = torch.softmax(torch.tensor(raw), dim=-1)
        torch.testing.assert_close(torch.tensor(history[-1]["alphas_softmax"][name]), expected, atol=1e-6, rtol=0)
    for row in history:
        assert row["skip_connects"] == sum(op == "skip_connect" for op, _ in CNNGenotype.from_json(row["genotype"]).normal)
        assert row["order"] == "second" and row["hessian"] == "finite_difference"
        cosine = cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * (row["epoch"] - 1) / cfg.epochs)) / 2
        assert row["lr"] == pytest.approx(cosine, rel=1e-12)
    assert history[0]["lr"] == cfg.lr  # epoch 0 trains at the initial rate
    assert "hessian_eigenvalue" not in history[0]  # eigenvalue_every=2: only after epoch 2
    assert math.isfinite(history[1]["hessian_eigenvalue"]) and history[1]["hessian_eigenvalue"] != 0
    assert metrics["hessian_eigenvalue"] == history[1]["hessian_eigenvalue"]

    assert history[1]["train_loss"] < history[0]["train_loss"]  # a few steps lower the training loss
    assert metrics == read_json(run / "metrics.json")
    assert metrics["skip_connects"] == history[-1]["skip_connects"]
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "lr", "train_loss", "valid_acc", "skip_connects"} <= set(header)
    cost = read_json(run / "search_cost.json")
    assert cost["device"] == "cpu" and cost["gpu_days"] is None and cost["wall_seconds"] > 0
    meta = read_json(run / "meta.json")
    assert meta["seed"] == 0 and meta["order"] == "second" and meta["hessian"] == "finite_difference"
    assert meta["params"]["search_cnn"]["layers"] == 3 and meta["data"]


def test_kill_and_resume_ends_bit_identical(reference, tmp_path, data):
    """SIGKILL a second run once its first epoch is checkpointed, rerun it: same alphas, same history."""
    ref_root, params, _ = reference
    checkpoints, out = tmp_path / "checkpoints", tmp_path / "run"
    code = ("import sys; from darts.config import load_params; from darts.search.cnn import search; "
            "search(load_params(sys.argv[1], 'smoke', sys.argv[4:]), 0, sys.argv[2], sys.argv[3])")
    proc = subprocess.Popen([sys.executable, "-c", code, str(REPO / "params.yaml"), str(out), str(data),
                             f"runtime.checkpoint_dir={checkpoints}", *TINY], cwd=REPO)
    try:
        while not list(checkpoints.glob("search_cnn/*/state.pt")) and proc.poll() is None:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert len(read_jsonl(out / "history.jsonl")) == 1 and not (out / "genotype.json").exists()

    search(tiny_params(checkpoints), 0, out, data)
    assert read_json(out / "alphas.json") == read_json(ref_root / "run" / "alphas.json")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(out / "history.jsonl")) == strip(read_jsonl(ref_root / "run" / "history.jsonl"))


def test_rerun_resumes_but_a_changed_hyperparameter_starts_fresh(reference, tmp_path, data, caplog):
    root, params, _ = reference
    caplog.set_level("INFO", logger="darts.checkpoint")
    search(params, 0, tmp_path / "same", data)  # the finished checkpoint: nothing left to train
    assert "epoch 2 done" in caplog.text
    assert read_json(tmp_path / "same" / "alphas.json") == read_json(root / "run" / "alphas.json")

    caplog.clear()
    changed = tiny_params(root / "checkpoints", "search_cnn.arch_lr=3e-3", "search_cnn.epochs=1",
                          "search_cnn.train_images=32")  # one step: a resumed run would train none
    search(changed, 0, tmp_path / "changed", data)
    assert "resuming" not in caplog.text
    assert [r["epoch"] for r in read_jsonl(tmp_path / "changed" / "history.jsonl")] == [1]
    assert len(list((root / "checkpoints" / "search_cnn").iterdir())) == 2

    summary, cl = {"dataset": "cifar10"}, torch.channels_last
    base = run_key(params, 0, summary, cl)
    assert run_key(params, 0, summary, cl) == base
    assert run_key(params, 1, summary, cl) != base
    assert run_key(params, 0, {"dataset": "cifar10", "subset": True}, cl) != base
    for key in ("search_cnn.order=first", "search_cnn.hessian=exact", "search_cnn.momentum=0.8"):
        assert run_key(tiny_params(root / "checkpoints", key), 0, summary, cl) != base, key


def test_run_key_holds_the_resolved_layout_so_a_resume_never_changes_it(reference, tmp_path, data, caplog,
                                                                          monkeypatch):
    """float32 gradients depend on the layout (DEVIATIONS.md), so the key names the layout the run
    actually used: `auto` is channels_last on the CPU and contiguous on CUDA."""
    root, params, _ = reference
    summary, cpu, cuda = {"dataset": "cifar10"}, torch.device("cpu"), torch.device("cuda")
    keyed = {}
    for choice in ("auto", "channels_last", "contiguous"):
        p = tiny_params(root / "checkpoints", f"search_cnn.memory_format={choice}")
        for device in (cpu, cuda):  # resolving needs no CUDA device, only its type
            keyed[choice, device.type] = run_key(p, 0, summary, memory_format(p.search_cnn, device))
    assert keyed["auto", "cpu"] == keyed["channels_last", "cpu"] == keyed["channels_last", "cuda"]
    assert keyed["auto", "cuda"] == keyed["contiguous", "cuda"] == keyed["contiguous", "cpu"]
    assert keyed["auto", "cpu"] != keyed["auto", "cuda"]  # the same params on another device: another run
    assert run_key(params, 0, summary, torch.channels_last) != run_key(params, 0, summary, torch.contiguous_format)

    # End to end on the CPU: the reference ran under `auto`; naming its layout resumes its finished
    # checkpoint (no epoch left to train), the other layout starts at epoch 1 in its own layout.
    class Stop(Exception):
        pass

    trained = []

    def first_epoch_only(*args):
        trained.append((args[7], args[6]))  # (epoch, layout) of train_epoch
        raise Stop

    monkeypatch.setattr(cnn, "train_epoch", first_epoch_only)
    caplog.set_level("INFO", logger="darts.checkpoint")
    search(tiny_params(root / "checkpoints", "search_cnn.memory_format=channels_last"), 0, tmp_path / "cl", data)
    assert "resuming" in caplog.text and "epoch 2 done" in caplog.text and trained == []
    assert read_json(tmp_path / "cl" / "alphas.json") == read_json(root / "run" / "alphas.json")
    caplog.clear()
    with pytest.raises(Stop):
        search(tiny_params(root / "checkpoints", "search_cnn.memory_format=contiguous"), 0, tmp_path / "c", data)
    assert "resuming" not in caplog.text and trained == [(1, torch.contiguous_format)]


def test_diverged_search_stops_without_a_genotype(tmp_path, data):
    from darts.commands import search as command

    out = tmp_path / "run"
    out.mkdir()
    (out / "genotype.json").write_text("{}")  # a stale result must not survive the failed rerun
    parser = argparse.ArgumentParser()
    command.configure(parser)
    args = parser.parse_args(["cnn", "--seed", "0", "--out", str(out), "--order", "first", "--data", str(data),
                              "--params", str(REPO / "params.yaml"), "--scale", "smoke",
                              "--set", f"runtime.checkpoint_dir={tmp_path / 'checkpoints'}",
                              *(a for kv in TINY for a in ("--set", kv)), "--set", "search_cnn.lr=1e30"])
    with pytest.raises(DartsError, match=r"diverged at epoch 1, step \d+: non-finite"):
        command.run(args)
    assert not (out / "genotype.json").exists() and not (out / "alphas.json").exists()
    assert json.loads((out / "meta.json").read_text())["order"] == "first"


def test_short_search_raises_validation_accuracy_above_chance(tmp_path, data):
    """8 first-order steps on 256 images; scored on the 256 held-out ones with batch statistics
    (the paper's BatchNorm: running averages of 8 steps say little). A network that learned nothing
    predicts independently of the image, so it scores at most the held-out half's majority-class
    share p; it must beat p by three binomial standard errors (a margin, not a number tuned on one
    CPU: with 256 images, about 16%)."""
    params = tiny_params(tmp_path / "checkpoints", "search_cnn.order=first", "search_cnn.batch_size=32",
                         "search_cnn.train_images=512", "search_cnn.epochs=1", "search_cnn.lr=0.1",
                         "search_cnn.track_running_stats=false")
    held_out = load_search_data(params.search_cnn, data).held_out
    labels = torch.tensor([int(held_out[i][1]) for i in range(len(held_out))])
    n = labels.numel()
    p = max(labels.bincount().max().item() / n, 0.1)
    metrics = search(params, 0, tmp_path / "run", data)
    assert n == 256
    assert metrics["valid_acc"] > 100 * (p + 3 * math.sqrt(p * (1 - p) / n)), (metrics["valid_acc"], p)
