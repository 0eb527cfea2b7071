"""Selection, random baselines and the pipeline's instances: planted held-out scores decide; the test set
stays unseen; the params' lists are exactly the stage instances DVC resolves."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from darts.config import ConfigError, load_params
from darts.errors import DartsError
from darts.genotypes import load_genotype, random_genotype
from darts import rundir
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
        genotype.save(rundir.search_dir(runs, space, order, seed) / "genotype.json")
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


def test_ties_go_to_the_earlier_candidate():
    assert choose({"b": 2.0, "a": 1.0, "c": 1.0}) == "a"
    assert choose({"c": 1.0, "a": 1.0}) == "c"


def test_random_baseline_selects_among_uniform_samples(tmp_path, smoke_params):
    runs = tmp_path / "runs"
    count = smoke_params.pipeline.random_cnn_samples
    paths = sample("cnn", count, runs / "search_cnn" / "random")
    assert [p.parent.name for p in paths] == [f"sample{i}" for i in range(count)]
    # sample i is the uniform draw with seed i: reproducible and independent of the others
    assert load_genotype(paths[1], "cnn") == random_genotype("cnn", random.Random(1))
    scores = {f"sample{i}": 10.0 - i for i in range(count)}
    record = select(smoke_params, "cnn", "random", tmp_path / "sel", runs, planted_trainer(scores, "valid_error", []))
    assert record["chosen"] == f"sample{count - 1}"


def instances(root: Path) -> set[str]:
    from darts.pipeline.dvc_stages import load_jobs

    return {job.name for job in load_jobs(root)}


def expected_instances(params) -> set[str]:
    """The stage instances the params' lists describe, spelled out independently of dvc.yaml."""
    p = params.pipeline
    names = {f"data@{d}" for d in ("cifar10", "ptb", "wikitext2", "imagenet")} | {"random_cnn", "random_rnn", "tabulate"}
    for space, orders, methods in (("cnn", p.cnn_orders, p.cnn_methods), ("rnn", p.rnn_orders, p.rnn_methods)):
        names |= {f"search_{space}@{o}-{s}" for o in orders for s in p.seeds}
        names |= {f"select_{space}@{m}" for m in methods}
        names |= {f"snapshot_{space}@{o}-{s}" for o in orders for s in p.snapshot_seeds}
    names |= {f"train_cifar10@{m}-{r}" for m in p.cnn_methods for r in p.cifar10_runs}
    names |= {f"train_cifar10_published@{c}-{r}" for c in p.published_cifar10 for r in p.cifar10_runs}
    names |= {f"train_ptb@{m}" for m in p.rnn_methods} | {f"train_ptb_published@{c}" for c in p.published_ptb}
    names |= {f"train_imagenet@{m}" for m in p.imagenet_methods}
    names |= {f"train_imagenet_published@{c}" for c in p.published_imagenet}
    names |= {f"train_wikitext2@{m}" for m in p.wikitext2_methods}
    names |= {f"train_wikitext2_published@{c}" for c in p.published_wikitext2}
    return names


@pytest.mark.parametrize("scale", ["paper", "smoke"])
def test_the_params_lists_are_exactly_the_stage_instances(tmp_path, scale):
    from pipeline_helpers import fresh_clone, set_param

    ws = fresh_clone(tmp_path / "ws", scale)
    found = instances(ws)
    assert found == expected_instances(load_params(ws / "params.yaml"))
    assert (sum(n.startswith("search_cnn@") for n in found), sum(n.startswith("train_cifar10@") for n in found)) == (
        (8, 30) if scale == "paper" else (4, 6))
    # the optional families appear exactly when their lists are filled
    set_param(ws, ["pipeline", "published_ptb"], ["DARTS_V2", "ENAS"])
    set_param(ws, ["pipeline", "snapshot_seeds"], [1])
    grown = instances(ws)
    assert grown - found == {"train_ptb_published@DARTS_V2", "train_ptb_published@ENAS",
                             "snapshot_cnn@first-1", "snapshot_cnn@second-1", "snapshot_rnn@first-1", "snapshot_rnn@second-1"}
    assert grown == expected_instances(load_params(ws / "params.yaml"))


@pytest.mark.parametrize("key, value, message", [
    ("pipeline.cnn_methods", "[first, second, random]", r"pipeline.cnn_methods: \['first'\] not in pipeline.cnn_orders"),
    ("pipeline.imagenet_methods", "[random, first]", r"--set pipeline.imagenet_methods: \['first'\] not in pipeline.cnn_methods"),
    ("pipeline.snapshot_seeds", "[0, 5]", r"pipeline.snapshot_seeds: \[5\] not in pipeline.seeds"),
    ("pipeline.published_ptb", "[NASNet]", r"pipeline.published_ptb.0"),
    ("pipeline.seeds", "[0, 0]", r"pipeline.seeds: duplicate"),
])
def test_a_list_naming_a_missing_upstream_instance_is_refused(key, value, message):
    overrides = ["pipeline.cnn_orders=[second]", "pipeline.cnn_methods=[second, random]",
                 "pipeline.imagenet_methods=[second]", f"{key}={value}"]
    with pytest.raises(ConfigError, match=message):
        load_params(REPO / "params.yaml", overrides=overrides)
