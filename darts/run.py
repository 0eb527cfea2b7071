"""One resumable run: the shape every epoch loop shares (the CNN and RNN searches, CIFAR-10/ImageNet
and language-model retraining).

A loop builds its model and optimizers, opens a ``Run`` (which clears the previous results from
``out``, restores every stateful object and random generator from the checkpoint of the same run
key, if there is one, and rewrites the history that checkpoint holds), trains from
``run.start_epoch``, calls ``end_epoch`` after each epoch and ``finish`` once at the end. Data order
must be a function of (seed, epoch) (see darts.data.loading), so it needs no state.

Only rank 0 of a distributed run writes; every rank calls ``end_epoch`` (the random states of all
ranks are gathered into the checkpoint).

Before it touches anything, rank 0 locks the run folder and the checkpoint key (:class:`RunLock`:
a second run into either fails at once, naming the holder); holding both, it removes the temporary
files a killed run left (``darts.io.stale_temps``) and the previous results. A checkpoint that cannot
be trusted is set aside and the run starts fresh (``darts.checkpoint``); one whose epoch exceeds the
run's epochs is refused. Every number written is finite: a NaN anywhere or an infinite loss is
divergence; an infinite value of a finite loss (a perplexity past ``exp(700)``) is written as
``null``, its loss kept beside it.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import logging
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol

import torch

from darts import rundir, runtime
from darts.checkpoint import Checkpoint
from darts.config import Params, section_dict
from darts.distributed import World, gather_objects
from darts.errors import DartsError
from darts.io import remove_stale_temps, write_error, write_json
from darts.recording import Recorder, device_cost, write_meta

log = logging.getLogger(__name__)

Kind = Literal["search", "train"]
_RESULTS = {"search": rundir.SEARCH_RESULTS, "train": rundir.TRAIN_RESULTS}
_COST = {"search": rundir.SEARCH_COST, "train": rundir.TRAIN_COST}
# The files whose stale temporaries a run removes from its folder (every run folder's documented files).
_OWN_FILES = frozenset({*rundir.SEARCH_FILES, *rundir.TRAIN_FILES, rundir.GENOTYPE})
LOCK_FILE = ".darts.lock"  # in the run folder and the checkpoint folder while a run holds them


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


def nonfinite(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``values`` that are numbers (floats or scalar tensors) but not finite."""
    return {k: float(v) for k, v in values.items()
            if isinstance(v, (float, torch.Tensor)) and not math.isfinite(float(v))}


def divergence(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The signs of divergence among a run's metrics: a NaN anywhere (nested lists and dicts too, e.g.
    the softmax of the alphas), or an infinite loss. An infinite perplexity of a finite loss
    (>= 700 nats, e.g. an early epoch at lr 20) is not one: :func:`finite` writes it as null."""
    bad = {k: v for k, v in nonfinite(metrics).items() if math.isnan(v) or k.endswith("loss")}
    bad |= {k: math.nan for k, v in metrics.items() if isinstance(v, (list, tuple, dict)) and _holds_nan(v)}
    return bad


def finite(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each top-level non-finite number (an overflowed perplexity; never a NaN or a
    loss, :func:`divergence` stops those first) as ``None``: JSON has no infinity."""
    return {k: None if k in nonfinite({k: v}) else v for k, v in values.items()}


def _holds_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return False
    return any(_holds_nan(v) for v in value)


def listed(bad: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v}" for k, v in bad.items())


