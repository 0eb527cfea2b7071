"""Shared fixtures: the dataset mirror (../shared/datasets, or $DARTS_DATA_MIRROR) and one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def mirror_root() -> Path:
    env = os.environ.get("DARTS_DATA_MIRROR")
    return Path(env) if env else (REPO.parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def mirror() -> Path:
    root = mirror_root()
    if not root.is_dir():
        pytest.fail(f"dataset mirror not found at {root}: set DARTS_DATA_MIRROR to a copy of shared/datasets")
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Tests share a 2-core machine: keep torch to one thread where torch is used."""
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield
