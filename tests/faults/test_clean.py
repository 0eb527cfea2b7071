"""`darts clean`: every changed configuration leaves a checkpoint key behind; the command lists
them, prunes the keys of finished runs (or all but the newest per stage), deletes nothing without
--yes and never a key a running process holds."""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

LOCK_FILE = ".darts.lock"  # darts.run.LOCK_FILE (no torch import here)


def key(root: Path, stage: str, name: str, age: float) -> Path:
    folder = root / stage / name
    folder.mkdir(parents=True)
    (folder / "state.pt").write_bytes(b"x" * 1024)
    stamp = time.time() - age
    os.utime(folder / "state.pt", (stamp, stamp))
    return folder


def finished_run(runs: Path, name: str, run_key: str) -> None:
    folder = runs / "search_rnn" / "first" / name
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"run_key": run_key}))
    (folder / "metrics.json").write_text("{}")


def test_clean_lists_then_prunes_finished_keys(darts_cli, smoke_params, tmp_path):
    ck = tmp_path / "ckpt"
    old, done, newest = key(ck, "search_rnn", "aaaa", 300), key(ck, "search_rnn", "bbbb", 200), \
        key(ck, "search_rnn", "cccc", 100)
    (ck / "downloads").mkdir()
    runs = tmp_path / "runs"
    finished_run(runs, "s0", "bbbb")
    (runs / "search_rnn" / "first" / "s1").mkdir(parents=True)  # unfinished: meta.json, no metrics.json
    (runs / "search_rnn" / "first" / "s1" / "meta.json").write_text(json.dumps({"run_key": "aaaa"}))
    args = ["clean", "--params", smoke_params, "--runs", runs]

    dry = darts_cli(args)
    assert dry.returncode == 0, dry.stderr
    assert "PRUNE search_rnn/bbbb" in dry.stdout and "keep  search_rnn/aaaa" in dry.stdout and "--yes" in dry.stdout
    assert old.exists() and done.exists() and newest.exists()

    assert darts_cli([*args, "--yes"]).returncode == 0
    assert old.exists() and not done.exists() and newest.exists() and (ck / "downloads").exists()


def test_clean_keep_newest_skips_a_held_key(darts_cli, smoke_params, tmp_path):
    ck = tmp_path / "ckpt"
    held, other, newest = key(ck, "train_ptb", "k1", 300), key(ck, "train_ptb", "k2", 200), key(ck, "train_ptb", "k3", 1)
    lock = os.open(held / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a running process holds k1
    try:
        proc = darts_cli(["clean", "--params", smoke_params, "--runs", tmp_path / "runs", "--keep-newest", "--yes"])
    finally:
        os.close(lock)
    assert proc.returncode == 0, proc.stderr
    assert held.exists() and not other.exists() and newest.exists()
    assert "a running process holds it" in proc.stdout