class Run:
    """Checkpoint (keyed by ``key``), random states, history, outputs of one run in ``out``.

    ``stateful`` (model, optimizers, anything with ``state_dict``/``load_state_dict``) is restored
    from the checkpoint if there is one. ``kind`` names the run's result files (docs/design.md):
    a search writes genotype, alphas, metrics and search cost; a training run metrics, weights and
    train cost. ``meta`` goes into meta.json beside the params of ``section`` and ``runtime``.
    """

    def __init__(self, params: Params, section: str, key: str, seed: int, out: str | Path,
                 stateful: Mapping[str, Stateful], kind: Kind, world: World = World(), **meta: Any):
        self.out, self.kind, self.world, self.stateful = Path(out), kind, world, stateful
        self.section = section
        self.epochs = getattr(params, section).epochs
        self.checkpoint = Checkpoint(params.runtime.checkpoint_dir, section, key)
        self._locks: list[RunLock] = []
        try:
            if world.is_main:  # the ranks of one distributed run share rank 0's locks
                self._locks.append(RunLock(self.out, "run folder"))
                self._locks.append(RunLock(self.checkpoint.dir, "checkpoint"))
                removed = remove_stale_temps(self.out, _OWN_FILES) + \
                    remove_stale_temps(self.checkpoint.dir, {self.checkpoint.path.name})
                if removed:
                    log.info("removed %d temporary file(s) a killed run left: %s", len(removed),
                             ", ".join(str(p) for p in removed))
                for name in (*_RESULTS[kind], rundir.HISTORY, rundir.METRICS_CSV):
                    (self.out / name).unlink(missing_ok=True)  # a stale result must not outlive a rerun that fails
            self.start_epoch, history, self._wall_before = 0, [], 0.0
            state = self.checkpoint.load(set_aside=world.is_main)
            if state is not None and self._restore(state):
                self.start_epoch, history, self._wall_before = state["epoch"], state["history"], state["wall_seconds"]
            self._started = time.monotonic()
            self.recorder = Recorder(self.out, self.epochs, history)
            if world.is_main:
                write_meta(self.out, section_dict(params, "runtime", section), seed=seed, run_key=key, **meta)
                if history:  # the epochs the checkpoint holds, whatever the folder held before
                    self.recorder.write_history()
        except BaseException:
            self.close()
            raise

    def _restore(self, state: dict[str, Any]) -> bool:
        """Load the checkpoint into the stateful objects and the random generators; ``False`` (the
        checkpoint set aside, every object as it was) when it is not a checkpoint of this run."""
        epoch = state.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch > self.epochs:
            raise DartsError(f"{self.checkpoint.path}: records epoch {epoch} of a run of {self.epochs} epochs, so it "
                             f"is not this run's (copied from elsewhere?); move it away or delete it to start fresh")
        if why := self._malformed(state):
            self.checkpoint.set_aside(f"not a checkpoint of this version of the {self.section} run ({why})",
                                      self.world.is_main)
            return False
        before = {name: copy.deepcopy(obj.state_dict()) for name, obj in self.stateful.items()}
        failed = ""
        try:
            for failed, obj in self.stateful.items():
                obj.load_state_dict(state["states"][failed])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
            for name, obj in self.stateful.items():
                obj.load_state_dict(before[name])
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.checkpoint.set_aside(f"its {failed} state does not fit this run ({first})", self.world.is_main)
            return False
        rng = state["rng"]
        if len(rng) == self.world.size:
            runtime.set_rng_state(rng[self.world.rank])
        else:
            log.warning("checkpoint written by %d processes, resumed by %d: fresh random streams",
                        len(rng), self.world.size)
        return True

    def _malformed(self, state: dict[str, Any]) -> str | None:
        """Why ``state`` is not a checkpoint of this run's shape, or ``None``."""
        epoch, history, states = state.get("epoch"), state.get("history"), state.get("states")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
            return f"epoch {epoch!r}"
        if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
            return "its history is not one record per epoch"
        if not isinstance(states, dict) or (missing := [n for n in self.stateful if n not in states]):
            return f"missing the state of {', '.join(missing) if isinstance(states, dict) else 'every object'}"
        if not isinstance(state.get("rng"), list) or not state["rng"]:  # a dict: the searches' earlier format
            return "one random state per process expected"
        if not isinstance(state.get("wall_seconds"), (int, float)):
            return "no wall_seconds"
        return None

    def close(self) -> None:
        """Release the run folder and the checkpoint key (``finish`` does; a failed run's process
        releases them when it exits)."""
        for lock in reversed(self._locks):
            lock.release()
        self._locks = []

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.recorder.history

    def wall_seconds(self) -> float:
        return self._wall_before + time.monotonic() - self._started

    def end_epoch(self, row: dict[str, Any], summary_keys: tuple[str, ...] = ()) -> None:
        """Record the epoch (history.jsonl, metrics.csv, a line with ETA), then checkpoint it.
        A NaN metric or an infinite loss is divergence: the run stops before the epoch is recorded."""
        if bad := divergence(row):
            raise DartsError(f"{self.section} diverged at epoch {row['epoch']}: non-finite {listed(bad)}; "
                             "no checkpoint of this epoch was written (lower the learning rate or check the data)")
        row = finite(row)
        if self.world.is_main:
            self.recorder.log_epoch(row, summary_keys)
        else:
            self.history.append(row)
        rng = gather_objects(runtime.rng_state(), self.world)
        if self.world.is_main:
            self.checkpoint.save({
                "epoch": row["epoch"],
                "states": {name: obj.state_dict() for name, obj in self.stateful.items()},
                "rng": rng,
                "history": self.history,
                "wall_seconds": self.wall_seconds(),
            })

    def finish(self, metrics: dict[str, Any], device: torch.device,
               files: Mapping[str, Callable[[Path], None]] = {}) -> None:
        """Write the results: ``files`` (name -> writer of that path), the cost record, the history,
        and metrics.json last. Every result is written on every path (fresh, resumed, finished)."""
        if bad := divergence(metrics):
            raise DartsError(f"{self.section} diverged: non-finite {listed(bad)} in the final metrics; "
                             "no results were written (lower the learning rate or check the data)")
        metrics = finite(metrics)
        if not self.world.is_main:
            return
        for name, write in files.items():
            write(self.out / name)
        write_json(self.out / _COST[self.kind], device_cost(device, self.wall_seconds()))
        self.recorder.write_history()
        write_json(self.out / rundir.METRICS, metrics)
        self.close()


