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
from darts.data.fetch import Digest, digest_file, read_sha256sums
from darts.data.formats import DESCRIBE, scan_imagefolder
from darts.data.registry import DatasetSpec, FileSpec
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
    """The summary runs record, of the data as verified now (``verified``): the digest in meta.json
    and in checkpoint keys describes the bytes the run reads."""
    return summarize(verified(dataset, folder))


def described_summary(dataset: str, counts: dict[str, Any]) -> dict[str, Any]:
    """A summary from counts alone: "full" when they equal the official ones (no checksums seen)."""
    spec = registry.get(dataset)
    full = counts["splits"] == dict(spec.splits) and counts.get("classes") == spec.classes \
        and counts.get("vocab_size") == spec.vocab_size
    out = summarize({"format": FORMAT, "dataset": dataset, "full": full, **counts})
    out["verified"] = False
    return out


# ---- building a manifest (the data stage) and checking a folder against it (every stage that reads data) ----

SUMS = "SHA256SUMS"
IMAGE_SAMPLE = 64  # images of an ImageFolder root whose sha256 is checked at every use (every size is checked)


def matches_official(spec: FileSpec, digest: Digest) -> bool:
    """True when every published checksum (and size) of the file matches."""
    if spec.sha256 is None and spec.md5 is None:
        return False
    checks = [(spec.sha256, digest.sha256), (spec.md5, digest.md5), (spec.size, digest.size)]
    return all(want is None or want == got for want, got in checks)


def build(spec: DatasetSpec, counts: dict[str, Any], digests: dict[str, Digest], source: dict[str, Any]
          ) -> dict[str, Any]:
    """The manifest of a copied dataset (CIFAR-10, PTB, WikiText-2) from its counts and file digests."""
    official = all(matches_official(f, digests[f.path]) for f in spec.files)
    full = official and counts["splits"] == dict(spec.splits) and counts.get("classes") == spec.classes \
        and counts.get("vocab_size") == spec.vocab_size
    return {
        "format": FORMAT, "dataset": spec.name, "full": full, "source": source, **counts,
        "official_splits": dict(spec.splits),
        "files": [{"path": f.path, "size": digests[f.path].size, "sha256": digests[f.path].sha256,
                   "official": matches_official(f, digests[f.path])} for f in spec.files],
    }


def check_counts(spec: DatasetSpec, counts: dict[str, Any], origin: str | Path) -> None:
    """Refuse data no stage can use: a split without a single word (PTB, WikiText-2) or image."""
    for split, n in counts["splits"].items():
        words = n - counts.get("lines", {}).get(split, 0)
        if n == 0 or (spec.kind == "text" and words <= 0):
            what = f"{split}.txt" if spec.kind == "text" else f"the {split} split"
            unit = "words" if spec.kind == "text" else "images"
            raise DartsError(f"{Path(origin) / what if spec.kind == 'text' else f'{origin}: {what}'}: "
                             f"empty ({max(words, 0) if spec.kind == 'text' else n} {unit}); "
                             f"a {spec.name} dataset needs {unit} in every split")


_VERIFIED: dict[tuple, dict[str, Any]] = {}  # (dataset, root, stat of every file) -> manifest, per process


def verified(dataset: str, folder: str | Path) -> dict[str, Any]:
    """The manifest of dataset folder ``folder`` with every file checked against it now: the one
    check each stage makes when it opens a dataset (CIFAR-10, PTB, WikiText-2).

    * With ``manifest.json`` (written by `darts data`): every listed file must exist with its size
      and full sha256 (CIFAR-10 180 MB, PTB 6 MB, WikiText-2 13 MB; see RELIABILITY.md for the cost).
    * Without one but with a ``SHA256SUMS`` (a mirror folder used directly): every file of the dataset
      must be listed and match; the manifest is then built as `darts data` would build it.
    * With neither: refused, naming the `darts data` command to run.

    A mismatch is a ``DartsError`` naming the file. Within one process a folder whose files' stat
    (size, mtime, inode) is unchanged is not hashed again.
    """
    spec = registry.get(dataset)
    if spec.kind == "imagefolder":
        return verified_imagefolder(folder)
    folder = Path(folder)
    if not folder.is_dir():
        raise DartsError(f"{folder}: no such {dataset} folder; run `darts data {dataset} --out {folder}` first")
    key = (dataset, str(folder.resolve()), _stat_key(folder, [FILENAME, SUMS, *(f.path for f in spec.files)]))
    if key in _VERIFIED:
        return _VERIFIED[key]
    if path(folder).exists():
        result = _against_manifest(spec, folder)
    elif (folder / SUMS).is_file():
        result = _against_sums(spec, folder)
    else:
        raise DartsError(
            f"{folder}: no {FILENAME} (not installed by `darts data`) and no {SUMS} to verify it against; "
            f"install it with `darts data {dataset} --out DIR --mirror MIRROR` (or without --mirror to "
            f"download) and pass --data DIR")
    _VERIFIED[key] = result
    return result


