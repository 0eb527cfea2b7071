"""Train one genotype from scratch with the Params in hand: the one training code path of
`darts train`, of a selection's candidates and of the search-progress snapshots.

  train_genotype("cifar10", params, genotype, seed, out, split="search")    a selection run
  train_genotype("ptb", params, genotype, seed, out)                         the final PTB run
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from darts.config import Params
from darts.data import imagenet
from darts.errors import DartsError
from darts.genotypes import Genotype
from darts.train import cnn, lm

# dataset -> the space of the genotypes it trains
SPACE: dict[str, str] = {"cifar10": "cnn", "imagenet": "cnn", "ptb": "rnn", "wikitext2": "rnn"}


def data_root(dataset: str, params: Params, explicit: str | Path | None = None) -> Path:
    """The dataset's folder: ``explicit``, else ``<data.root>/<dataset>``; for ImageNet the root
    ``darts.data.imagenet.require_root`` resolves, which must hold ``train/``."""
    if dataset == "imagenet":
        return imagenet.require_root(explicit, params)
    return Path(explicit) if explicit is not None else Path(params.data.root) / dataset


def train_genotype(dataset: str, params: Params, genotype: Genotype, seed: int, out: str | Path, *,
                   split: str = "full", data: str | Path | None = None) -> dict[str, Any]:
    """Train (or resume) one run into ``out``; return its metrics.json content.

    ``split="search"`` is a selection run (params select_cnn / select_rnn) scored on held-out data;
    the test set is not read. ``data`` is the dataset folder (default: ``data_root``).
    """
    if dataset not in SPACE:
        raise DartsError(f"unknown dataset {dataset!r}: expected one of {', '.join(SPACE)}")
    if genotype.space != SPACE[dataset]:
        raise DartsError(f"{dataset} trains {SPACE[dataset].upper()} genotypes, not {genotype.space.upper()} ones")
    if SPACE[dataset] == "cnn":
        task = cnn.Task(dataset, split)  # refuses an ImageNet selection run before any data is looked for
        return cnn.train(task, params, genotype, seed, Path(out), data_root(dataset, params, data))
    return lm.train(lm.Task(dataset, split), params, genotype, seed, out, data_root(dataset, params, data))
