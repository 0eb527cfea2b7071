"""Which runs a selection chooses from (where each run lives is darts.rundir).

The instances themselves are params: dvc.yaml's foreach/matrix expand the lists of ``pipeline:``
in the workspace's params.yaml (the paper's in the project, the smoke overlay's in a smoke
workspace), so every instance that exists runs.
"""

from __future__ import annotations

from pathlib import Path

from darts.config import Params
from darts.errors import ConfigError
from darts.rundir import ORDERS, RANDOM, random_dir, sample_name, search_dir, seed_name

__all__ = ["ORDERS", "candidate_dirs"]


def candidate_dirs(params: Params, space: str, method: str, runs_root: Path) -> dict[str, Path]:
    """Name -> run directory holding ``genotype.json``, for the candidates of one selection."""
    if method in ORDERS:
        return {seed_name(method, seed): search_dir(runs_root, space, method, seed) for seed in params.pipeline.seeds}
    if method == RANDOM:
        count = params.pipeline.random_cnn_samples if space == "cnn" else params.pipeline.random_rnn_samples
        return {sample_name(i): random_dir(runs_root, space, i) for i in range(count)}
    raise ConfigError(f"method {method!r} has no candidates to select from; expected first, second or random")
