"""``manifest.json``: what a dataset folder holds, where it came from, and whether it is the full
official dataset. Written last by `darts data`, it is the folder's "complete" marker; DVC tracks it,
and runs record its summary (``dataset``, ``subset``, counts) in meta.json and their checkpoint keys.

Layout::

    {"format": 1, "dataset": "cifar10", "full": false,
     "source": {"kind": "mirror" | "download" | "in_place", ...},
     "splits": {"train": 5000, "test": 1000}, "official_splits": {...},
     "classes": 10, "class_names": [...], "class_counts": {"train": [...], ...}   (images)
     "vocab_size": 10000, "lines": {...}                                        (text)
     "root": "/abs/path", "file_count": 210, "listing_sha256": "..."            (ImageNet, in place)
     "files": [{"path": ..., "size": ..., "sha256": ..., "official": true}, ...]}

Nothing in it depends on when or how often it was written, so an unchanged dataset keeps an
unchanged manifest (and DVC does not rerun what depends on it).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from darts.data import registry
from darts.data.formats import DESCRIBE
from darts.errors import DartsError
from darts.io import read_json, write_json

log = logging.getLogger(__name__)

FILENAME = "manifest.json"
FORMAT = 1
_COUNT_KEYS = ("splits", "classes", "vocab_size")


def path(folder: str | Path) -> Path:
    return Path(folder) / FILENAME


def write(folder: str | Path, manifest: dict[str, Any]) -> None:
    write_json(path(folder), manifest)


def read(folder: str | Path) -> dict[str, Any]:
    file = path(folder)
    if not file.exists():
        raise DartsError(f"{file}: not found; run `darts data <dataset> --out {folder}` first")
    manifest = read_json(file)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "dataset" not in manifest:
        raise DartsError(f"{file}: not a darts data manifest (format {FORMAT})")
    return manifest


def digest(manifest: dict[str, Any]) -> str:
    """A hash of the data itself (files, counts, listing), not of where it was copied from."""
    content = {k: v for k, v in manifest.items() if k not in ("source", "root")}
    blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def summarize(manifest: dict[str, Any]) -> dict[str, Any]:
    """The short form runs record: ``dataset``, ``subset``, the counts, and the data's digest."""
    summary: dict[str, Any] = {"dataset": manifest["dataset"], "subset": not manifest["full"]}
    summary.update({k: manifest[k] for k in _COUNT_KEYS if k in manifest})
    summary["digest"] = digest(manifest)
    return summary


def summary(folder: str | Path) -> dict[str, Any]:
    return summarize(read(folder))


def folder_summary(dataset: str, folder: str | Path) -> dict[str, Any]:
    """The summary from the folder's manifest, or, without one (e.g. a mirror folder used directly),
    from ``describe(folder)``: counts only, marked ``verified: false``."""
    if path(folder).exists():
        return summary(folder)
    log.warning("%s has no %s (not installed by `darts data`): describing its files unverified", folder, FILENAME)
    return described_summary(dataset, DESCRIBE[dataset](Path(folder)))


def described_summary(dataset: str, counts: dict[str, Any]) -> dict[str, Any]:
    """A summary from counts alone: "full" when they equal the official ones (no checksums seen)."""
    spec = registry.get(dataset)
    full = counts["splits"] == dict(spec.splits) and counts.get("classes") == spec.classes \
        and counts.get("vocab_size") == spec.vocab_size
    out = summarize({"format": FORMAT, "dataset": dataset, "full": full, **counts})
    out["verified"] = False
    return out
