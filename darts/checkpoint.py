"""Resumable state, kept outside every engine's outputs and keyed by what determines the run.

A run's key is a hash of its merged params section, seed, order, data manifest, genotype and so on
(see ``darts.config.config_hash``): rerunning after a kill resumes, rerunning after any change to
the run's inputs starts fresh. Checkpoints are written atomically (a kill mid-write keeps the
previous one) and synced to disk before the rename (a power loss keeps one of the two).

The file is a one-line header with the SHA-256 and size of what follows, then ``torch.save``'s
bytes: a checkpoint that is empty, truncated, altered by one bit, of another format or another
program is recognised before anything in it is unpickled, and the unpickling itself is
``torch.load(weights_only=True)`` (tensors and plain containers; no code runs). ``load`` sets such
a file aside (``state.pt.corrupt-<time>``, kept for inspection), says so in a WARNING naming both
paths, and the run starts fresh.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import torch

from darts.io import atomic_path, write_error

log = logging.getLogger(__name__)

MAGIC = b"DARTS-CHECKPOINT 1"
_HEADER = re.compile(rb"^DARTS-CHECKPOINT 1 sha256=(?P<digest>[0-9a-f]{64}) size=(?P<size>\d+)\n")
_HEADER_MAX = 128


class BadCheckpoint(Exception):
    """A checkpoint that cannot be trusted: why, in words."""


class Checkpoint:
    def __init__(self, root: str | Path, stage: str, key: str):
        self.dir = Path(root) / stage / key
        self.path = self.dir / "state.pt"
        self.key = key

    def load(self, set_aside: bool = True) -> dict[str, Any] | None:
        """The verified state, or ``None`` when there is none or it cannot be trusted (then it is
        set aside unless ``set_aside`` is false: the ranks of a distributed run other than 0)."""
        if not self.path.exists():
            return None
        try:
            state = read_verified(self.path)
        except BadCheckpoint as exc:
            self.set_aside(str(exc), set_aside)
            return None
        log.info("resuming from %s (epoch %s done)", self.path, state.get("epoch"))
        return state

    def set_aside(self, why: str, rename: bool = True) -> Path | None:
        """Move the checkpoint out of the way (kept beside it for inspection); the run starts fresh."""
        if not rename:
            log.warning("checkpoint %s cannot be used (%s); this process starts fresh", self.path, why)
            return None
        stamp = f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}"
        aside, n = self.path.with_name(stamp), 1
        while aside.exists():  # never over an earlier one
            aside, n = self.path.with_name(f"{stamp}-{n}"), n + 1
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            raise write_error(aside, exc) from exc
        log.warning("checkpoint %s cannot be used: %s. Set aside as %s (inspect it, then delete it); "
                    "this run starts fresh from epoch 0", self.path, why, aside)
        return aside

    def save(self, state: dict[str, Any]) -> None:
        write_verified(state, self.path)


def write_verified(obj: Any, path: str | Path) -> None:
    """``torch.save`` behind a header with its digest and size; atomic, synced to disk."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    payload = buf.getbuffer()
    header = MAGIC + f" sha256={hashlib.sha256(payload).hexdigest()} size={len(payload)}\n".encode()
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())


def read_verified(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by :func:`write_verified`; ``BadCheckpoint`` saying why it is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise BadCheckpoint(f"unreadable ({exc.strerror or exc})") from None
    if not data:
        raise BadCheckpoint("empty file (0 bytes)")
    header = _HEADER.match(data[:_HEADER_MAX])
    if header is None:
        if data.startswith(MAGIC):
            raise BadCheckpoint("its header is damaged")
        kind = "a torch file of an earlier darts version (no digest)" if data[:2] == b"PK" else "not a darts checkpoint"
        raise BadCheckpoint(f"{kind}: it cannot be verified")
    payload = memoryview(data)[header.end():]
    size = int(header["size"])
    if len(payload) != size:
        raise BadCheckpoint(f"truncated or extended: {len(payload)} bytes after the header, {size} recorded")
    if hashlib.sha256(payload).hexdigest() != header["digest"].decode():
        raise BadCheckpoint("its SHA-256 does not match the recorded one: the file was altered or damaged")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - weights_only refuses any pickled code; the cause is what matters
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadCheckpoint(f"refused by the safe loader ({first})") from None
    if not isinstance(state, dict):
        raise BadCheckpoint(f"holds a {type(state).__name__}, not a checkpoint's dict")
    return state


def save_tensors(obj: Any, path: str | Path) -> None:
    """``torch.save`` written atomically (weights.pt)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
