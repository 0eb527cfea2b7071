"""CIFAR-10 from the official python pickles, the search split, and the DARTS augmentations.

The pickles are read directly (``darts.data.formats``), not through
``torchvision.datasets.CIFAR10``, whose md5 check rejects any subset such as the test mirror's
cifar10-mini.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from darts.data import formats, manifest
from darts.data.formats import CIFAR_CLASSES as NUM_CLASSES  # noqa: F401  (re-exported API)
from darts.data.formats import cifar_label_names as label_names  # noqa: F401
from darts.data.loading import balanced_indices

# Per-channel mean and std of the 50k training images (the values the official code uses).
CIFAR_MEAN = (0.49139968, 0.48215827, 0.44653124)
CIFAR_STD = (0.24703233, 0.24348505, 0.26158768)


def load_cifar10(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, test_x, test_y)`` of the folder, its files first checked against its manifest
    (or SHA256SUMS): ``darts.data.manifest.verified``. A changed or corrupted batch is an error naming it."""
    manifest.verified("cifar10", root)
    return formats.load_cifar10(root)


def search_split(n: int, train_portion: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the two halves of the search: the first ``floor(portion * n)`` images train the
    weights, the rest the architecture (by index order, as the official code splits)."""
    if not 0 < train_portion < 1:
        raise ValueError(f"train_portion must lie in (0, 1), got {train_portion}")
    split = int(np.floor(train_portion * n))
    return np.arange(split), np.arange(split, n)


class Cutout:
    """Zero a ``length`` x ``length`` square (clipped at the border) centred uniformly at random
    (DeVries & Taylor 2017), applied after normalisation as in the official code."""

    def __init__(self, length: int):
        self.length = length

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        y, x = int(torch.randint(h, ())), int(torch.randint(w, ()))
        half = self.length // 2
        image = image.clone()
        image[..., max(y - half, 0):min(y + half, h), max(x - half, 0):min(x + half, w)] = 0
        return image

    def __repr__(self) -> str:
        return f"Cutout(length={self.length})"


def _to_normalised() -> list[Callable]:
    return [v2.ToDtype(torch.float32, scale=True), v2.Normalize(CIFAR_MEAN, CIFAR_STD)]


def train_transform(cutout: int = 0) -> v2.Compose:
    """Random crop 32 with 4 pixels of zero padding, horizontal flip, normalise, then cutout."""
    steps = [v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *_to_normalised()]
    if cutout:
        steps.append(Cutout(cutout))
    return v2.Compose(steps)


def eval_transform() -> v2.Compose:
    return v2.Compose(_to_normalised())


class CifarImages(Dataset):
    """In-memory images with a transform: ``(transform(CHW uint8 image), label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable):
        self.images = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        self.targets = [int(y) for y in labels]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.targets[index]


def _capped(images: np.ndarray, labels: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    if limit is None:
        return images, labels
    keep = balanced_indices(labels, limit)
    return images[keep], labels[keep]


def train_dataset(images: np.ndarray, labels: np.ndarray, *, cutout: int = 0, limit: int | None = None) -> CifarImages:
    """Augmented training images (cutout when ``cutout`` > 0), capped class-balanced at ``limit``."""
    return CifarImages(*_capped(images, labels, limit), train_transform(cutout))


def eval_dataset(images: np.ndarray, labels: np.ndarray, *, limit: int | None = None) -> CifarImages:
    return CifarImages(*_capped(images, labels, limit), eval_transform())


def search_datasets(root: str | Path, train_portion: float, train_images: int | None = None, cutout: int = 0
                    ) -> tuple[CifarImages, CifarImages]:
    """The two halves of the search split (weights, architecture), both with the training augmentation
    (the official train_search.py: cutout only with its --cutout flag, off by default; params search_cnn.cutout).

    ``train_images`` caps the images used in all: each half is capped class-balanced at its share.
    """
    images, labels, _, _ = load_cifar10(root)
    weights_idx, arch_idx = search_split(len(labels), train_portion)
    weights_cap = arch_cap = None
    if train_images is not None:
        weights_cap = max(1, int(np.floor(train_portion * train_images)))
        arch_cap = max(1, train_images - weights_cap)
    return (CifarImages(*_capped(images[weights_idx], labels[weights_idx], weights_cap), train_transform(cutout)),
            CifarImages(*_capped(images[arch_idx], labels[arch_idx], arch_cap), train_transform(cutout)))


def manifest_summary(root: str | Path) -> dict[str, Any]:
    """The data summary for meta.json and checkpoint keys, of the files as verified (``manifest.verified``:
    against the manifest `darts data` wrote, or a mirror folder's SHA256SUMS; refused with neither)."""
    return manifest.folder_summary("cifar10", root)
