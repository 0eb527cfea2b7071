"""Filesystem faults, at the command line, on real mounts: a read-only or full output folder, a
read-only or full checkpoint folder, an ``--out`` that is a file. Each must end in one error line
naming the path and the cause (exit 1), with no partial or temporary file left behind."""

from __future__ import annotations

from pathlib import Path

from conftest import SRC_MIRROR, TINY_RNN_SEARCH, clean_error


def search_rnn(params: Path, out: Path, *extra: str) -> list[str]:
    return ["search", "rnn", "--seed", "0", "--out", out, "--data", SRC_MIRROR / "ptb", "--params", params,
            "--scale", "smoke", *TINY_RNN_SEARCH, *extra]


def test_read_only_out(darts_cli, smoke_params, tmpfs):
    mount = tmpfs("ro", read_only=True)
    out = mount.path / "run"
    clean_error(darts_cli(search_rnn(smoke_params, out)), str(out), "read-only file system")
    assert mount.files() == []


def test_out_that_is_a_file(darts_cli, smoke_params, tmp_path):
    out = tmp_path / "taken"
    out.write_text("not a folder\n")
    clean_error(darts_cli(search_rnn(smoke_params, out)), str(out), "not a directory")
    assert out.read_text() == "not a folder\n"


def test_read_only_checkpoint_dir(darts_cli, smoke_params, tmpfs, tmp_path):
    mount = tmpfs("ro", read_only=True)
    proc = darts_cli(search_rnn(smoke_params, tmp_path / "run", "--set", f"runtime.checkpoint_dir={mount.path}"))
    clean_error(proc, str(mount.path), "read-only file system")


def test_full_checkpoint_dir(darts_cli, smoke_params, tmpfs, tmp_path):
    """torch.save on a full disk says `unexpected pos 64 vs 0`; the user must read the file and 'no space'."""
    mount = tmpfs("full", size="64k")  # the model's state is ~700 KB: the checkpoint cannot fit
    proc = darts_cli(search_rnn(smoke_params, tmp_path / "run", "--set", f"runtime.checkpoint_dir={mount.path}"))
    line = clean_error(proc, str(mount.path), "state.pt", "no space left")
    assert "unexpected pos" not in line
    left = mount.files()
    assert not [f for f in left if f.endswith(".tmp") or f.endswith("state.pt")], left


def test_full_out(darts_cli, smoke_params, tmpfs):
    mount = tmpfs("full", size="64k")
    (mount.path / "run").mkdir()
    mount.fill()
    out = mount.path / "run"
    clean_error(darts_cli(search_rnn(smoke_params, out)), str(out), "no space left")
    assert not [f for f in mount.files() if f.endswith(".tmp")], mount.files()


def test_data_stage_on_a_full_disk_leaves_nothing(darts_cli, smoke_params, tmpfs):
    mount = tmpfs("full", size="1m")  # PTB is 6 MB
    out = mount.path / "ptb"
    proc = darts_cli(["data", "ptb", "--out", out, "--mirror", SRC_MIRROR, "--params", smoke_params])
    clean_error(proc, str(out), "no space left")
    assert mount.files() == [], "a partial copy or staging file was left"


def test_genotype_convert_to_a_read_only_folder(darts_cli, tmpfs):
    mount = tmpfs("ro", read_only=True)
    target = mount.path / "genotype.json"
    proc = darts_cli(["genotype", "convert", "DARTS_V2", "--out", target])
    clean_error(proc, str(target), "read-only file system")
