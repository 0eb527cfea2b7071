"""The smoke pipeline end to end with `dvc repro` in a fresh workspace: outputs, a leaf change, a
no-op, the DVC remote round trip, and resume of a killed stage. The tests share one workspace, in
file order."""

from __future__ import annotations

import shutil
import time

import pytest

from darts.io import read_json
from pipeline_helpers import fresh_clone, kill_after_checkpoint, run, set_param, stages_run, tool_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mirror):
    return fresh_clone(tmp_path_factory.mktemp("dvc") / "repo")


@pytest.fixture(scope="module")
def env(mirror):
    return tool_env(mirror)


@pytest.fixture(scope="module")
def reproduced(repo, env):
    start = time.monotonic()
    proc = run(["dvc", "repro"], repo, env)
    out = proc.stdout + proc.stderr
    print(f"dvc repro at smoke scale: {time.monotonic() - start:.0f} s")
    return out


def test_smoke_pipeline_reaches_the_tables(repo, reproduced):
    ran = stages_run(reproduced)
    assert "tabulate" in ran and "data@cifar10" in ran
    for table in ("table1_cifar10", "table2_ptb", "table3_imagenet", "table4_wikitext2"):
        assert (repo / "results" / f"{table}.csv").stat().st_size > 0
    # the smoke lists are the instances: nothing outside them exists, not even a marker
    assert (repo / "runs/search_cnn/second/s1/genotype.json").is_file()
    assert sorted(p.name for p in (repo / "runs/search_cnn/second").iterdir()) == ["s0", "s1"]
    assert sorted(p.name for p in (repo / "runs/train_cifar10").iterdir()) == [
        f"{m}-r{r}" for m in ("first", "random", "second") for r in (0, 1)]
    assert "No file hash info found" not in reproduced
    selected = read_json(repo / "runs/select_cnn/second/selected.json")
    assert selected["chosen"] in {"second-s0", "second-s1"} and selected["metric"] == "valid_error"
    metrics = read_json(repo / "runs/train_cifar10/second-r1/metrics.json")
    assert 0.0 <= metrics["test_error"] <= 100.0


def test_smoke_tables_show_learning(repo, reproduced):
    """Every final run in the tables beats its statistical margin (tests/learning.py): CIFAR-10 error
    below chance by 3 standard errors of the images scored, every LM below the add-one unigram."""
    import csv

    import yaml

    import learning

    params = yaml.safe_load((repo / "params.yaml").read_text())
    table = list(csv.DictReader((repo / "results/table1_cifar10.csv").open()))
    ours = [row for row in table if row["source"] == "ours"]
    assert len(ours) == len(params["pipeline"]["cnn_methods"]) == 3, ours
    for run in (repo / "runs/train_cifar10").iterdir():
        metrics = read_json(run / "metrics.json")
        assert metrics["test_error"] < learning.error_threshold(metrics["test_images"]), (run, metrics)
    for dataset in ("ptb", "wikitext2"):
        cfg = params[f"train_{dataset}"]
        baseline = learning.lm_baseline(repo / "data" / dataset, cfg["train_tokens"], cfg["eval_tokens"],
                                         cfg["test_batch_size"])
        for run in (repo / f"runs/train_{dataset}").iterdir():
            assert read_json(run / "metrics.json")["test_ppl"] < baseline["unigram_ppl"], run


def test_dvc_metrics_show_one_headline_file_with_readable_keys(repo, env, reproduced):
    """`dvc metrics show --json` (what `dvc exp show/diff` read): one file, keys a reader understands."""
    import json

    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env).stdout)
    (workspace,) = shown.values()
    assert list(workspace["data"]) == ["results/metrics.json"]
    metrics = workspace["data"]["results/metrics.json"]["data"]
    assert set(metrics) == {"cifar10", "imagenet", "ptb", "wikitext2", "search_cnn", "search_rnn"}
    assert set(metrics["cifar10"]) == {"first", "second", "random"}
    assert {"test_error_mean", "test_error_std", "runs"} <= set(metrics["cifar10"]["second"])
    assert {"valid_ppl", "test_ppl"} <= set(metrics["ptb"]["second"]) and set(metrics["wikitext2"]) == {"second"}
    assert {"top1_error", "top5_error"} <= set(metrics["imagenet"]["second"])
    assert {"valid_acc_mean", "seeds"} <= set(metrics["search_cnn"]["second"])


def test_leaf_change_reruns_only_that_stage_and_tabulate(repo, env, reproduced):
    set_param(repo, ["train_wikitext2", "epochs"], 1)
    ran = stages_run(run(["dvc", "repro"], repo, env).stdout)
    assert ran == {"train_wikitext2@second", "tabulate"}, ran
    assert read_json(repo / "runs/train_wikitext2/second/metrics.json")["epochs"] == 1


def test_repro_again_is_a_no_op(repo, env, reproduced):
    out = run(["dvc", "repro"], repo, env).stdout
    assert stages_run(out) == set(), out


def test_remote_round_trip(repo, env, reproduced, tmp_path):
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "--default", "local", str(remote)], repo, env)
    run(["dvc", "push"], repo, env)
    for path in ("runs", "data", "results/figures", ".dvc/cache"):
        shutil.rmtree(repo / path)
    run(["dvc", "pull"], repo, env)
    assert (repo / "runs/select_cnn/second/genotype.json").is_file()
    status = run(["dvc", "status"], repo, env).stdout
    assert "up to date" in status, status


def test_killed_stage_resumes_from_its_checkpoint(repo, env, reproduced):
    stage, out_dir = "train_ptb@second", repo / "runs/train_ptb/second"
    before = read_json(out_dir / "metrics.json")
    kill_after_checkpoint(["dvc", "repro", "--force", "--single-item", stage], repo, env)
    proc = run(["dvc", "repro", "--force", "--single-item", stage], repo, env)
    assert "resuming from" in proc.stderr, proc.stderr[-3000:]
    after = read_json(out_dir / "metrics.json")
    # deterministic CPU run: the resumed stage ends exactly where the uninterrupted one did
    assert {k: after[k] for k in ("valid_ppl", "test_ppl")} == {k: before[k] for k in ("valid_ppl", "test_ppl")}