class RunLock:
    """An exclusive lock on a folder for one run: ``<folder>/.darts.lock``, held with ``flock``.

    The kernel drops an ``flock`` when its process dies, however it dies, so a killed run never
    blocks the next one; the file records pid, host, start time and command line, so a refused run
    can name the holder. Taking a held lock fails at once (``DartsError``). ``release`` removes the
    file (a finished folder holds only its documented files); a file left by a killed process is
    unlocked and simply taken over.

    Network file systems: Linux maps ``flock`` on NFS to POSIX byte-range locks held by the server,
    so it works between hosts; a crashed client's lock lasts until its lease expires (NFSv4: about
    90 s). Where a file system has no locking (``ENOLCK``/``ENOSYS``/``EOPNOTSUPP``, e.g. Lustre
    mounted without ``-o flock``), the record alone decides: a live pid on this host or any pid on
    another host is a holder (delete the file to clear one that is gone); a dead pid on this host is not.
    """

    _held: dict[str, "RunLock"] = {}  # this process's locks: a second Run here takes its folder over

    def __init__(self, folder: Path, what: str):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None
        key = os.path.abspath(self.path)
        if (earlier := RunLock._held.pop(key, None)) is not None:
            earlier._close()  # an abandoned Run of this process (a test's simulated kill)
        self._acquire()
        RunLock._held[key] = self

    def _acquire(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise write_error(self.path, exc) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = _read_record(fd)
                os.close(fd)
                raise DartsError(self._busy(record)) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    os.close(fd)
                    raise write_error(self.path, exc) from exc
                record = _read_record(fd)
                if record and _alive_elsewhere(record):
                    os.close(fd)
                    raise DartsError(self._busy(record) + " (this file system has no file locks: the "
                                     "record decides)") from None
            try:  # the file may have been released and removed between our open and our flock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        record = json.dumps({"pid": os.getpid(), "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                             "argv": sys.argv})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode() + b"\n", 0)

    def _busy(self, record: dict[str, Any] | None) -> str:
        head = f"{self.what} {self.folder} is in use by another darts run"
        if not record:
            return f"{head} (it has not recorded itself yet); wait for it, or choose another --out"
        pid, host = record.get("pid"), record.get("host")
        since = f", since {record['started']}" if record.get("started") else ""
        cmd = " ".join(map(str, record.get("argv") or []))
        if host != platform.node():
            return (f"{head}: pid {pid} on host {host}{since} ({cmd}). A run on another machine sharing this "
                    f"file system: wait for it. If it is gone (a crashed node holds its lock until the file "
                    f"server's lease expires, about 90 s on NFSv4), delete {self.path}")
        if _pid_alive(pid):
            return f"{head}: pid {pid} on this host{since} ({cmd}); wait for it, stop it (kill {pid}), or choose another --out"
        return (f"{head}: pid {pid}{since} has exited, but a process it started (e.g. a data loader worker) "
                f"still holds {self.path}; it is released when that process ends (`fuser -v {self.path}` names it)")

    def release(self) -> None:
        """Remove the lock file and unlock (in that order: a run waiting on this file sees it go)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder now: the lock is dropped below all the same
        self._close()

    def _close(self) -> None:
        RunLock._held.pop(os.path.abspath(self.path), None)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_record(fd: int) -> dict[str, Any] | None:
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive_elsewhere(record: dict[str, Any]) -> bool:
    """Without file locks: whether the recorded holder may still be running (not this process)."""
    if record.get("host") != platform.node():
        return True
    return record.get("pid") != os.getpid() and _pid_alive(record.get("pid"))
