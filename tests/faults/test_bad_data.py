"""Bad data: what `darts data` refuses (an empty corpus, a directory where a file is listed, a
mirror entry that is not a folder) and what every stage re-checks when it opens a dataset
(``darts.data.manifest.verified``): bytes changed after `darts data`, a folder with nothing to
verify it against. Also a CIFAR batch re-pickled by Python 3, which must be accepted."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import SRC_MIRROR, TINY_RNN_SEARCH, clean_error
from darts.data import formats, manifest, text
from darts.errors import DartsError

PTB_FILES = ("train.txt", "valid.txt", "test.txt")


def sums(folder: Path, names: list[str]) -> None:
    lines = [f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names]
    (folder / "SHA256SUMS").write_text("".join(lines))


def small_ptb(folder: Path, *, with_sums: bool = True, lines: int = 400) -> Path:
    """The mirror's PTB cut to its first ``lines`` lines per split (enough for a tiny search)."""
    folder.mkdir(parents=True)
    for name in PTB_FILES:
        head = (SRC_MIRROR / "ptb" / name).read_text().splitlines(keepends=True)[:lines]
        (folder / name).write_text("".join(head))
    if with_sums:
        sums(folder, list(PTB_FILES))
    return folder


def flip(path: Path, at: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    data[at + 1] ^= 0x01
    path.write_bytes(bytes(data))


# ---- the data stage ------------------------------------------------------------------------------

def test_empty_corpus_with_matching_checksums_is_refused(darts_cli, smoke_params, tmp_path):
    mirror = tmp_path / "mirror"
    small_ptb(mirror / "ptb", with_sums=False)
    (mirror / "ptb" / "valid.txt").write_text("")
    sums(mirror / "ptb", list(PTB_FILES))
    out = tmp_path / "data" / "ptb"
    proc = darts_cli(["data", "ptb", "--out", out, "--mirror", mirror, "--params", smoke_params])
    clean_error(proc, str(mirror / "ptb" / "valid.txt"), "empty")
    assert not manifest.path(out).exists()


def test_listed_file_that_is_a_directory(darts_cli, smoke_params, tmp_path):
    mirror = tmp_path / "mirror"
    small_ptb(mirror / "ptb")
    (mirror / "ptb" / "valid.txt").unlink()
    (mirror / "ptb" / "valid.txt").mkdir()
    proc = darts_cli(["data", "ptb", "--out", tmp_path / "out", "--mirror", mirror, "--params", smoke_params])
    clean_error(proc, str(mirror / "ptb" / "valid.txt"), "directory")


def test_mirror_entry_that_is_a_file_is_an_error_not_a_download(darts_cli, smoke_params, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "ptb").write_text("not a folder\n")
    proc = darts_cli(["data", "ptb", "--out", tmp_path / "out", "--mirror", mirror, "--params", smoke_params])
    line = clean_error(proc, str(mirror / "ptb"), "not a folder")
    assert "internet" not in line and "download" not in proc.stderr.lower().replace("downloads", "")


# ---- every stage re-checks its data ----------------------------------------------------------------

def test_cifar_batch_changed_after_darts_data_is_refused_by_the_search(darts_cli, smoke_params, tmp_path):
    data = tmp_path / "data" / "cifar10"
    proc = darts_cli(["data", "cifar10", "--out", data, "--params", smoke_params])
    assert proc.returncode == 0, proc.stderr[-2000:]
    batch = data / "cifar-10-batches-py" / "data_batch_1"
    flip(batch, at=5000)  # two bytes of pixels: the pickle still loads, the images differ
    out = tmp_path / "run"
    proc = darts_cli(["search", "cnn", "--seed", "0", "--out", out, "--data", data, "--params", smoke_params,
                      "--scale", "smoke", "--set", "search_cnn.epochs=1"])
    clean_error(proc, str(batch), "sha256", "darts data cifar10")
    assert not (out / "genotype.json").exists() and not (out / "metrics.json").exists()


def test_ptb_changed_after_darts_data_is_refused_by_training(darts_cli, smoke_params, tmp_path):
    data = tmp_path / "data" / "ptb"
    assert darts_cli(["data", "ptb", "--out", data, "--params", smoke_params]).returncode == 0
    flip(data / "test.txt")
    proc = darts_cli(["train", "ptb", "--genotype", "DARTS_V2", "--seed", "0", "--out", tmp_path / "run",
                      "--data", data, "--params", smoke_params, "--scale", "smoke"])
    clean_error(proc, str(data / "test.txt"), "sha256")


def test_folder_without_manifest_or_sums_is_refused_naming_darts_data(darts_cli, smoke_params, tmp_path):
    folder = small_ptb(tmp_path / "bare", with_sums=False)
    proc = darts_cli(["search", "rnn", "--seed", "0", "--out", tmp_path / "run", "--data", folder,
                      "--params", smoke_params, "--scale", "smoke", *TINY_RNN_SEARCH])
    clean_error(proc, str(folder), "darts data ptb")


def test_mirror_folder_used_directly_is_verified_against_its_sums(tmp_path):
    folder = small_ptb(tmp_path / "ptb")
    assert text.manifest_summary("ptb", folder)["dataset"] == "ptb"
    flip(folder / "valid.txt")
    with pytest.raises(DartsError, match=r"valid\.txt.*sha256.*SHA256SUMS"):
        text.manifest_summary("ptb", folder)


def test_digest_is_the_verified_data_s_and_equal_for_mirror_and_install(smoke_params, tmp_path):
    """A run's data digest (meta.json, checkpoint key) comes from the verified files: a mirror folder
    used directly and its copy installed by `darts data` give the same digest."""
    from darts.data.prepare import prepare

    installed = prepare("ptb", tmp_path / "ptb", mirror=SRC_MIRROR, progress=False)
    direct = text.manifest_summary("ptb", SRC_MIRROR / "ptb")
    assert direct["digest"] == manifest.summarize(installed)["digest"] == \
        text.manifest_summary("ptb", tmp_path / "ptb")["digest"]


def test_imagenet_image_changed_in_a_verified_root(tmp_path):
    root = tmp_path / "imagenet"
    shutil.copytree(SRC_MIRROR / "imagenet-mini", root)
    first = manifest.verified_imagefolder(root)
    assert first["file_count"] == 210
    images = sorted(formats.scan_imagefolder(root)["images"], key=lambda r: hashlib.sha256(r.encode()).hexdigest())
    flip(root / images[0], at=200)  # the first image of the checked sample, size unchanged
    with pytest.raises(DartsError, match=images[0].replace(".", r"\.")):
        manifest.verified_imagefolder(root)


def test_imagenet_resized_after_darts_data_and_root_without_sums(smoke_params, tmp_path):
    from darts.data.prepare import prepare

    root = tmp_path / "imagenet"
    shutil.copytree(SRC_MIRROR / "imagenet-mini", root)
    (root / "SHA256SUMS").unlink()
    with pytest.raises(DartsError, match="darts data imagenet --imagenet-root"):
        manifest.verified_imagefolder(root)  # nothing to verify it against
    recorded = prepare("imagenet", tmp_path / "data" / "imagenet", imagenet_root=root, progress=False)
    assert manifest.verified_imagefolder(root, recorded)["listing_sha256"] == recorded["listing_sha256"]
    image = next((root / "train").rglob("*.JPEG"))
    with open(image, "ab") as f:
        f.write(b"\0")
    with pytest.raises(DartsError, match="since `darts data imagenet` recorded"):
        manifest.verified_imagefolder(root, recorded)


# ---- CIFAR batches re-pickled by Python 3 --------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 5])
def test_cifar_batch_repickled_by_python3_is_accepted(protocol, tmp_path):
    source = SRC_MIRROR / "cifar10-mini" / "cifar-10-batches-py"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"):
        with open(source / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")  # as torchvision reads it: str keys
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)
    ours = formats.load_cifar10(tmp_path)
    official = formats.load_cifar10(source.parent)
    assert all(np.array_equal(a, b) for a, b in zip(ours, official))
    assert formats.cifar_label_names(tmp_path) == formats.cifar_label_names(source.parent)
    described = formats.describe_cifar10(tmp_path)
    assert described["splits"] == {"train": len(official[1]), "test": len(official[3])}
    json.dumps(described)
