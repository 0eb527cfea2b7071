"""The data stage: put one dataset into its folder, verified, and write its manifest last.

CIFAR-10, PTB and WikiText-2 are copied from a mirror (a folder laid out like shared/datasets/,
each dataset folder with a ``SHA256SUMS``) or downloaded from the registry's sources, tried in
order. Files are staged in ``<out>/.incomplete/`` and moved into place only when all of them have
verified; the manifest comes after them, so a folder without one is never taken as complete, and
an interrupted run is simply redone. ImageNet is referenced in place: its manifest records the
root, not a copy.

Verification has two steps. A mirror's own ``SHA256SUMS`` checks integrity (a mismatch is an
error naming the file); the published checksums and the official counts then decide whether the
data is the full official dataset or a subset, which the manifest records (``full``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

from tqdm import tqdm

from darts.data import manifest, registry
from darts.data.fetch import (ChecksumError, Digest, DownloadError, digest_file, download, iter_members,
                              read_sha256sums, verified_copy)
from darts.data.formats import DESCRIBE, describe_imagefolder, scan_imagefolder
from darts.data.manifest import matches_official  # noqa: F401  (re-exported)
from darts.data.registry import DatasetSpec, FileSpec, Source
from darts.errors import DartsError

log = logging.getLogger(__name__)

STAGING = ".incomplete"


def prepare(name: str, out: str | Path, *, mirror: str | Path | None = None,
            imagenet_root: str | Path | None = None, cache_dir: str | Path = ".darts/checkpoints/downloads",
            timeout: float = 60.0, progress: bool = True, force: bool = False,
            sources: Iterable[Source] | None = None) -> dict[str, Any]:
    """Install dataset ``name`` into ``out`` (or reference ImageNet in place); return its manifest.

    An intact earlier install is kept unless ``force``. ``sources`` replaces the registry's URL list
    (tests serve the files from 127.0.0.1); ``cache_dir`` keeps partial downloads for resuming.
    """
    spec = registry.get(name)
    out = Path(out)
    if not force and (current := intact_manifest(out)) is not None:
        log.info("%s: %s is complete and intact", name, manifest.path(out))
        return current
    manifest.path(out).unlink(missing_ok=True)
    if spec.kind == "imagefolder":
        result = reference_imagefolder(spec, _imagefolder_root(spec, imagenet_root, mirror), progress)
    else:
        result = install(spec, out, mirror_folder(spec, mirror), list(spec.sources if sources is None else sources),
                         Path(cache_dir), timeout, progress)
    out.mkdir(parents=True, exist_ok=True)
    manifest.write(out, result)
    return result


def intact_manifest(out: Path) -> dict[str, Any] | None:
    """The folder's manifest if the data still matches it (sizes and sha256, or the listing of an
    in-place root); None if there is none or anything changed."""
    if not manifest.path(out).exists():
        return None
    try:
        current = manifest.read(out)
        if current["source"]["kind"] == "in_place":
            if describe_imagefolder(current["root"])["listing_sha256"] != current["listing_sha256"]:
                raise DartsError(f"{current['root']}: images changed since the manifest was written")
            return current
        for entry in current["files"]:
            file = out / entry["path"]
            if not file.is_file() or file.stat().st_size != entry["size"] or digest_file(file).sha256 != entry["sha256"]:
                raise DartsError(f"{file}: missing or changed since the manifest was written")
    except (DartsError, KeyError, TypeError) as exc:
        log.warning("%s: reinstalling (%s)", out, exc)
        return None
    return current


def mirror_folder(spec: DatasetSpec, mirror: str | Path | None) -> Path | None:
    """The mirror's folder for ``spec`` (``<mirror>/<name>/`` or a known alternative), if any."""
    if mirror is None:
        return None
    root = Path(mirror)
    if not root.is_dir():
        raise DartsError(f"mirror {root}: {'not a folder' if root.exists() else 'no such folder'}")
    for name in spec.mirror_folders:
        entry = root / name
        if entry.is_dir():
            return entry
        if entry.exists() or entry.is_symlink():  # a file, a broken link: the mirror is unusable, say so
            raise DartsError(f"mirror {root}: {entry} is not a folder (a mirror holds {spec.name} as "
                             f"{' or '.join(f'{n}/' for n in spec.mirror_folders)} with a SHA256SUMS)")
    log.warning("mirror %s has none of %s: downloading %s instead", root,
                ", ".join(f"{n}/" for n in spec.mirror_folders), spec.name)
    return None


def install(spec: DatasetSpec, out: Path, folder: Path | None, sources: list[Source], cache_dir: Path,
            timeout: float, progress: bool) -> dict[str, Any]:
    """Copy (from ``folder``) or download every file into staging, verify, count, move into place."""
    staging = out / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if folder is not None:
            digests = copy_from_mirror(spec, folder, staging, progress)
            source: dict[str, Any] = {"kind": "mirror", "path": str(folder.resolve())}
        else:
            digests, urls = download_all(spec, staging, sources, cache_dir, timeout, progress)
            source = {"kind": "download", "urls": urls}
        counts = DESCRIBE[spec.name](staging)
        manifest.check_counts(spec, counts, folder if folder is not None else f"the download of {spec.name}")
        for f in spec.files:
            (out / f.path).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / f.path, out / f.path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest.build(spec, counts, digests, source)


