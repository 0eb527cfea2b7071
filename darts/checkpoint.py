"""Resumable state, kept outside every engine's outputs and keyed by what determines the run.

A run's key is a hash of its merged params section, seed, order, data manifest, genotype and so on
(see ``darts.config.config_hash``): rerunning after a kill resumes, rerunning after any change to
the run's inputs starts fresh. Checkpoints are written atomically, so a kill mid-write keeps the
previous one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from darts.io import atomic_path

log = logging.getLogger(__name__)


class Checkpoint:
    def __init__(self, root: str | Path, stage: str, key: str):
        self.dir = Path(root) / stage / key
        self.path = self.dir / "state.pt"
        self.key = key

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        log.info("resuming from %s (epoch %s done)", self.path, state.get("epoch"))
        return state

    def save(self, state: dict[str, Any]) -> None:
        save_tensors(state, self.path)


def save_tensors(obj: Any, path: str | Path) -> None:
    """``torch.save`` written atomically (checkpoints, weights.pt)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
