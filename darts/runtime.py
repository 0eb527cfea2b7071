"""Device, threads, seeding and determinism, from params.runtime."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from darts.config import Runtime
from darts.errors import ConfigError

log = logging.getLogger(__name__)


def setup(runtime: Runtime, seed: int) -> torch.device:
    """Apply thread count and determinism, seed every RNG, and return the chosen device."""
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    seed_everything(seed)
    if runtime.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    device = pick_device(runtime.device)
    log.info("device %s, %d threads, seed %d%s", device, torch.get_num_threads(), seed,
             ", deterministic" if runtime.deterministic else "")
    return device


def pick_device(choice: str) -> torch.device:

    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("runtime.device is 'cuda' but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG's state, for checkpoints: a resumed run continues the same random stream."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
