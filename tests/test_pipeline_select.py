"""Selection, random baselines and the scale gate: planted held-out scores decide; the test set stays unseen."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from darts.config import load_params
from darts.errors import DartsError
from darts.genotypes import load_genotype, random_genotype
from darts.pipeline import plan
from darts.pipeline.random_baseline import sample
from darts.pipeline.select import choose, select

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def smoke_params():
    return load_params(REPO / "params.yaml", "smoke")


def plant_searches(runs: Path, space: str, order: str, seeds: list[int]) -> dict[str, dict]:
    genotypes = {}
    for seed in seeds:
        genotype = random_genotype(space, random.Random(100 + seed))
        genotype.save(plan.search_dir(runs, space, order, seed) / "genotype.json")
        genotypes[f"{order}-s{seed}"] = genotype.to_json()
    return genotypes


def planted_trainer(scores: dict[str, float], metric: str, seen: list):
    """Stands in for a candidate's training: writes the planted held-out score into its run dir."""

    def train(dataset: str, genotype: Path, seed: int, out: Path) -> int:
        seen.append((dataset, genotype, seed, out.name))
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({metric: scores[out.name]}))
        return 0

    return train


@pytest.mark.parametrize("space, metric, dataset", [("cnn", "valid_error", "cifar10"), ("rnn", "valid_ppl", "ptb")])
def test_planted_scores_choose_the_best(tmp_path, smoke_params, space, metric, dataset):
    runs = tmp_path / "runs"
    genotypes = plant_searches(runs, space, "second", smoke_params.pipeline.seeds)
    scores = {"second-s0": 7.5, "second-s1": 3.25}
    seen: list = []
    out = runs / f"select_{space}" / "second"
    record = select(smoke_params, space, "second", out, runs, planted_trainer(scores, metric, seen))

    assert record["chosen"] == "second-s1" and record["score"] == 3.25 and record["metric"] == metric
    assert [c["score"] for c in record["candidates"]] == [7.5, 3.25]
    assert json.loads((out / "selected.json").read_text())["chosen"] == "second-s1"
    assert load_genotype(out / "genotype.json", space).to_json() == genotypes["second-s1"]
    # every candidate trained on the selection dataset with the same seed
    assert [(d, s, n) for d, _, s, n in seen] == [(dataset, 0, "second-s0"), (dataset, 0, "second-s1")]

    # plant the opposite ranking: the choice follows the scores
    record = select(smoke_params, space, "second", tmp_path / "again", runs,
                    planted_trainer({"second-s0": 1.0, "second-s1": 3.25}, metric, []))
    assert record["chosen"] == "second-s0"


def test_selection_refuses_test_set_metrics(tmp_path, smoke_params):
    runs = tmp_path / "runs"
    plant_searches(runs, "cnn", "first", smoke_params.pipeline.seeds)

    def leaky(dataset, genotype, seed, out):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"valid_error": 5.0, "test_error": 4.0}))
        return 0

    with pytest.raises(DartsError, match="never read the test set"):
        select(smoke_params, "cnn", "first", tmp_path / "sel", runs, leaky)


def test_skipped_or_missing_candidates_fail_clearly(tmp_path, smoke_params):
    runs = tmp_path / "runs"
    plant_searches(runs, "cnn", "first", [0])
    with pytest.raises(DartsError, match="has no genotype"):
        select(smoke_params, "cnn", "first", tmp_path / "sel", runs, planted_trainer({}, "valid_error", []))
    marker = plan.search_dir(runs, "cnn", "first", 1) / "metrics.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"status": "skipped", "reason": "seed 1 is not in pipeline.seeds"}))
    with pytest.raises(DartsError, match="skipped at this scale"):
        select(smoke_params, "cnn", "first", tmp_path / "sel", runs, planted_trainer({}, "valid_error", []))


def test_ties_go_to_the_earlier_candidate():
    assert choose({"b": 2.0, "a": 1.0, "c": 1.0}) == "a"
    assert choose({"c": 1.0, "a": 1.0}) == "c"


def test_random_baseline_selects_among_uniform_samples(tmp_path, smoke_params):
    runs = tmp_path / "runs"
    count = smoke_params.pipeline.random_cnn_samples
    paths = sample("cnn", count, runs / "random_cnn")
    assert [p.parent.name for p in paths] == [f"sample{i}" for i in range(count)]
    # sample i is the uniform draw with seed i: reproducible and independent of the others
    assert load_genotype(paths[1], "cnn") == random_genotype("cnn", random.Random(1))
    scores = {f"sample{i}": 10.0 - i for i in range(count)}
    record = select(smoke_params, "cnn", "random", tmp_path / "sel", runs, planted_trainer(scores, "valid_error", []))
    assert record["chosen"] == f"sample{count - 1}"


def test_published_cell_needs_no_training(tmp_path, smoke_params):
    def never(*_):
        raise AssertionError("a published cell must not be retrained for selection")

    record = select(smoke_params, "rnn", "DARTS_V2", tmp_path / "sel", tmp_path / "runs", never)
    assert record["chosen"] == "DARTS_V2"
    assert load_genotype(tmp_path / "sel" / "genotype.json", "rnn") == load_genotype("DARTS_V2", "rnn")


def test_gate_active_instances_follow_the_scale(smoke_params):
    paper = load_params(REPO / "params.yaml", "paper")
    assert plan.inactive_reason(paper, "search_cnn", order="first", seed=3) is None
    assert "seed 3" in plan.inactive_reason(smoke_params, "search_cnn", order="first", seed=3)
    assert plan.inactive_reason(smoke_params, "train_cifar10", method="second", run=1) is None
    assert "run 2" in plan.inactive_reason(smoke_params, "train_cifar10", method="second", run=2)
    assert "published_cells" in plan.inactive_reason(paper, "train_ptb", method="ENAS")
    published = load_params(REPO / "params.yaml", "paper", ["pipeline.published_cells=true"])
    assert plan.inactive_reason(published, "train_ptb", method="ENAS") is None
    only_second = load_params(REPO / "params.yaml", "paper", ["pipeline.rnn_orders=[second]"])
    assert "order 'first'" in plan.inactive_reason(only_second, "select_rnn", method="first")
    assert plan.inactive_reason(only_second, "select_cnn", method="first") is None


def test_gate_command_skips_or_runs(tmp_path):
    darts = [sys.executable, "-m", "darts"]
    common = ["--params", str(REPO / "params.yaml"), "--scale", "smoke"]
    skipped = tmp_path / "s2"
    proc = subprocess.run([*darts, "gate", "--stage", "search_cnn", "--order", "first", "--seed", "2",
                           "--out", str(skipped), *common, "--", "false"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((skipped / "metrics.json").read_text())["status"] == "skipped"

    ran = tmp_path / "ran"
    proc = subprocess.run([*darts, "gate", "--stage", "search_cnn", "--order", "first", "--seed", "1",
                           "--out", str(ran), *common, "--", "sh", "-c", f"mkdir -p {ran} && echo $0 > {ran}/x", "hi"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (ran / "x").read_text().strip() == "hi" and not (ran / "metrics.json").exists()

    proc = subprocess.run([*darts, "gate", "--stage", "search_cnn", "--order", "first", "--seed", "0",
                           "--out", str(tmp_path / "f"), *common, "--", "false"], capture_output=True, text=True)
    assert proc.returncode == 1  # the stage's own failure comes through
