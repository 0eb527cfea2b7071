"""`darts search rnn` on the real Penn Treebank (shared/datasets/ptb), at a few-step scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from darts import checkpoint
from darts.cli import main
from darts.config import load_params
from darts.data import text
from darts.genotypes import RNNGenotype, load_genotype
from darts.io import read_json, read_jsonl
from darts.search import rnn

REPO = Path(__file__).resolve().parents[1]
TINY = ["search_rnn.train_tokens=1600", "search_rnn.eval_tokens=1000", "search_rnn.epochs=2"]


def smoke_params(tmp_path: Path, *overrides: str):
    return load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", *TINY, *overrides])


def test_second_order_search_lowers_validation_perplexity_and_writes_the_run_directory(tmp_path, mirror):
    out = tmp_path / "run"
    argv = ["search", "rnn", "--seed", "0", "--out", str(out), "--order", "second", "--data", str(mirror / "ptb"),
            "--params", str(REPO / "params.yaml"), "--scale", "smoke",
            "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", *[a for s in TINY for a in ("--set", s)]]
    assert main(argv) == 0
    metrics = read_json(out / "metrics.json")
    history = read_jsonl(out / "history.jsonl")
    assert [row["epoch"] for row in history] == [1, 2]
    # Compared within the run and against the uniform model, never against a number tuned on one CPU
    # (float32 rounding moves these perplexities by ~10% between CPUs): the uniform model's
    # perplexity is the vocabulary size, counted here from the training text.
    uniform = len(set((mirror / "ptb" / "train.txt").read_text().split()) | {"<eos>"})
    assert uniform == 10_000  # Mikolov's PTB
    assert history[1]["valid_ppl"] < history[0]["valid_ppl"] < uniform
    assert metrics["valid_ppl"] == history[1]["valid_ppl"]
    assert all(row["order"] == "second" and row["arch_data"] == "valid" for row in history)
    assert len(history[-1]["alphas_softmax"]["recurrent"]) == 36
    genotype = load_genotype(out / "genotype.json", "rnn")
    assert isinstance(genotype, RNNGenotype) and genotype.recurrent == tuple(map(tuple, history[-1]["genotype"]["recurrent"]))
    assert metrics["skip_connects"] == sum(op == "identity" for op, _ in genotype.recurrent)
    alphas = read_json(out / "alphas.json")["recurrent"]
    assert len(alphas) == 36 and all(len(row) == 5 for row in alphas)
    meta = read_json(out / "meta.json")
    assert meta["order"] == "second" and meta["arch_data"] == "valid" and meta["params"]["search_rnn"]["bptt"] == 16
    cost = read_json(out / "search_cost.json")
    assert cost["wall_seconds"] > 0 and cost["gpu_days"] is None
    assert "valid_ppl" in (out / "metrics.csv").read_text().splitlines()[0]


def test_killed_search_resumes_to_the_same_alphas_on_held_out_training_data(tmp_path, mirror, monkeypatch):
    overrides = ("search_rnn.order=first", "search_rnn.arch_data=train_holdout", "search_rnn.holdout_fraction=0.25")
    params = smoke_params(tmp_path, *overrides)
    whole = rnn.search(params, 3, tmp_path / "whole", mirror / "ptb")
    assert whole["arch_data"] == "train_holdout"

    resumed_params = smoke_params(tmp_path / "second", *overrides)
    real_save = checkpoint.Checkpoint.save

    def save_then_die(self, state):
        real_save(self, state)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(checkpoint.Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        rnn.search(resumed_params, 3, tmp_path / "resumed", mirror / "ptb")
    assert not (tmp_path / "resumed" / "genotype.json").exists()
    monkeypatch.setattr(checkpoint.Checkpoint, "save", real_save)
    again = rnn.search(resumed_params, 3, tmp_path / "resumed", mirror / "ptb")

    assert again == whole
    assert read_json(tmp_path / "resumed" / "alphas.json") == read_json(tmp_path / "whole" / "alphas.json")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "resumed" / "history.jsonl")) == strip(read_jsonl(tmp_path / "whole" / "history.jsonl"))


def test_a_changed_hyperparameter_starts_fresh(tmp_path, mirror):
    base = smoke_params(tmp_path)
    changed = smoke_params(tmp_path, "search_rnn.arch_lr=0.01")
    summary = text.manifest_summary("ptb", mirror / "ptb")
    assert rnn.run_key(base, 0, summary) != rnn.run_key(changed, 0, summary)
    assert rnn.run_key(base, 0, summary) != rnn.run_key(base, 1, summary)
    assert rnn.run_key(base, 0, summary) == rnn.run_key(smoke_params(tmp_path), 0, summary)
