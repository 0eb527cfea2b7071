"""The smoke scale's final runs learn: a bug that stopped training from learning
must fail here, not pass unnoticed as chance-level numbers in the smoke tables.

Each final trainer runs once through the `darts` CLI at smoke scale (the tracked params.yaml's
`smoke:` overlay, data copied from the mirror), and its metrics.json is held to a statistical
margin computed independently in tests/learning.py:

* CIFAR-10 (a random cell, as the smoke searches' near-uniform alphas give): test error below
  chance (90 %) by more than three standard errors of the images it scored;
* PTB and WikiText-2: test perplexity below the add-one unigram perplexity of the run's own
  training tokens on the very test tokens the run scored, over the full corpus vocabulary.

Both are comparisons within the run's data, not numbers tuned on one CPU. About a minute on one core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import learning

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def smoke_section(name: str) -> dict:
    """A section of the tracked params.yaml at smoke scale (main tree + `smoke:` overlay), read with
    plain YAML: the caps this test scores the runs against."""
    tree = yaml.safe_load(PARAMS.read_text(encoding="utf-8"))
    return {**tree[name], **tree["smoke"].get(name, {})}


def darts(*args: str, cwd: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([str(BIN / "darts"), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"darts {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, mirror: Path) -> Path:
    """A scratch folder with cifar10, ptb and wikitext2 copied from the mirror by `darts data`."""
    root = tmp_path_factory.mktemp("smoke-learning")
    for name in ("cifar10", "ptb", "wikitext2"):
        darts("data", name, "--out", f"data/{name}", "--mirror", str(mirror), "--params", str(PARAMS), cwd=root)
    return root


def train(workspace: Path, dataset: str, genotype: str) -> dict:
    out = workspace / "runs" / dataset
    darts("train", dataset, "--genotype", genotype, "--seed", "0", "--out", str(out), "--data", f"data/{dataset}",
          "--params", str(PARAMS), "--scale", "smoke", cwd=workspace)
    return json.loads((out / "metrics.json").read_text())


def test_cifar10_final_run_beats_chance_by_three_standard_errors(workspace: Path):
    darts("genotype", "random", "--space", "cnn", "--seed", "0", "--out", "random-cell.json", cwd=workspace)
    metrics = train(workspace, "cifar10", "random-cell.json")
    cfg = smoke_section("train_cifar10")
    n = metrics["test_images"]
    assert n == cfg["eval_images"], f"scored {n} test images, the smoke cap is {cfg['eval_images']}"
    assert metrics["classes"] == 10
    error, threshold = metrics["test_error"], learning.error_threshold(n)
    sigmas = learning.error_sigmas_below_chance(error, n)
    print(f"cifar10: test error {error:.2f}% on {n} images; threshold {threshold:.2f}% "
          f"(chance - 3 SE); {sigmas:.1f} SE below chance")
    assert error < threshold, (f"CIFAR-10 test error {error:.2f}% on {n} images is not below chance by 3 standard "
                               f"errors ({threshold:.2f}%): training did not learn")


@pytest.mark.parametrize("dataset", ["ptb", "wikitext2"])
def test_lm_final_run_beats_add_one_unigram(workspace: Path, dataset: str):
    metrics = train(workspace, dataset, "DARTS_V2")
    cfg = smoke_section(f"train_{dataset}")
    baseline = learning.lm_baseline(workspace / "data" / dataset, cfg["train_tokens"], cfg["eval_tokens"],
                                     cfg["test_batch_size"])
    # The run saw the streams this baseline counts: same caps, same vocabulary.
    assert metrics["train_tokens"] == baseline["train_tokens"]
    assert metrics["test_tokens"] == cfg["eval_tokens"]
    assert metrics["vocab_size"] == baseline["vocab_size"]
    ppl, unigram = metrics["test_ppl"], baseline["unigram_ppl"]
    print(f"{dataset}: test perplexity {ppl:.1f} vs add-one unigram {unigram:.1f} on the same "
          f"{baseline['scored_tokens']} tokens ({100 * (1 - ppl / unigram):.0f}% below)")
    assert ppl < unigram, (f"{dataset} test perplexity {ppl:.1f} is not below the add-one unigram's {unigram:.1f} "
                           f"({baseline['train_tokens']} training tokens, {baseline['scored_tokens']} test tokens): "
                           "training did not learn")
