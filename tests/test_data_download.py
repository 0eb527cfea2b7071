"""The download path, for real, against an HTTP server on 127.0.0.1 serving archives and files built
from the mirror's data (no machine here reaches the internet; nothing touches a real host)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from darts.data import registry
from darts.data.fetch import ChecksumError, DownloadError, download
from darts.data.prepare import prepare
from darts.errors import DartsError


class FileServer:
    """Serves ``files`` (name -> bytes) with Range support; can cut a transfer off half-way."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: set[str] = set()  # the next GET of these sends half the body, then hangs up
        self.ignore_range = False
        self.requests: list[tuple[str, str | None]] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                name = self.path.lstrip("/")
                wanted = self.headers.get("Range")
                state.requests.append((name, wanted))
                body = state.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if wanted and not state.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if name in state.cut_once:
                    state.cut_once.discard(name)
                    self.wfile.write(payload[: len(payload) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FileServer()
    yield srv
    srv.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def rebased(spec: registry.DatasetSpec, server: FileServer) -> list[registry.Source]:
    """The registry's own sources (member names and all), each URL moved to the local server."""
    return [dataclasses.replace(s, url=server.url(Path(s.url).name)) for s in spec.sources]


@pytest.fixture(scope="module")
def ptb_files(mirror: Path) -> dict[str, bytes]:
    return {split: (mirror / "ptb" / f"{split}.txt").read_bytes() for split in ("train", "valid", "test")}


def test_download_checks_the_published_md5(server, tmp_path):
    body = b"x" * 100_000
    server.files["blob"] = body
    assert download(server.url("blob"), tmp_path / "ok", md5=md5(body), progress=False).read_bytes() == body

    with pytest.raises(ChecksumError, match="md5"):
        download(server.url("blob"), tmp_path / "bad", md5=md5(b"something else"), progress=False)
    assert list(tmp_path.iterdir()) == [tmp_path / "ok"], "a failed download must leave nothing behind"


def test_cut_transfer_resumes_with_a_range_request(server, tmp_path, ptb_files):
    body = ptb_files["valid"]
    server.files["valid.txt"] = body
    server.cut_once.add("valid.txt")
    dest = tmp_path / "valid.txt"
    with pytest.raises(DownloadError, match="cut off"):
        download(server.url("valid.txt"), dest, md5=md5(body), progress=False)
    part = tmp_path / "valid.txt.part"
    assert not dest.exists() and part.stat().st_size == len(body) // 2

    download(server.url("valid.txt"), dest, md5=md5(body), progress=False)
    assert dest.read_bytes() == body and not part.exists()
    assert server.requests == [("valid.txt", None), ("valid.txt", f"bytes={len(body) // 2}-")]


def test_server_ignoring_range_restarts_from_scratch(server, tmp_path, ptb_files):
    body = ptb_files["test"]
    server.files["test.txt"] = body
    server.ignore_range = True
    (tmp_path / "test.txt.part").write_bytes(b"stale bytes that are not the file")
    download(server.url("test.txt"), tmp_path / "test.txt", md5=md5(body), progress=False)
    assert (tmp_path / "test.txt").read_bytes() == body


def test_unreachable_host_is_a_download_error(tmp_path):
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        download("http://127.0.0.1:9/nothing", tmp_path / "x", timeout=5, progress=False)


def test_ptb_falls_back_to_the_next_source_and_is_full(server, tmp_path, ptb_files):
    # The raw copy of train.txt is gone (404); the simple-examples tarball (members under ./) has it.
    server.files["ptb.valid.txt"] = ptb_files["valid"]
    server.files["ptb.test.txt"] = ptb_files["test"]
    server.files["simple-examples.tgz"] = tarball(
        {f"./simple-examples/data/ptb.{s}.txt": data for s, data in ptb_files.items()})
    result = prepare("ptb", tmp_path / "ptb", sources=rebased(registry.PTB, server),
                     cache_dir=tmp_path / "cache", progress=False)

    assert result["full"] is True and result["vocab_size"] == 10_000
    assert result["splits"] == dict(registry.PTB.splits)
    assert result["source"] == {"kind": "download", "urls": [server.url("ptb.valid.txt"), server.url("ptb.test.txt"),
                                                             server.url("simple-examples.tgz")]}
    assert {name for name, _ in server.requests} == {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt",
                                                     "simple-examples.tgz"}
    for split, data in ptb_files.items():
        assert (tmp_path / "ptb" / f"{split}.txt").read_bytes() == data
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*")), "installed downloads are not kept"


def test_checksum_failure_names_the_file_and_installs_nothing(server, tmp_path, ptb_files):
    corrupted = bytearray(ptb_files["valid"])
    corrupted[1000] ^= 0x01
    server.files.update({"ptb.train.txt": ptb_files["train"], "ptb.valid.txt": bytes(corrupted),
                         "ptb.test.txt": ptb_files["test"]})
    out = tmp_path / "ptb"
    with pytest.raises(DartsError) as err:
        prepare("ptb", out, sources=rebased(registry.PTB, server), cache_dir=tmp_path / "cache", progress=False)
    message = str(err.value)
    assert "valid.txt" in message and "sha256" in message and registry.PTB.file("valid.txt").sha256 in message
    assert not out.exists() or not any(out.rglob("*")), "nothing that looks complete"
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*")), "a wrong download is not kept"


def test_cifar10_tarball_md5_then_subset_recorded(server, tmp_path, mirror):
    batches = mirror / "cifar10-mini" / "cifar-10-batches-py"
    archive = tarball({f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in sorted(batches.iterdir())})
    server.files["cifar-10-python.tar.gz"] = archive
    server.cut_once.add("cifar-10-python.tar.gz")
    sources = [dataclasses.replace(s, url=server.url("cifar-10-python.tar.gz"), md5=md5(archive))
               for s in registry.CIFAR10.sources]
    out = tmp_path / "cifar10"

    with pytest.raises(DartsError, match="resume"):  # cut off half-way
        prepare("cifar10", out, sources=sources, cache_dir=tmp_path / "cache", progress=False)
    assert not (out / "manifest.json").exists()
    result = prepare("cifar10", out, sources=sources, cache_dir=tmp_path / "cache", progress=False)
    assert server.requests[-1] == ("cifar-10-python.tar.gz", f"bytes={len(archive) // 2}-")

    # The mini batches are the official layout but not the official files: a subset, recorded so.
    assert result["full"] is False and result["splits"] == {"train": 5000, "test": 1000}
    assert not any(f["official"] for f in result["files"])
    assert (out / "cifar-10-batches-py" / "data_batch_1").read_bytes() == (batches / "data_batch_1").read_bytes()

    wrong = [dataclasses.replace(s, md5="0" * 32) for s in sources]
    with pytest.raises(DartsError, match="md5"):
        prepare("cifar10", tmp_path / "again", sources=wrong, cache_dir=tmp_path / "cache2", progress=False)


def test_wikitext2_zip_with_renamed_members_is_full(server, tmp_path, mirror):
    files = {s: (mirror / "wikitext-2" / f"{s}.txt").read_bytes() for s in ("train", "valid", "test")}
    server.files["wikitext-2-v1.zip"] = zipped({f"wikitext-2/wiki.{s}.tokens": data for s, data in files.items()})
    sources = rebased(registry.WIKITEXT2, server)[:1]
    result = prepare("wikitext2", tmp_path / "wt2", sources=sources, cache_dir=tmp_path / "cache", progress=False)
    assert result["full"] is True and result["vocab_size"] == 33_278
    assert (tmp_path / "wt2" / "train.txt").read_bytes() == files["train"]
