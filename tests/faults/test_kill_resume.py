"""Kill/resume: SIGKILL at each write site of a run (found by the DARTS_FAULT_POINT hook, never by
timing), then a rerun: the folder ends bit-identical to an uninterrupted run's (meta.json, cost
files and `seconds` aside) and holds exactly the documented files, with no temporary file in it or
in the checkpoint folder. Also: every documented file is written when a finished checkpoint is
resumed into an empty folder, and a killed rerun of changed params leaves no earlier result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from darts import rundir
from killing import REPO, checkpoint_dirs, comparable, darts, killed, mirror_root, names, ok, temps


def search_cnn(tmp_path: Path, out: Path) -> list[str]:
    return ["search", "cnn", "--seed", "0", "--order", "first", "--out", str(out),
            "--data", str(mirror_root() / "cifar10-mini"), "--params", str(REPO / "params.yaml"), "--scale", "smoke",
            "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}"]


def train_cifar10(tmp_path: Path, out: Path) -> list[str]:
    return ["train", "cifar10", "--genotype", "DARTS_V2", "--seed", "0", "--out", str(out),
            "--data", str(mirror_root() / "cifar10-mini"), "--params", str(REPO / "params.yaml"), "--scale", "smoke",
            "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", "--set", "train_cifar10.epochs=2",
            "--set", "train_cifar10.train_images=64", "--set", "train_cifar10.eval_images=64"]


def assert_exact(out: Path, ckpt_root: Path, documented: tuple[str, ...]) -> None:
    assert names(out) == sorted(documented), "the folder must hold exactly the documented files"
    for folder in checkpoint_dirs(ckpt_root):
        assert names(folder) == ["state.pt"], f"{folder}: stale temporary or lock file"


# (fault point, where its temporary file is left, what the run had checkpointed before it)
SEARCH_KILLS = [
    ("meta.json", "out", "start: nothing trained"),
    ("state.pt", "ckpt", "inside epoch 1's checkpoint write: history.jsonl is one epoch ahead"),
    ("metrics.csv:2", "out", "epoch 2's history write, epoch 1 checkpointed"),
    ("alphas.json", "out", "first final write, every epoch checkpointed"),
    ("metrics.json", "out", "a finished checkpoint resumed, killed at the last write of all"),
]


def test_search_cnn_killed_at_every_write_site_ends_bit_identical(tmp_path):
    reference, out, ckpt = tmp_path / "reference", tmp_path / "out", tmp_path / "ckpt"
    ok(darts(search_cnn(tmp_path / "ref", reference), tmp_path))
    for fault, where, _ in SEARCH_KILLS:
        killed(darts(search_cnn(tmp_path, out), tmp_path, fault=fault))
        left = temps(out) if where == "out" else [t for d in checkpoint_dirs(ckpt) for t in temps(d)]
        name = fault.split(":")[0]
        assert any(t.startswith(f".{name}.") for t in left), f"killed at {fault}: its temporary file {left}"
        assert not (out / rundir.METRICS).exists(), "metrics.json (written last) marks a finished folder"
    ok(darts(search_cnn(tmp_path, out), tmp_path))
    assert_exact(out, ckpt, rundir.SEARCH_FILES)
    assert comparable(out) == comparable(reference)

    # A finished checkpoint resumed into an empty folder writes every documented file.
    shutil.rmtree(out)
    ok(darts(search_cnn(tmp_path, out), tmp_path))
    assert_exact(out, ckpt, rundir.SEARCH_FILES)
    assert comparable(out) == comparable(reference)


def test_train_cifar10_killed_mid_run_and_in_its_final_writes_ends_bit_identical_without_stale_results(tmp_path):
    reference, out, ckpt = tmp_path / "reference", tmp_path / "out", tmp_path / "ckpt"
    ok(darts(train_cifar10(tmp_path / "ref", reference), tmp_path))
    shutil.copytree(reference, out)  # an earlier run's results (other params) in the folder
    killed(darts([*train_cifar10(tmp_path, out), "--set", "train_cifar10.lr=0.05"], tmp_path, fault="state.pt:2"))
    stale = [n for n in rundir.TRAIN_RESULTS if (out / n).exists()]
    assert not stale, f"a killed rerun with changed params left the earlier run's {stale}"
    for fault in ("state.pt:2", "weights.pt", "metrics.json"):
        killed(darts(train_cifar10(tmp_path, out), tmp_path, fault=fault))
        assert not (out / rundir.METRICS).exists()
    ok(darts(train_cifar10(tmp_path, out), tmp_path))
    assert names(out) == sorted(rundir.TRAIN_FILES)
    assert comparable(out) == comparable(reference)
    key = json.loads((out / rundir.META).read_text())["run_key"]
    assert names(ckpt / "train_cifar10" / key) == ["state.pt"]
