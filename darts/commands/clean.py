"""List, or prune, the resumable checkpoints under runtime.checkpoint_dir (one folder per stage and run key).

  darts clean                       list every checkpoint key; mark those of finished runs (dry run)
  darts clean --yes                 delete the keys of finished runs
  darts clean --keep-newest --yes   delete all but the newest key of each stage (finished or not)

Every changed configuration (params, seed, genotype, data) gets a new key and leaves the old one
behind. A key is *finished* when a run folder under --runs (default: runs/) holds a meta.json
naming it as its ``run_key`` and that folder's metrics.json (written last) exists: its outputs are
complete, so its checkpoint is only needed to skip a rerun's work. Nothing is deleted without
--yes; a key a running process holds (its .darts.lock is locked) is never deleted. The partial
downloads of `darts data` (``<checkpoint_dir>/downloads``) are not touched.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from darts.config import add_config_args, params_from_args

log = logging.getLogger(__name__)

LOCK_FILE = ".darts.lock"  # darts.run.LOCK_FILE (not imported: torch stays out of this command)
NOT_KEYS = {"downloads"}  # folders under checkpoint_dir that are not stages


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, action="append", default=[],
                        help="a folder of run folders to look for finished runs in (repeatable; default: runs)")
    parser.add_argument("--keep-newest", action="store_true",
                        help="prune all but the newest key of each stage, finished or not")
    parser.add_argument("--yes", action="store_true", help="delete (without it: only list what would go)")
    add_config_args(parser)


@dataclass
class Key:
    stage: str
    path: Path
    bytes: int
    mtime: float
    outputs: list[Path] = field(default_factory=list)  # finished run folders that name this key

    @property
    def finished(self) -> bool:
        return bool(self.outputs)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    root = Path(params.runtime.checkpoint_dir)
    keys = checkpoint_keys(root)
    finished = finished_runs(args.runs or [Path("runs")])
    for key in keys:
        key.outputs = finished.get(key.path.name, [])
    prune = to_prune(keys, args.keep_newest)
    for key in keys:
        mark = "PRUNE" if key in prune else "keep "
        why = f"finished: {key.outputs[0]}" if key.finished else "no finished run found"
        print(f"{mark} {key.stage}/{key.path.name}  {key.bytes / 2**20:8.1f} MiB  {why}")
    total = sum(k.bytes for k in prune)
    if not args.yes:
        print(f"{len(prune)} of {len(keys)} checkpoint key(s) under {root} would be deleted "
              f"({total / 2**20:.1f} MiB); run again with --yes to delete them")
        return 0
    deleted, count = 0, 0
    for key in prune:
        if in_use(key.path):
            print(f"skip  {key.stage}/{key.path.name}: a running process holds it")
            continue
        shutil.rmtree(key.path)
        deleted, count = deleted + key.bytes, count + 1
    print(f"deleted {count} checkpoint key(s) under {root} ({deleted / 2**20:.1f} MiB)")
    return 0


def checkpoint_keys(root: Path) -> list[Key]:
    """Every ``<root>/<stage>/<key>/`` folder, oldest first within a stage."""
    keys = []
    if not root.is_dir():
        return keys
    for stage in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in NOT_KEYS):
        for folder in stage.iterdir():
            if folder.is_dir():
                files = [f for f in folder.rglob("*") if f.is_file()]
                dated = [f for f in files if f.name != LOCK_FILE]  # a lock is touched by every start
                mtime = max((f.stat().st_mtime for f in dated), default=folder.stat().st_mtime)
                keys.append(Key(stage.name, folder, sum(f.stat().st_size for f in files), mtime))
    return sorted(keys, key=lambda k: (k.stage, k.mtime, k.path.name))


def finished_runs(roots: list[Path]) -> dict[str, list[Path]]:
    """run key -> the run folders under ``roots`` that name it in meta.json and hold metrics.json."""
    found: dict[str, list[Path]] = {}
    for root in roots:
        if not root.is_dir():
            log.warning("%s: no such folder (no finished runs looked for there)", root)
            continue
        for meta in root.rglob("meta.json"):
            try:
                key = json.loads(meta.read_text(encoding="utf-8")).get("run_key")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(key, str) and (meta.parent / "metrics.json").is_file():
                found.setdefault(key, []).append(meta.parent)
    return found


def to_prune(keys: list[Key], keep_newest: bool) -> list[Key]:
    if not keep_newest:
        return [k for k in keys if k.finished]
    newest = {}
    for key in keys:  # oldest first: the last one of a stage wins
        newest[key.stage] = key
    return [k for k in keys if newest[k.stage] is not k]


def in_use(folder: Path) -> bool:
    """Whether a process holds the key's lock (darts.run.RunLock: flock on .darts.lock)."""
    lock = folder / LOCK_FILE
    if not lock.exists():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
