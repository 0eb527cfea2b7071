"""Getting bytes onto disk safely: resumable HTTP downloads, verified copies, checksum files.

Nothing here leaves data under its final name unless it is complete: transfers go to a temporary
name (``<name>.part`` for a download, which a later call resumes with an HTTP Range request) and
are renamed only once complete and verified.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import re
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from darts import __version__
from darts.errors import DartsError
from darts.io import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 16


class DownloadError(DartsError):
    """A transfer failed: unreachable host, HTTP error, or a connection cut off half-way."""


class ChecksumError(DartsError):
    """Content differs from its published or listed checksum."""


@dataclass(frozen=True)
class Digest:
    size: int
    sha256: str
    md5: str


def progress_bar(total: int | None, desc: str, enabled: bool, initial: int = 0) -> tqdm:
    """A byte-counting bar, shown only when asked for and stderr is a terminal."""
    return tqdm(total=total, initial=initial, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not (enabled and sys.stderr.isatty()))


def copy_stream(src: BinaryIO, dst: BinaryIO, bar: tqdm | None = None) -> Digest:
    """Copy ``src`` to ``dst`` in chunks, hashing on the way (one pass over the data)."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    while block := src.read(CHUNK):
        dst.write(block)
        sha.update(block)
        md5.update(block)
        size += len(block)
        if bar is not None:
            bar.update(len(block))
    return Digest(size, sha.hexdigest(), md5.hexdigest())


def digest_file(path: Path) -> Digest:
    with open(path, "rb") as f:
        return copy_stream(f, _NullSink())


class _NullSink:
    def write(self, block: bytes) -> int:
        return len(block)


def verified_copy(src: BinaryIO, dest: Path, check: Callable[[Digest], None], *, total: int | None = None,
                  progress: bool = False) -> Digest:
    """Copy ``src`` to ``dest`` through a temporary file; ``check`` may reject it before the rename."""
    with atomic_path(dest) as tmp, open(tmp, "wb") as out, progress_bar(total, dest.name, progress) as bar:
        digest = copy_stream(src, out, bar)
        out.flush()
        os.fsync(out.fileno())
        check(digest)
    return digest  # atomic_path gave it the usual mode


# Not torchvision.datasets.utils.download_url / torch.hub.download_url_to_file: served a 1 MiB file cut off at
# 512 KiB, both (torchvision 0.29, torch 2.14) kept the 512 KiB as complete without an error, and neither resumes.
def download(url: str, dest: Path, *, md5: str | None = None, timeout: float = 60.0,
             progress: bool = True) -> Path:
    """Fetch ``url`` to ``dest``, resuming a partial ``dest.part`` left by an earlier call.

    ``md5`` (the published checksum of the whole object) is verified when given; a mismatch deletes
    the download so the next call starts afresh. A transfer cut off half-way keeps ``dest.part``.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        _check_md5(dest, md5, url)
        return dest
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"darts-repro/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        log.info("resuming %s at byte %d", url, offset)
    else:
        log.info("downloading %s", url)
    try:
        response = urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to send: the partial file is complete
            os.replace(part, dest)
            _check_md5(dest, md5, url)
            return dest
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None

    with response:
        if offset and response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise DownloadError(f"{url}: server resumed at byte {start}, not {offset}; run again to restart")
        else:  # a full response (the server ignores Range, or this is the first attempt)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        try:
            with open(part, "ab" if offset else "wb") as f, \
                    progress_bar(total, dest.name, progress, initial=offset) as bar:
                copy_stream(response, f, bar)
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(f"{url}: transfer interrupted at byte {part.stat().st_size} ({exc}); "
                                f"run again to resume") from None
    received = part.stat().st_size
    if total is not None and received != total:
        raise DownloadError(f"{url}: transfer cut off at byte {received} of {total}; run again to resume")
    os.replace(part, dest)
    _check_md5(dest, md5, url)
    return dest


def _content_range(value: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", value.strip())
    if not match:
        raise DownloadError(f"malformed Content-Range header {value!r}")
    return int(match.group(1)), None if match.group(2) == "*" else int(match.group(2))


def _check_md5(path: Path, md5: str | None, url: str) -> None:
    if md5 is None:
        return
    got = digest_file(path).md5
    if got != md5:
        path.unlink()
        raise ChecksumError(f"{url}: md5 {got} of the download differs from the published {md5}; deleted it")


def iter_members(archive_path: Path, kind: str, wanted: set[str]) -> Iterator[tuple[str, BinaryIO]]:
    """Yield ``(member, stream)`` for each wanted member of a tar (any compression) or zip archive,
    in one pass, matching paths with any leading ``./`` ignored. A damaged archive raises
    ``ChecksumError``; the caller checks that every wanted member came."""
    try:
        if kind == "tar":
            with tarfile.open(archive_path) as tar:
                for info in tar:
                    if info.isfile() and _norm(info.name) in wanted:
                        stream = tar.extractfile(info)
                        assert stream is not None
                        with stream:
                            yield _norm(info.name), stream
        elif kind == "zip":
            with zipfile.ZipFile(archive_path) as zf:
                for name in zf.namelist():
                    if _norm(name) in wanted:
                        with zf.open(name) as stream:
                            yield _norm(name), stream
        else:
            raise ValueError(f"unknown archive kind {kind!r}")
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ChecksumError(f"{archive_path.name}: damaged archive ({exc})") from None


def _norm(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def read_sha256sums(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum`` listing (``<hex>  <path>`` or ``<hex> *<path>``) into {path: hex}."""
    sums: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DartsError(f"{path}: not found (a mirror folder needs a SHA256SUMS listing)") from None
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line)
        if not match:
            raise DartsError(f"{path}:{number}: not a sha256sum line: {line!r}")
        sums[_norm(match.group(2))] = match.group(1).lower()
    return sums
