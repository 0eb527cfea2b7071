"""Corrupt checkpoints: empty, truncated, one flipped bit, foreign, of an earlier format, malicious
(a pickle that runs code, bare or behind a forged digest), or of another shape. Each is named in a
WARNING with the path it was set aside to (kept for inspection) and the run starts fresh, ending
as an uninterrupted run would; no code in a checkpoint ever runs. A checkpoint whose epoch exceeds
the run's epochs is refused naming the file."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from darts import rundir
from darts.checkpoint import MAGIC, read_verified, write_verified
from darts.config import load_params
from darts.errors import DartsError
from darts.run import Run
from killing import REPO, comparable, darts, load_checkpoint, mirror_root, names, ok


def toy(tmp_path: Path, out: Path, epochs: int = 2, width: int = 3) -> dict:
    """A two-epoch training loop in the shape of every darts loop (darts.run.Run)."""
    params = load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}",
                                                         f"train_cifar10.epochs={epochs}"])
    torch.manual_seed(0)
    model = nn.Linear(width, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    run = Run(params, "train_cifar10", "toy", 0, out, {"model": model, "optimizer": opt}, "train")
    x = torch.randn(16, width, generator=torch.Generator().manual_seed(1))
    for epoch in range(run.start_epoch, epochs):
        loss = nn.functional.mse_loss(model(x + 0.1 * torch.randn_like(x)), x.sum(1, keepdim=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
        run.end_epoch({"epoch": epoch + 1, "train_loss": loss.item(), "weight": model.weight.tolist()})
    metrics = {"train_loss": run.history[-1]["train_loss"]}
    run.finish(metrics, torch.device("cpu"), {rundir.WEIGHTS: lambda p: torch.save(model.state_dict(), p)})
    return metrics


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _framed(payload: bytes) -> bytes:
    """A forged checkpoint: the header darts writes, with the right digest of ``payload``."""
    return MAGIC + f" sha256={hashlib.sha256(payload).hexdigest()} size={len(payload)}\n".encode() + payload


def _flip_bit(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x10]) + data[at + 1:]


DAMAGE = {
    "empty": lambda data, marker: b"",
    "truncated": lambda data, marker: data[: len(data) // 2],
    "one flipped bit": lambda data, marker: _flip_bit(data, len(data) - 700),
    "foreign file": lambda data, marker: json.dumps({"epoch": 1}).encode(),
    "earlier format (no digest)": lambda data, marker: data[data.index(b"\n") + 1:],
    "malicious pickle": lambda data, marker: pickle.dumps(_Evil(marker)),
    "malicious pickle behind a forged digest": lambda data, marker: _framed(pickle.dumps(_Evil(marker))),
    "damaged header": lambda data, marker: data.replace(b"sha256=", b"sha265=", 1),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_an_untrustworthy_checkpoint_is_set_aside_loudly_and_the_run_starts_fresh(tmp_path, damage, caplog):
    toy(tmp_path / "a", tmp_path / "whole")
    toy(tmp_path, tmp_path / "first")
    (path,) = (tmp_path / "ckpt").glob("*/*/state.pt")
    marker = tmp_path / "code-ran"
    bad = DAMAGE[damage](path.read_bytes(), marker)
    path.write_bytes(bad)
    caplog.set_level("INFO")
    toy(tmp_path, tmp_path / "again")  # a finished run's checkpoint: resumed, it would train nothing
    assert not marker.exists(), "a checkpoint ran code"
    (aside,) = path.parent.glob("state.pt.corrupt-*")
    assert aside.read_bytes() == bad, "the damaged file is kept for inspection"
    warning = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(str(path) in w and str(aside) in w and "starts fresh" in w for w in warning), warning
    assert "resuming" not in caplog.text
    assert comparable(tmp_path / "again") == comparable(tmp_path / "whole")  # trained again from epoch 0
    assert read_verified(path)["epoch"] == 2


def test_a_checkpoint_of_another_shape_is_set_aside_and_leaves_the_model_untouched(tmp_path, caplog):
    toy(tmp_path / "a", tmp_path / "whole")
    toy(tmp_path, tmp_path / "wide", width=4)  # same key, another model: a code change the key missed
    (path,) = (tmp_path / "ckpt").glob("*/*/state.pt")
    toy(tmp_path, tmp_path / "again")
    assert "its model state does not fit this run" in caplog.text
    assert comparable(tmp_path / "again") == comparable(tmp_path / "whole")
    assert len(list(path.parent.glob("state.pt.corrupt-*"))) == 1


def test_a_checkpoint_past_the_runs_epochs_is_refused_naming_the_file(tmp_path):
    toy(tmp_path, tmp_path / "long", epochs=3)
    (path,) = (tmp_path / "ckpt").glob("*/*/state.pt")
    with pytest.raises(DartsError, match=rf"{path}: records epoch 3 of a run of 2 epochs.*delete it"):
        toy(tmp_path, tmp_path / "short", epochs=2)
    assert path.exists() and not list(path.parent.glob("state.pt.corrupt-*"))


def test_a_bit_flip_in_a_search_checkpoints_alphas_never_resumes(tmp_path):
    """At the command line: one flipped bit in the stored alphas of `search cnn`."""
    def args(out: Path) -> list[str]:
        return ["search", "cnn", "--seed", "0", "--order", "first", "--out", str(out),
                "--data", str(mirror_root() / "cifar10-mini"), "--params", str(REPO / "params.yaml"),
                "--scale", "smoke", "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", "--set", "search_cnn.epochs=1"]
    ok(darts(args(tmp_path / "first"), tmp_path))
    (path,) = (tmp_path / "ckpt").glob("*/*/state.pt")
    model = load_checkpoint(path)["states"]["model"]
    alphas = next(v for k, v in model.items() if "alphas_normal" in k)
    data = path.read_bytes()
    at = data.index(alphas.numpy().tobytes()) + 3  # the high byte of the first alpha
    path.write_bytes(_flip_bit(data, at))
    again = ok(darts(args(tmp_path / "again"), tmp_path))
    assert f"checkpoint {path} cannot be used: its SHA-256 does not match" in again.stderr
    assert "Set aside as" in again.stderr
    assert names(tmp_path / "again") == sorted(rundir.SEARCH_FILES)
    assert comparable(tmp_path / "again") == comparable(tmp_path / "first")


def test_write_verified_round_trips_and_read_verified_names_the_cause(tmp_path):
    path = tmp_path / "state.pt"
    write_verified({"epoch": 1, "t": torch.arange(4)}, path)
    assert torch.equal(read_verified(path)["t"], torch.arange(4))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(Exception, match="truncated or extended"):
        read_verified(path)
