"""Which instances of the pipeline matrix run at the active scale, and where runs live.

dvc.yaml expands its foreach/matrix from the main tree of params.yaml (the paper's seeds, orders
and runs): DVC's templating cannot see the ``smoke:`` overlay or ``$DARTS_SCALE``. So the matrix
always covers the paper-scale set, and every stage command runs behind ``darts gate``, which asks
this module whether its instance is active at the resolved scale. An inactive instance writes a
skip marker instead of running, so both engines see the same outputs at every scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from darts.config import Params
from darts.errors import ConfigError

ORDERS = ("first", "second")
SPACES = ("cnn", "rnn")
SKIPPED = "skipped"

# Which cell space each stage trains or searches.
STAGE_SPACE: dict[str, str] = {
    "search_cnn": "cnn", "select_cnn": "cnn", "train_cifar10": "cnn", "train_imagenet": "cnn",
    "search_rnn": "rnn", "select_rnn": "rnn", "train_ptb": "rnn", "train_wikitext2": "rnn",
}


def published_names(space: str) -> tuple[str, ...]:
    """The published cells of a space (DARTS_V1/V2 and the † baselines), from darts.genotypes."""
    from darts.genotypes import PUBLISHED

    return tuple(PUBLISHED[space])


def orders(params: Params, space: str) -> list[str]:
    return list(params.pipeline.cnn_orders if space == "cnn" else params.pipeline.rnn_orders)


def inactive_reason(
    params: Params,
    stage: str,
    *,
    space: Optional[str] = None,
    order: Optional[str] = None,
    seed: Optional[int] = None,
    method: Optional[str] = None,
    run: Optional[int] = None,
) -> Optional[str]:
    """Why this instance does not run at the current scale, or None when it does."""
    space = space or STAGE_SPACE.get(stage)
    if space not in SPACES:
        raise ConfigError(f"stage {stage!r}: unknown cell space {space!r}; expected one of {', '.join(SPACES)}")
    pipe, scale = params.pipeline, params.scale
    active_orders = orders(params, space)
    if stage == "snapshot_eval" and not pipe.snapshot_eval:
        return "pipeline.snapshot_eval is false"
    if order is not None and order not in active_orders:
        return f"order {order!r} is not in pipeline.{space}_orders {active_orders} at scale {scale}"
    if seed is not None and seed not in pipe.seeds:
        return f"seed {seed} is not in pipeline.seeds {pipe.seeds} at scale {scale}"
    if run is not None and run not in pipe.cifar10_runs:
        return f"run {run} is not in pipeline.cifar10_runs {pipe.cifar10_runs} at scale {scale}"
    if method is not None:
        if method in ORDERS:
            if method not in active_orders:
                return f"order {method!r} is not in pipeline.{space}_orders {active_orders} at scale {scale}"
        elif method in published_names(space):
            if not pipe.published_cells:
                return "pipeline.published_cells is false"
        elif method != "random":
            choices = ", ".join((*ORDERS, "random", *published_names(space)))
            raise ConfigError(f"stage {stage!r}: unknown method {method!r}; expected one of {choices}")
    return None


def search_dir(runs_root: Path, space: str, order: str, seed: int) -> Path:
    return runs_root / f"search_{space}" / order / f"s{seed}"


def random_dir(runs_root: Path, space: str, sample: int) -> Path:
    return runs_root / f"random_{space}" / f"sample{sample}"


def candidate_dirs(params: Params, space: str, method: str, runs_root: Path) -> dict[str, Path]:
    """Name -> run directory holding ``genotype.json``, for the candidates of one selection."""
    if method in ORDERS:
        return {f"{method}-s{seed}": search_dir(runs_root, space, method, seed) for seed in params.pipeline.seeds}
    if method == "random":
        count = params.pipeline.random_cnn_samples if space == "cnn" else params.pipeline.random_rnn_samples
        return {f"sample{i}": random_dir(runs_root, space, i) for i in range(count)}
    raise ConfigError(f"method {method!r} has no candidates to select from; expected first, second or random")
