"""Concurrency: a second run into a busy run folder or checkpoint key fails at once naming the
holder; the ranks of one distributed run share rank 0's folder; a lock left by a killed process
never blocks; a holder on another host, or a holder gone whose child still holds the lock, is
named with how to clear it; without file locks (e.g. Lustre without -o flock) the pid+host record
decides."""

from __future__ import annotations

import errno
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from darts import rundir
from darts.config import load_params
from darts.distributed import World
from darts.errors import DartsError
from darts.run import LOCK_FILE, Run, RunLock
from killing import REPO, darts, mirror_root, names, ok, start_stopped


def train(tmp_path: Path, out: Path, seed: int) -> list[str]:
    return ["train", "cifar10", "--genotype", "DARTS_V2", "--seed", str(seed), "--out", str(out),
            "--data", str(mirror_root() / "cifar10-mini"), "--params", str(REPO / "params.yaml"), "--scale", "smoke",
            "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", "--set", "train_cifar10.epochs=2",
            "--set", "train_cifar10.train_images=64", "--set", "train_cifar10.eval_images=64"]


def test_a_second_run_into_a_busy_folder_or_key_fails_at_once_and_a_killed_holder_never_blocks(tmp_path):
    out = tmp_path / "out"
    first = start_stopped(train(tmp_path, out, 0), tmp_path, "state.pt:1", tmp_path / "ready")
    try:
        started = time.monotonic()
        other_seed = darts(train(tmp_path, out, 1), tmp_path)
        assert other_seed.returncode == 1
        assert f"run folder {out} is in use by another darts run: pid {first.pid} on this host" in other_seed.stderr
        assert "epoch 1/2" not in other_seed.stderr
        same_key = darts(train(tmp_path, tmp_path / "elsewhere", 0), tmp_path)  # the same run into another folder
        assert same_key.returncode == 1 and "checkpoint" in same_key.stderr and "is in use by" in same_key.stderr
        assert time.monotonic() - started < 120
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert (out / LOCK_FILE).exists()  # left by the killed holder: unlocked, so taken over
    ok(darts(train(tmp_path, out, 0), tmp_path))
    assert names(out) == sorted(rundir.TRAIN_FILES)
    assert json.loads((out / rundir.META).read_text())["seed"] == 0


def _hold(path: Path, record: dict) -> subprocess.Popen:
    """Another process holding ``path``'s flock with ``record`` in the file."""
    code = ("import fcntl, os, sys, time\n"
            f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            f"os.write(fd, {json.dumps(record).encode()!r})\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _gone_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def holders():
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_holder_on_another_host_is_named_with_how_to_clear_it(tmp_path, holders):
    holders.append(_hold(tmp_path / LOCK_FILE, {"pid": 4242, "host": "node17", "started": "2024-01-01T00:00:00",
                                                "argv": ["darts", "search", "cnn"]}))
    with pytest.raises(DartsError, match=rf"pid 4242 on host node17.*another machine.*delete {tmp_path / LOCK_FILE}"):
        RunLock(tmp_path, "run folder")


def test_a_holder_gone_on_this_host_whose_child_keeps_the_lock_is_named(tmp_path, holders):
    pid = _gone_pid()
    holders.append(_hold(tmp_path / LOCK_FILE, {"pid": pid, "host": platform.node()}))
    with pytest.raises(DartsError, match=rf"pid {pid} has exited, but a process it started.*fuser"):
        RunLock(tmp_path, "run folder")


def test_a_lock_file_of_a_killed_run_is_taken_over_and_removed_when_done(tmp_path):
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _gone_pid(), "host": platform.node()}))
    lock = RunLock(tmp_path, "run folder")
    assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_FILE).exists()


def test_without_file_locks_the_pid_and_host_record_decides(tmp_path, monkeypatch, holders):
    import fcntl

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    holders.append(sleeper)
    lock_file = tmp_path / LOCK_FILE
    lock_file.write_text(json.dumps({"pid": sleeper.pid, "host": platform.node()}))
    with pytest.raises(DartsError, match=rf"pid {sleeper.pid} on this host.*no file locks"):
        RunLock(tmp_path, "run folder")
    lock_file.write_text(json.dumps({"pid": 1, "host": "node17"}))
    with pytest.raises(DartsError, match="on host node17.*delete"):
        RunLock(tmp_path, "run folder")
    lock_file.write_text(json.dumps({"pid": _gone_pid(), "host": platform.node()}))
    RunLock(tmp_path, "run folder").release()


def test_the_ranks_of_one_distributed_run_share_rank_0s_folder(tmp_path, holders):
    out = tmp_path / "out"
    params = load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}"])
    holders.append(_hold(out / LOCK_FILE, {"pid": 1, "host": platform.node()}))  # rank 0, another process
    run = Run(params, "train_cifar10", "ddp", 0, out, {"model": torch.nn.Linear(1, 1)}, "train", World(1, 2))
    assert run.start_epoch == 0 and names(out) == [LOCK_FILE]  # rank 1 writes nothing
    with pytest.raises(DartsError, match="is in use by another darts run"):
        Run(params, "train_cifar10", "ddp", 0, out, {"model": torch.nn.Linear(1, 1)}, "train", World(0, 1))