def copy_from_mirror(spec: DatasetSpec, folder: Path, staging: Path, progress: bool) -> dict[str, Digest]:
    """Copy the dataset's files from a mirror folder, each checked against its ``SHA256SUMS`` line."""
    sums_file = folder / "SHA256SUMS"
    sums = read_sha256sums(sums_file)
    digests = {}
    for f in spec.files:
        src = folder / f.path
        listed = sums.get(f.path)
        if listed is None:
            raise DartsError(f"{sums_file}: does not list {f.path}")
        if not src.exists() or src.is_dir():
            raise DartsError(f"{src}: {'a directory, not a file' if src.exists() else 'not found'} "
                             f"(listed in {sums_file})")
        with open(src, "rb") as stream:
            digests[f.path] = verified_copy(stream, staging / f.path, _listed_check(src, listed),
                                            total=src.stat().st_size or None, progress=progress)
    return digests


def _listed_check(src: Path, listed: str) -> Callable[[Digest], None]:
    def check(digest: Digest) -> None:
        if digest.sha256 != listed:
            raise ChecksumError(f"{src}: sha256 {digest.sha256} differs from its SHA256SUMS entry {listed}: "
                                f"the mirror's copy is corrupted")
    return check


def download_all(spec: DatasetSpec, staging: Path, sources: list[Source], cache_dir: Path, timeout: float,
                 progress: bool) -> tuple[dict[str, Digest], list[str]]:
    """Try the sources in order until every file is there; each file must match its published checksum."""
    missing = [f.path for f in spec.files]
    digests: dict[str, Digest] = {}
    used, failures = [], []
    for source in sources:
        wanted = [p for p in missing if p in source.provides]
        if not wanted:
            continue
        try:
            got = fetch_source(spec, source, wanted, staging, cache_dir / spec.name, timeout, progress)
        except (DownloadError, ChecksumError) as exc:
            log.warning("%s", exc)
            failures.append(str(exc))
            continue
        digests.update(got)
        used.append(source.url)
        missing = [p for p in missing if p not in got]
        if not missing:
            return digests, used
    raise DartsError(
        f"{spec.name}: could not get {', '.join(missing)} from any known source:\n"
        + "".join(f"  {failure}\n" for failure in failures)
        + "Without internet access, copy from a mirror instead: --mirror DIR or DARTS_DATA_MIRROR "
          "(a folder laid out like shared/datasets/). A partial download resumes on the next run."
    )


def fetch_source(spec: DatasetSpec, source: Source, wanted: list[str], staging: Path, cache_dir: Path,
                 timeout: float, progress: bool) -> dict[str, Digest]:
    """Download one source (resuming), put the wanted files into staging, verify them.

    Every download is checked against a published checksum: the archive's own when the registry
    has one (then each member's official status is recorded, not enforced), else each file's.
    """
    cached = download(source.url, cache_dir / _cache_name(source.url), md5=source.md5, timeout=timeout,
                      progress=progress)

    def check(target: str, where: str) -> Callable[[Digest], None]:
        return _accept if source.md5 is not None else _official_check(spec.file(target), where)

    got: dict[str, Digest] = {}
    try:
        if source.archive == "file":
            (target,) = wanted
            with open(cached, "rb") as stream:
                got[target] = verified_copy(stream, staging / target, check(target, source.url),
                                            total=cached.stat().st_size, progress=progress)
        else:
            members = {source.provides[p]: p for p in wanted}
            for member, stream in iter_members(cached, source.archive, set(members)):
                target = members[member]
                got[target] = verified_copy(stream, staging / target, check(target, f"{source.url} ({member})"),
                                            progress=progress)
            absent = [m for m, p in members.items() if p not in got]
            if absent:
                raise ChecksumError(f"{source.url}: the archive has no {', '.join(absent)}")
    except ChecksumError:
        cached.unlink(missing_ok=True)  # a wrong download is not kept, the next run fetches it again
        raise
    cached.unlink()
    return got


def _accept(digest: Digest) -> None:
    """The archive's published checksum already vouched for its members."""


def _official_check(spec: FileSpec, where: str) -> Callable[[Digest], None]:
    def check(digest: Digest) -> None:
        for kind, want, got in (("sha256", spec.sha256, digest.sha256), ("md5", spec.md5, digest.md5)):
            if want is not None and want != got:
                raise ChecksumError(f"{where}: {spec.path} has {kind} {got}, not the published {want}")
    return check


def _cache_name(url: str) -> str:
    """A file name unique to the URL (two hosts may both serve a ``train.txt``)."""
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{Path(urlparse(url).path).name or 'download'}"


def _imagefolder_root(spec: DatasetSpec, explicit: str | Path | None, mirror: str | Path | None) -> Path:
    if explicit is not None:
        return Path(explicit)
    folder = mirror_folder(spec, mirror)
    if folder is None:
        raise DartsError(f"no ImageNet data: {registry.IMAGENET_HELP}")
    return folder


def reference_imagefolder(spec: DatasetSpec, root: Path, progress: bool) -> dict[str, Any]:
    """A manifest for an ImageFolder root referenced in place: counts and a listing hash; with a
    ``SHA256SUMS`` in the root (a mirror), every image is also checked against it."""
    root = root.resolve()
    found = scan_imagefolder(root)
    images = found.pop("images")
    files = []
    sums_file = root / "SHA256SUMS"
    if sums_file.exists():
        sums = read_sha256sums(sums_file)
        for rel in tqdm(images, desc="verify", unit="img", disable=not (progress and sys.stderr.isatty())):
            listed = sums.get(rel)
            if listed is None:
                raise DartsError(f"{sums_file}: does not list {rel}")
            digest = digest_file(root / rel)
            _listed_check(root / rel, listed)(digest)
            files.append({"path": rel, "size": digest.size, "sha256": digest.sha256})
    return {
        "format": manifest.FORMAT, "dataset": spec.name,
        "full": found["splits"] == dict(spec.splits) and found["classes"] == spec.classes,
        "source": {"kind": "in_place", "root": str(root), "sha256sums": bool(files)},
        "root": str(root), **found, "official_splits": dict(spec.splits), "files": files,
    }
