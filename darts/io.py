"""Atomic file output: a killed job never leaves a half-written result behind."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from darts.errors import DartsError, os_cause

_UMASK = os.umask(0)
os.umask(_UMASK)


# Errors of the file system being written to (never of a file being read inside the block).
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
# What torch.save says when the disk fills under it ("unexpected pos 64 vs 0", "file write failed").
_TORCH_WRITE_FAILURES = ("unexpected pos", "file write failed", "PytorchStreamWriter")


class WriteError(DartsError):
    """An output could not be written: the target and the cause (no space, permission, not a directory)."""


def write_error(path: Path, exc: BaseException) -> WriteError:
    """A WriteError naming ``path`` for an OSError (or torch's disk-full RuntimeError) met writing it."""
    if isinstance(exc, OSError):
        cause = os_cause(exc)
    elif _disk_full(path.parent):
        cause = os_cause(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    else:
        cause = f"write failed ({str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__})"
    return WriteError(f"cannot write {path}: {cause}; nothing was written there")


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return False
    return stat.f_bavail * stat.f_frsize < margin


def _ours(exc: OSError, path: Path, tmp: Path | None) -> bool:
    """Whether an OSError raised inside the block concerns the output (not some other file it read)."""
    return exc.errno in _WRITE_ERRNOS or exc.filename is None or str(exc.filename) in (str(path), str(tmp))


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if the block succeeds.

    The temporary file is removed on every failure; a file-system failure (full disk, read-only or
    unwritable folder, a file where a folder should be) raises ``WriteError`` naming ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from exc
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        fault_point(path.name)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, path)
    except OSError as exc:
        if not _ours(exc, path, tmp_path):
            raise
        raise write_error(path, exc) from exc
    except RuntimeError as exc:
        if not any(s in str(exc) for s in _TORCH_WRITE_FAILURES):
            raise
        raise write_error(path, exc) from exc
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: mkstemp failed there already, or the temp is gone


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    """JSON as the standard defines it: a NaN or infinity is refused (``DartsError`` naming ``path``),
    never written as the bare ``NaN``/``Infinity`` tokens other readers reject."""
    write_text(path, _dumps(path, obj, indent=2, sort_keys=False) + "\n")


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    write_text(path, "".join(_dumps(path, r) + "\n" for r in rows))


def _dumps(path: str | Path, obj: Any, **kw: Any) -> str:
    try:
        return json.dumps(obj, default=str, allow_nan=False, **kw)
    except ValueError as exc:
        raise DartsError(f"cannot write {path}: a value is not a finite number ({exc}); "
                         "JSON has no NaN or infinity, and nothing was written there") from None


# Temporary files of atomic_path: ".<target>.<8 random characters>.tmp" (tempfile.mkstemp's names).
_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")


def stale_temps(folder: str | Path, targets: set[str] | frozenset[str] | tuple[str, ...]) -> list[Path]:
    """The temporary files a killed writer of one of ``targets`` left in ``folder`` (the ``finally``
    that removes them does not run under SIGKILL)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if (m := _TEMP.match(p.name)) and m["target"] in targets and p.is_file())


def remove_stale_temps(folder: str | Path, targets: set[str] | frozenset[str] | tuple[str, ...]) -> list[Path]:
    """Remove :func:`stale_temps`; only a run that holds its folder's lock may call this (a live
    writer's temp would go otherwise). Returns what it removed."""
    removed = []
    for tmp in stale_temps(folder, targets):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise write_error(tmp, exc) from exc
    return removed


# Fault injection for the tests (tests/faults): DARTS_FAULT_POINT=<name>[:<count>[:<action>]] stops
# the process at the <count>-th (default 1st) time it reaches the point <name>: the file name of an
# atomic write (``metrics.json``, ``state.pt``, ...), reached after the temporary file is written
# and before it is renamed over the target. <action> ``kill`` (default): SIGKILL itself; ``stop``:
# write its pid to $DARTS_FAULT_READY (if set) and sleep until the test kills it (e.g. a whole
# `dvc repro` process group). Unset, a fault point costs one environment lookup.
FAULT_ENV = "DARTS_FAULT_POINT"
FAULT_READY_ENV = "DARTS_FAULT_READY"
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, rest = spec.partition(":")
    if target != name:
        return
    count, _, action = rest.partition(":")
    _fault_hits[name] = hits = _fault_hits.get(name, 0) + 1
    if hits != int(count or 1):
        return
    if action == "stop":
        if ready := os.environ.get(FAULT_READY_ENV):
            Path(ready).write_text(f"{os.getpid()}\n")
        while True:
            time.sleep(3600)
    os.kill(os.getpid(), signal.SIGKILL)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DartsError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DartsError(f"{path}: not valid JSON: {exc}") from None


def read_jsonl(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
