"""Reproducible, resumable batches: shuffling and augmentation are functions of (seed, epoch).

A resumed run rebuilds the loader of its epoch and sees exactly the batches an uninterrupted run
would have seen, whatever the number of worker processes: the order is a permutation drawn from a
generator seeded by (seed, epoch), and each sample's random transforms come from a generator seeded
by (seed, epoch, index). Nothing here draws from (or disturbs) the global random state.
"""

from __future__ import annotations

import hashlib
import math
import struct
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any mix of ints and labels; distinct parts give unrelated streams."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else struct.pack("<q", part))
        h.update(b"\x00")
    return int.from_bytes(h.digest(), "little") >> 1


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, epoch))


class SeededSamples(Dataset):
    """``dataset[i]`` with its random transforms drawn from a generator keyed by (seed, epoch, i)."""

    def __init__(self, dataset: Dataset, seed: int, epoch: int):
        self.dataset, self.seed, self.epoch = dataset, seed, epoch

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        with torch.random.fork_rng(devices=()):
            # The CPU generator only: torch.manual_seed would also seed every accelerator (slow).
            torch.default_generator.manual_seed(derive_seed(self.seed, self.epoch, index))
            return self.dataset[index]


class EpochSampler(Sampler[int]):
    """This rank's share of a permutation drawn from (seed, epoch).

    With several ranks the permutation is padded by wrapping around to a multiple of
    ``world_size``, so every rank takes the same number of steps (as ``DistributedSampler``).
    """

    def __init__(self, size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.size, self.seed, self.epoch, self.rank, self.world_size = size, seed, epoch, rank, world_size

    def __len__(self) -> int:
        return math.ceil(self.size / self.world_size)

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.size, generator=epoch_generator(self.seed, self.epoch)).tolist()
        padded = len(self) * self.world_size
        order += order[: padded - self.size]
        return iter(order[self.rank::self.world_size])


def epoch_loader(dataset: Dataset, batch_size: int, *, seed: int, epoch: int, drop_last: bool = False,
                 num_workers: int = 0, pin_memory: bool = False, rank: int = 0, world_size: int = 1) -> DataLoader:
    """The shuffled, augmented batches of ``epoch``: a function of (seed, epoch) alone.

    Use a different ``seed`` (e.g. ``derive_seed(seed, "arch")``) for each stream of one run.
    """
    return DataLoader(
        SeededSamples(dataset, seed, epoch), batch_size=batch_size,
        sampler=EpochSampler(len(dataset), seed, epoch, rank, world_size),  # type: ignore[arg-type]
        drop_last=drop_last, num_workers=num_workers, pin_memory=pin_memory,
        generator=epoch_generator(derive_seed(seed, "workers"), epoch),
    )


def eval_loader(dataset: Dataset, batch_size: int, *, num_workers: int = 0, pin_memory: bool = False,
                rank: int = 0, world_size: int = 1) -> DataLoader:
    """Every sample exactly once, in order; with several ranks each takes a disjoint slice, unpadded."""
    if world_size > 1:
        dataset = Subset(dataset, range(rank, len(dataset), world_size))  # type: ignore[arg-type]
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(0))


def balanced_indices(labels: Sequence[int] | np.ndarray, limit: int) -> np.ndarray:
    """``limit`` indices, class-balanced (counts differ by at most one), deterministic, ascending.

    Classes take turns in index order: the first image of each class, then the second of each, ...
    """
    labels = np.asarray(labels)
    if limit >= len(labels):
        return np.arange(len(labels))
    rank_in_class = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank_in_class[members] = np.arange(len(members))
    order = np.lexsort((labels, rank_in_class))  # by rank within class, then class id
    return np.sort(order[:limit])


def take(dataset: Dataset, limit: int | None) -> Dataset:
    """The first ``limit`` samples, class-balanced when the dataset has ``targets``; all when None."""
    if limit is None or limit >= len(dataset):  # type: ignore[arg-type]
        return dataset
    targets = getattr(dataset, "targets", None)
    indices = balanced_indices(targets, limit) if targets is not None else np.arange(limit)
    subset = Subset(dataset, indices.tolist())
    if targets is not None:
        subset.targets = [int(targets[i]) for i in indices]  # type: ignore[attr-defined]
    return subset
