"""Where the pipeline's runs live, and which runs a selection chooses from.

The instances themselves are params: dvc.yaml's foreach/matrix expand the lists of ``pipeline:``
in the workspace's params.yaml (the paper's in the project, the smoke overlay's in a smoke
workspace), so every instance that exists runs.
"""

from __future__ import annotations

from pathlib import Path

from darts.config import Params
from darts.errors import ConfigError

ORDERS = ("first", "second")
SPACES = ("cnn", "rnn")


def search_dir(runs_root: Path, space: str, order: str, seed: int) -> Path:
    return runs_root / f"search_{space}" / order / f"s{seed}"


def random_dir(runs_root: Path, space: str, sample: int) -> Path:
    """Random search's cells sit beside DARTS' searches: runs/search_<space>/random/sample<i>/."""
    return runs_root / f"search_{space}" / "random" / f"sample{sample}"


def candidate_dirs(params: Params, space: str, method: str, runs_root: Path) -> dict[str, Path]:
    """Name -> run directory holding ``genotype.json``, for the candidates of one selection."""
    if method in ORDERS:
        return {f"{method}-s{seed}": search_dir(runs_root, space, method, seed) for seed in params.pipeline.seeds}
    if method == "random":
        count = params.pipeline.random_cnn_samples if space == "cnn" else params.pipeline.random_rnn_samples
        return {f"sample{i}": random_dir(runs_root, space, i) for i in range(count)}
    raise ConfigError(f"method {method!r} has no candidates to select from; expected first, second or random")
