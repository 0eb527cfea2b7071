"""The data stage on the real mirror (../shared/datasets or $DARTS_DATA_MIRROR): verified copies,
full vs subset, corrupted and interrupted copies, ImageNet in place, the `darts data` command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from darts.cli import main
from darts.data.prepare import STAGING, intact_manifest, prepare
from darts.errors import DartsError

REPO = Path(__file__).resolve().parents[1]


def sha256sums(folder: Path) -> dict[str, str]:
    lines = (folder / "SHA256SUMS").read_text().splitlines()
    return {path: digest for digest, path in (line.split(maxsplit=1) for line in lines if line.strip())}


def files_in(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def fake_mirror(root: Path, source: Path, name: str, corrupt: str | None = None) -> Path:
    """``root/name``: links to ``source``'s files and its SHA256SUMS, with ``corrupt`` a damaged copy."""
    folder = root / name
    folder.mkdir(parents=True)
    shutil.copy(source / "SHA256SUMS", folder)
    for file in ("train.txt", "valid.txt", "test.txt"):
        if file == corrupt:
            data = bytearray((source / file).read_bytes())
            data[len(data) // 2] ^= 0x20
            (folder / file).write_bytes(bytes(data))
        else:
            (folder / file).symlink_to(source / file)
    return folder


EXPECTED = {
    "cifar10": ("cifar10-mini", False, {"train": 5000, "test": 1000}, {"train": [500] * 10, "test": [100] * 10}),
    "ptb": ("ptb", True, {"train": 929_589, "valid": 73_760, "test": 82_430}, None),
    "wikitext2": ("wikitext-2", True, {"train": 2_088_628, "valid": 217_646, "test": 245_569}, None),
    "imagenet": ("imagenet-mini", False, {"train": 160, "val": 50}, {"train": [16] * 10, "val": [5] * 10}),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_dataset_from_the_mirror(name, mirror, tmp_path):
    folder, full, splits, class_counts = EXPECTED[name]
    out = tmp_path / name
    result = prepare(name, out, mirror=mirror, progress=False)

    assert json.loads((out / "manifest.json").read_text()) == result
    assert result["full"] is full and result["splits"] == splits
    if class_counts:
        assert result["class_counts"] == class_counts and result["classes"] == 10
    else:
        assert result["vocab_size"] == {"ptb": 10_000, "wikitext2": 33_278}[name]
    listed = sha256sums(mirror / folder)
    assert result["files"], "every file is recorded"
    for entry in result["files"]:
        assert entry["sha256"] == listed[entry["path"]]
    if name == "imagenet":  # referenced in place, not copied
        assert result["root"] == str((mirror / folder).resolve()) and result["file_count"] == 210
        assert files_in(out) == [out / "manifest.json"]
    else:
        for entry in result["files"]:
            data = (out / entry["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"]
        assert result["source"] == {"kind": "mirror", "path": str((mirror / folder).resolve())}
        assert all(entry["official"] is full for entry in result["files"])


def test_corrupted_mirror_copy_is_rejected(mirror, tmp_path):
    fake_mirror(tmp_path / "mirror", mirror / "ptb", "ptb", corrupt="test.txt")
    out = tmp_path / "ptb"
    with pytest.raises(DartsError, match=r"test\.txt: sha256 \w+ differs from its SHA256SUMS entry"):
        prepare("ptb", out, mirror=tmp_path / "mirror", progress=False)
    assert files_in(out) == [], "nothing that looks complete"


def test_corrupted_imagenet_image_is_rejected(mirror, tmp_path):
    root = tmp_path / "imagenet-mini"
    shutil.copytree(mirror / "imagenet-mini", root)
    victim = sorted((root / "val").rglob("*.JPEG"))[3]
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(DartsError, match=victim.name):
        prepare("imagenet", tmp_path / "imagenet", imagenet_root=root, progress=False)
    assert files_in(tmp_path / "imagenet") == []


def test_interrupted_copy_is_not_taken_as_complete(mirror, tmp_path):
    """Kill `darts data` half-way through a copy (the mirror's train.txt is a pipe we feed)."""
    source = mirror / "ptb"
    fake = fake_mirror(tmp_path / "mirror", source, "ptb")
    (fake / "train.txt").unlink()
    os.mkfifo(fake / "train.txt")
    out = tmp_path / "ptb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "darts", "data", "ptb", "--out", str(out), "--mirror", str(tmp_path / "mirror"),
         "--params", str(REPO / "params.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        half = (source / "train.txt").read_bytes()[: 2_000_000]
        with open(fake / "train.txt", "wb") as pipe:
            pipe.write(half)
            pipe.flush()
            deadline = time.monotonic() + 60
            while sum(p.stat().st_size for p in out.rglob("*.tmp")) < len(half) - (1 << 16):
                assert time.monotonic() < deadline, "the copy never started"
                time.sleep(0.05)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    finally:
        proc.kill()
    assert not (out / "manifest.json").exists() and not (out / "train.txt").exists()
    assert intact_manifest(out) is None

    (fake / "train.txt").unlink()
    (fake / "train.txt").symlink_to(source / "train.txt")
    result = prepare("ptb", out, mirror=tmp_path / "mirror", progress=False)
    assert result["full"] is True and not (out / STAGING).exists()
    assert sorted(p.name for p in files_in(out)) == ["manifest.json", "test.txt", "train.txt", "valid.txt"]


def test_rerun_keeps_an_intact_install_and_redoes_a_changed_one(mirror, tmp_path):
    out = tmp_path / "ptb"
    first = prepare("ptb", out, mirror=mirror, progress=False)
    stamp = (out / "valid.txt").stat().st_mtime_ns
    assert prepare("ptb", out, mirror=mirror, progress=False) == first
    assert (out / "valid.txt").stat().st_mtime_ns == stamp, "an intact install is not copied again"

    with open(out / "valid.txt", "ab") as f:
        f.write(b"tampered\n")
    assert intact_manifest(out) is None
    assert prepare("ptb", out, mirror=mirror, progress=False) == first
    assert (out / "valid.txt").read_bytes() == (mirror / "ptb" / "valid.txt").read_bytes()


def test_imagenet_missing_gives_the_helpful_error(tmp_path):
    with pytest.raises(DartsError) as err:
        prepare("imagenet", tmp_path / "imagenet", mirror=tmp_path, progress=False)
    assert "--imagenet-root" in str(err.value) and "image-net.org" in str(err.value)


def test_darts_data_command(mirror, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DARTS_DATA_MIRROR", raising=False)
    params = ["--params", str(REPO / "params.yaml")]
    assert main(["data", "cifar10", "--out", str(tmp_path / "cifar10"), "--mirror", str(mirror), *params]) == 0
    line = capsys.readouterr().out
    assert "SUBSET" in line and "5,000 train" in line and "cifar10-mini" in line

    monkeypatch.setenv("DARTS_DATA_MIRROR", str(mirror))
    assert main(["data", "imagenet", "--out", str(tmp_path / "imagenet"), *params]) == 0
    assert "imagenet-mini" in capsys.readouterr().out

    monkeypatch.setenv("DARTS_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    (tmp_path / "empty-mirror").mkdir()
    assert main(["data", "imagenet", "--out", str(tmp_path / "none"), *params]) == 1
    assert "--imagenet-root" in capsys.readouterr().err
