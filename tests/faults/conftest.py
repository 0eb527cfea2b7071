"""Shared fixtures of the fault suite (``pytest tests/faults``; see README.md here).

* ``smoke_params``: params.yaml with its checkpoint and data folders moved under the test's tmp
  folder and the data mirror set: ``--params <it> --scale smoke`` runs any command in isolation.
* ``darts_cli``: run ``darts ARGS`` as a real process (one torch thread), returning the finished
  process; ``clean_error`` asserts the one-line error a user must get (no traceback, names things).
* ``tmpfs``: a real, tiny tmpfs (disk full) or a read-only mount: tests run as root, which ignores
  chmod, so only a real mount injects these faults. Skipped, with the reason, where mounting is not
  permitted; always unmounted by the fixture's finalizer.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[2]
SRC_MIRROR = Path(os.environ.get("DARTS_DATA_MIRROR") or REPO.parent / "shared" / "datasets")

# The smallest RNN search that still writes every output and a checkpoint (about 5 s of CPU).
TINY_RNN_SEARCH = ["--set", "search_rnn.epochs=1", "--set", "search_rnn.train_tokens=600",
                   "--set", "search_rnn.eval_tokens=300"]


def _set_line(text: str, key: str, value: str) -> str:
    """Replace the value of the top-level section line ``  key: ...`` (its first occurrence)."""
    new, n = re.subn(rf"(?m)^(  {key}:)[^\n#]*(#.*)?$", rf"\g<1> {value}", text, count=1)
    assert n == 1, f"params.yaml has no '  {key}:' line"
    return new


@pytest.fixture
def smoke_params(tmp_path: Path) -> Path:
    """params.yaml with runtime.checkpoint_dir = <tmp>/ckpt, data.root = <tmp>/data, data.mirror =
    the shared mirror and a 5 s download timeout. Use with ``--scale smoke``."""
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    text = _set_line(text, "checkpoint_dir", str(tmp_path / "ckpt"))
    text = _set_line(text, "root", str(tmp_path / "data"))
    text = _set_line(text, "mirror", str(SRC_MIRROR))
    text = _set_line(text, "download_timeout", "5")
    path = tmp_path / "params.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def run_darts(args: list[str], cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DARTS_FAULT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "darts", *map(str, args)], cwd=cwd or REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def darts_cli() -> Callable[..., subprocess.CompletedProcess]:
    return run_darts


def clean_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 1) -> str:
    """The command failed with exit ``code`` and one ``darts <cmd>: error: ...`` line holding every
    needle, and no traceback. Returns that line."""
    assert "Traceback" not in proc.stderr, f"a traceback instead of an error:\n{proc.stderr[-3000:]}"
    assert proc.returncode == code, f"exit {proc.returncode}, not {code}\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, f"expected one error line:\n{proc.stderr[-3000:]}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in: {lines[0]}"
    return lines[0]


class Mount:
    """A tmpfs mounted at ``path`` by the ``tmpfs`` fixture."""

    def __init__(self, path: Path):
        self.path = path

    def fill(self) -> None:
        """Leave no free byte: write a filler file until the file system says ENOSPC."""
        with open(self.path / f".filler-{uuid.uuid4().hex[:6]}", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
            except OSError:
                pass

    def read_only(self) -> None:
        _mount(["-o", "remount,ro", str(self.path)])

    def files(self) -> list[str]:
        """Every file under the mount, relative (fillers aside)."""
        return sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*")
                      if p.is_file() and not p.name.startswith(".filler-"))


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Callable[..., Mount]:
    """``tmpfs(name, size="64k", read_only=False)``: a fresh tmpfs at ``tmp_path/name``."""
    mounted: list[Path] = []

    def make(name: str = "mnt", size: str = "64k", read_only: bool = False,
             populate: Callable[[Path], None] | None = None) -> Mount:
        path = tmp_path / name
        path.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (read-only and disk-full faults need a real mount)")
        proc = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)])
        if proc.returncode != 0:
            pytest.skip(f"mounting a tmpfs is not permitted here ({proc.stderr.strip()})")
        mounted.append(path)
        mount = Mount(path)
        if populate is not None:
            populate(path)
        if read_only:
            mount.read_only()
        return mount

    yield make
    for path in reversed(mounted):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
