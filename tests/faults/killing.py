"""Helpers of the kill/resume, corrupt-checkpoint, divergence, concurrency and pipeline groups:
run a `darts` command as a real process, stop it at a named write (darts.io.fault_point), compare
run folders bit for bit (meta.json, cost files and `seconds` fields aside)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from darts import rundir

# darts.io.FAULT_ENV / FAULT_READY_ENV, spelled out so that these tests run (and fail) against a
# darts without the hook too.
FAULT_ENV, FAULT_READY_ENV = "DARTS_FAULT_POINT", "DARTS_FAULT_READY"

REPO = Path(__file__).resolve().parents[2]
SIGKILLED = -9
# What a comparison leaves out: provenance and timing, which differ between any two runs.
UNCOMPARED = {rundir.META, rundir.SEARCH_COST, rundir.TRAIN_COST}


def mirror_root() -> Path:
    env = os.environ.get("DARTS_DATA_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "datasets"


def env(fault: str | None = None, **extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in (FAULT_ENV, FAULT_READY_ENV)}
    out.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    if fault:
        out[FAULT_ENV] = fault
    return out


def darts(args: list[str], cwd: Path, fault: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`darts ARGS` in a process of its own; with ``fault`` (DARTS_FAULT_POINT) it kills itself there."""
    return subprocess.run([sys.executable, "-m", "darts", *args], cwd=cwd, env=env(fault), capture_output=True,
                          text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return proc


def killed(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == SIGKILLED, f"expected SIGKILL at the fault point, got exit {proc.returncode}\n" \
                                         f"{proc.stderr[-4000:]}"
    return proc


def start_stopped(args: list[str], cwd: Path, fault: str, ready: Path, timeout: float = 300) -> subprocess.Popen:
    """`darts ARGS` stopped (asleep) at ``fault`` (``name[:count]``); returns once it is there."""
    proc = subprocess.Popen([sys.executable, "-m", "darts", *args], cwd=cwd,
                            env=env(f"{fault}:stop", **{FAULT_READY_ENV: str(ready)}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(ready, proc, timeout)
    return proc


def wait_for(ready: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None:
            raise AssertionError(f"ended (exit {proc.returncode}) before its fault point:\n{proc.stderr.read()[-4000:]}"
                                 if proc.stderr else f"ended (exit {proc.returncode}) before its fault point")
        assert time.monotonic() < deadline, f"no fault point reached after {timeout}s"
        time.sleep(0.05)


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp")) if folder.is_dir() else []


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def checkpoint_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def comparable(folder: Path) -> dict[str, object]:
    """Every result of a run folder, as compared across runs: bytes, except history (rows without
    ``seconds``), metrics.csv (without its ``seconds`` column) and weights (tensors, bit for bit)."""
    out: dict[str, object] = {}
    for path in sorted(folder.iterdir()):
        if path.name in UNCOMPARED:
            continue
        if path.name == rundir.HISTORY:
            out[path.name] = [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                              for line in path.read_text().splitlines()]
        elif path.name == rundir.METRICS_CSV:
            rows = list(csv.DictReader(io.StringIO(path.read_text())))
            out[path.name] = [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
        elif path.suffix == ".pt":
            state = torch.load(path, map_location="cpu", weights_only=True)
            out[path.name] = {k: v.numpy().tobytes() for k, v in state.items()}
        else:
            out[path.name] = path.read_bytes()
    return out


def strict_json(path: Path) -> object:
    """``path`` parsed as standard JSON (a bare NaN/Infinity token fails)."""
    def refuse(token: str):
        raise AssertionError(f"{path}: non-standard JSON token {token}")
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]
    return json.loads(text, parse_constant=refuse)


def load_checkpoint(path: Path) -> dict:
    """A checkpoint's state, verified (darts.checkpoint.read_verified) where darts has digests."""
    try:
        from darts.checkpoint import read_verified
    except ImportError:  # a darts before digests (so the tests can be checked against it)
        return torch.load(path, map_location="cpu", weights_only=True)
    return read_verified(path)