def _stat_key(folder: Path, names: list[str]) -> tuple:
    out = []
    for name in names:
        try:
            st = (folder / name).stat()
            out.append((name, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((name, None))
    return tuple(out)


def _against_manifest(spec: DatasetSpec, folder: Path) -> dict[str, Any]:
    current = read(folder)
    if current["dataset"] != spec.name:
        raise DartsError(f"{path(folder)}: holds {current['dataset']!r}, not {spec.name!r}")
    try:
        entries = [(e["path"], e["size"], e["sha256"]) for e in current["files"]]
    except (KeyError, TypeError):
        raise DartsError(f"{path(folder)}: no file list; run `darts data {spec.name} --out {folder} --force`") from None
    listed = {p for p, _, _ in entries}
    missing = [f.path for f in spec.files if f.path not in listed]
    if missing:
        raise DartsError(f"{path(folder)}: does not list {', '.join(missing)}")
    for rel, size, sha in entries:
        _check_file(folder / rel, size, sha, str(path(folder)), _redo(spec.name, folder))
    if spec.kind == "text":
        check_counts(spec, current, folder)
    return current


def _check_file(file: Path, size: int | None, sha: str, against: str, redo: str) -> Digest:
    """``file`` must be a file with ``size`` bytes (when given) and this sha256, as ``against`` says."""
    if not file.is_file():
        raise DartsError(f"{file}: {'not a file' if file.exists() else 'missing'}, but listed in {against}; {redo}")
    if size is not None and file.stat().st_size != size:
        raise DartsError(f"{file}: {file.stat().st_size} bytes, not the {size} recorded in {against}: "
                         f"the data changed since it was verified; {redo}")
    try:
        digest = digest_file(file)
    except OSError as exc:
        raise DartsError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    if digest.sha256 != sha:
        raise DartsError(f"{file}: sha256 {digest.sha256[:16]}... differs from the {sha[:16]}... recorded in "
                         f"{against}: the data changed or is corrupted; {redo}")
    return digest


def _redo(dataset: str, folder: Path) -> str:
    return f"restore it, or reinstall with `darts data {dataset} --out {folder} --force`"


def _against_sums(spec: DatasetSpec, folder: Path) -> dict[str, Any]:
    sums_file = folder / SUMS
    sums = read_sha256sums(sums_file)
    digests = {}
    for f in spec.files:
        if f.path not in sums:
            raise DartsError(f"{sums_file}: does not list {f.path}")
        digests[f.path] = _check_file(folder / f.path, None, sums[f.path], str(sums_file),
                                      f"restore it from the original copy of {folder}")
    log.info("%s: no %s; every file verified against its %s", folder, FILENAME, SUMS)
    counts = DESCRIBE[spec.name](folder)
    check_counts(spec, counts, folder)
    return build(spec, counts, digests, {"kind": "sha256sums", "path": str(folder.resolve())})


def verified_imagefolder(root: str | Path, recorded: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ImageFolder root (ImageNet) checked now: the size of every image against the listing
    recorded by `darts data imagenet` (``recorded``, or the one verified earlier in this process), and
    the sha256 of a fixed sample of ``IMAGE_SAMPLE`` images against the recorded hashes or the root's
    ``SHA256SUMS``. A root with neither a recorded manifest nor a ``SHA256SUMS`` is refused."""
    root = Path(root).resolve()
    found = scan_imagefolder(root)
    images = found.pop("images")
    sample = sorted(images, key=lambda r: hashlib.sha256(r.encode()).hexdigest())[:IMAGE_SAMPLE]
    key = ("imagenet", str(root), found["listing_sha256"], _stat_key(root, sample))
    if recorded is None and key in _VERIFIED:
        return _VERIFIED[key]
    if recorded is not None and Path(recorded.get("root", "")) == root:
        if recorded.get("listing_sha256") != found["listing_sha256"]:
            raise DartsError(f"{root}: images added, removed or resized since `darts data imagenet` recorded "
                             f"them; run `darts data imagenet --imagenet-root {root} --force`")
        hashes = {e["path"]: e["sha256"] for e in recorded.get("files", [])}
        against = f"the manifest `darts data imagenet` wrote for {root}"
    elif (root / SUMS).is_file():
        hashes = read_sha256sums(root / SUMS)
        against = str(root / SUMS)
    else:
        raise DartsError(f"{root}: an ImageNet root never verified: no {SUMS} in it and no manifest of "
                         f"`darts data imagenet` for it; run `darts data imagenet --imagenet-root {root}` first")
    unlisted = [rel for rel in images if rel not in hashes] if hashes else []
    if against.endswith(SUMS) and unlisted:
        raise DartsError(f"{root / SUMS}: does not list {unlisted[0]} ({len(unlisted)} images unlisted)")
    for rel in sample:
        if rel in hashes:
            _check_file(root / rel, None, hashes[rel], against,
                        f"restore it, then run `darts data imagenet --imagenet-root {root} --force`")
    result = {"format": FORMAT, "dataset": "imagenet", "full": False, **found}
    spec = registry.get("imagenet")
    result["full"] = found["splits"] == dict(spec.splits) and found["classes"] == spec.classes
    _VERIFIED[key] = result
    return result
