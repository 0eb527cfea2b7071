"""Shared by the pipeline tests: a workspace of the repository at one scale, and running its tools."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool_env(mirror: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               DARTS_DATA_MIRROR=str(mirror), **extra)
    return env


def fresh_clone(dest: Path, scale: str = "smoke") -> Path:
    """A workspace of the working tree at ``scale``, as `make smoke` makes one (`darts workspace`)."""
    subprocess.run([str(BIN / "darts"), "workspace", str(dest), "--scale", scale, "--project", str(REPO)],
                   check=True, capture_output=True)
    return dest


def set_param(repo: Path, path: list[str], value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    node = params
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run(cmd: list[str], repo: Path, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}")
    return proc


def stages_run(dvc_output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", dvc_output))


def kill_after_checkpoint(cmd: list[str], repo: Path, env: dict[str, str], timeout: float = 600) -> None:
    """Start ``cmd``; once a first checkpoint exists under .darts/checkpoints, kill its process group."""
    ckpt_root = repo / ".darts" / "checkpoints"
    shutil.rmtree(ckpt_root, ignore_errors=True)
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not any(ckpt_root.rglob("state.pt")):
            if proc.poll() is not None:
                raise AssertionError(f"{' '.join(cmd)} ended (code {proc.returncode}) before writing a checkpoint")
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint under {ckpt_root} after {timeout}s")
            time.sleep(0.05)
        assert proc.poll() is None, "the stage finished before it could be killed mid-run"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def free_port_pair() -> int:
    """Two consecutive free local ports (a local SLURM's slurmctld and slurmd)."""
    while True:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
