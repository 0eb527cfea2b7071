"""Language-model training (darts/train/lm.py): the ASGD switch, the iterate average,
kill-and-resume, the PTB selection run and a WikiText-2 run on the real corpora."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darts import checkpoint
from darts.cli import main
from darts.config import load_params
from darts.genotypes import PUBLISHED
from darts.io import read_json, read_jsonl
from darts.spaces.rnn.counting import describe_rnn
from darts.train import lm

REPO = Path(__file__).resolve().parents[1]
GENOTYPE = PUBLISHED["rnn"]["DARTS_V2"]
# 1,000 training tokens and nonmono 1: the validation loss stops improving within a few epochs
SWITCHING = ["train_ptb.train_tokens=1000", "train_ptb.eval_tokens=1000", "train_ptb.epochs=6", "train_ptb.nonmono=1"]


def smoke_params(tmp_path: Path, *overrides: str):
    return load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", *overrides])


@pytest.mark.parametrize("losses,current,nonmono,due", [
    ([5.0, 4.0, 3.0], 3.5, 5, False),          # not enough history yet
    ([5.0, 4.0, 3.0, 2.9, 2.8, 2.7], 2.6, 5, False),  # still improving
    ([5.0, 4.0, 3.0, 2.9, 2.8, 2.7], 5.1, 5, True),   # worse than the best before the last 5
    ([5.0, 4.0, 3.0, 2.9, 2.8, 2.7], 4.5, 5, False),  # worse than recent epochs, not than epoch 1
    ([3.0, 2.0, 2.5], 2.4, 1, True),            # nonmono 1: worse than min(3.0, 2.0)
    ([3.0, 2.0, 2.5], 1.9, 1, False),
])
def test_asgd_trigger_is_the_non_monotone_criterion(losses, current, nonmono, due):
    assert lm.asgd_due(losses, current, nonmono) is due


def test_iterate_average_is_the_mean_of_the_iterates_since_the_switch():
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))]
    average = lm.IterateAverage(params)
    iterates = []
    for step in range(5):
        with torch.no_grad():
            for p in params:
                p.add_(torch.randn_like(p))
        iterates.append([p.detach().clone() for p in params])
        average.update()
    current = [p.detach().clone() for p in params]
    with average.swapped():
        for i, p in enumerate(params):
            torch.testing.assert_close(p.detach(), torch.stack([it[i] for it in iterates]).mean(0))
    for p, c in zip(params, current):
        assert torch.equal(p.detach(), c)
    restored = lm.IterateAverage(params)
    restored.load_state_dict(average.state_dict())
    assert restored.count == 5 and all(torch.equal(a, b) for a, b in zip(restored.average, average.average))


def test_asgd_switches_when_validation_stops_improving_and_a_killed_run_resumes_identically(
        tmp_path, mirror, monkeypatch):
    whole = lm.train(lm.Task("ptb"), smoke_params(tmp_path / "a", *SWITCHING), GENOTYPE, 0, tmp_path / "whole",
                     mirror / "ptb")
    history = read_jsonl(tmp_path / "whole" / "history.jsonl")
    losses = [row["valid_loss"] for row in history]
    switch = next(e for e in range(1, len(losses) + 1) if lm.asgd_due(losses[:e - 1], losses[e - 1], 1))
    assert whole["asgd_epoch"] == switch < 6
    assert [row["averaged"] for row in history] == [e > switch for e in range(1, 7)]
    assert whole["valid_loss"] == min(losses) and whole["best_epoch"] == losses.index(min(losses)) + 1
    assert whole["test_ppl"] > 1 and whole["train_tokens"] == 1000

    real_save, saves = checkpoint.Checkpoint.save, []

    def save_then_die(self, state):
        real_save(self, state)
        saves.append(state["epoch"])
        if len(saves) == switch + 1:  # killed mid-ASGD, with an average to restore
            raise KeyboardInterrupt

    params = smoke_params(tmp_path / "b", *SWITCHING)
    monkeypatch.setattr(checkpoint.Checkpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        lm.train(lm.Task("ptb"), params, GENOTYPE, 0, tmp_path / "resumed", mirror / "ptb")
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    monkeypatch.setattr(checkpoint.Checkpoint, "save", real_save)
    again = lm.train(lm.Task("ptb"), params, GENOTYPE, 0, tmp_path / "resumed", mirror / "ptb")

    assert again == whole
    ours = torch.load(tmp_path / "resumed" / "weights.pt", weights_only=True)
    reference = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    assert ours.keys() == reference.keys() and all(torch.equal(ours[k], reference[k]) for k in ours)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(tmp_path / "resumed" / "history.jsonl")) == strip(history)
    assert read_json(tmp_path / "whole" / "train_cost.json")["wall_seconds"] > 0


def test_selection_run_scores_validation_perplexity_without_reading_the_test_set(tmp_path, mirror):
    out = tmp_path / "select"
    argv = ["train", "ptb", "--split", "search", "--genotype", "DARTS_V1", "--seed", "1", "--out", str(out),
            "--data", str(mirror / "ptb"), "--params", str(REPO / "params.yaml"), "--scale", "smoke",
            "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", "--set", "select_rnn.train_tokens=1000",
            "--set", "select_rnn.eval_tokens=1000"]
    assert main(argv) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["valid_ppl"] > 1 and not any("test" in key for key in metrics)
    meta = read_json(out / "meta.json")
    assert meta["task"] == "select_rnn" and "select_rnn" in meta["params"]
    assert meta["genotype"] == PUBLISHED["rnn"]["DARTS_V1"].to_json()


def test_wikitext2_run_uses_its_33278_word_vocabulary(tmp_path, mirror):
    params = smoke_params(tmp_path, "train_wikitext2.epochs=1", "train_wikitext2.train_tokens=1000",
                          "train_wikitext2.eval_tokens=600")
    metrics = lm.train(lm.Task("wikitext2"), params, GENOTYPE, 0, tmp_path / "wt2", mirror / "wikitext-2")
    assert metrics["vocab_size"] == 33_278
    assert metrics["params"] == describe_rnn(GENOTYPE, 33_278, 16, 16)["params"] == 33_278 * 16 + 33_278 + 32 * 32 + 8 * 16 * 32
    assert 1 < metrics["test_ppl"] < 33_278 * 3 and metrics["test_tokens"] == 600
    weights = torch.load(tmp_path / "wt2" / "weights.pt", weights_only=True)
    assert weights["encoder.weight"].shape == (33_278, 16) and "decoder.weight" in weights


def test_wikitext2_has_no_selection_split():
    with pytest.raises(Exception, match="select_rnn"):
        lm.Task("wikitext2", "search")
