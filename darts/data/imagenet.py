"""ImageNet (ILSVRC-2012) as an ImageFolder root, referenced in place: ``train/<wnid>/*.JPEG`` and
``val/<wnid>/*.JPEG``. The standard 224 pipeline of the official code; every image becomes RGB
(ImageNet has greyscale and CMYK JPEGs). The number of classes comes from the data, so a sample
such as the test mirror's 10-class imagenet-mini trains a 10-way head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from darts.data import manifest
from darts.data.formats import class_folders, imagefolder_split
from darts.data.loading import take  # noqa: F401  (re-exported: caps on ImageFolders)
from darts.data.registry import IMAGENET_HELP
from darts.errors import DartsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def rgb_loader(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def _to_normalised() -> list:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def train_transform() -> v2.Compose:
    """Random resized crop 224, horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.2), normalise."""
    return v2.Compose([
        v2.RandomResizedCrop(224), v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2), *_to_normalised(),
    ])


def eval_transform() -> v2.Compose:
    """Resize the shorter side to 256, centre crop 224, normalise."""
    return v2.Compose([v2.Resize(256), v2.CenterCrop(224), *_to_normalised()])


def train_dataset(root: str | Path) -> ImageFolder:
    return ImageFolder(str(imagefolder_split(root, "train")), train_transform(), loader=rgb_loader)


def val_dataset(root: str | Path) -> ImageFolder:
    """The validation images, labelled with the training set's class indices."""
    dataset = ImageFolder(str(imagefolder_split(root, "val")), eval_transform(), loader=rgb_loader)
    train_classes = class_folders(imagefolder_split(root, "train"))
    if dataset.classes != train_classes:
        raise DartsError(f"{root}: val/ and train/ have different class folders "
                         f"({len(dataset.classes)} vs {len(train_classes)})")
    return dataset


def num_classes(dataset: Any) -> int:
    """Classes of an ImageFolder (or a Subset of one)."""
    while not hasattr(dataset, "classes"):
        dataset = dataset.dataset
    return len(dataset.classes)


def manifest_summary(root: str | Path) -> dict[str, Any]:
    """The data summary for meta.json and checkpoint keys, of the root as verified now
    (``manifest.verified_imagefolder``: every image's size, a sample's sha256); its digest covers the
    listing hash, so changed images change it."""
    return manifest.summarize(manifest.verified_imagefolder(root))


def resolve_root(explicit: str | Path | None, params: Any) -> Path:
    """The ImageNet root to use: ``explicit``, else ``data.imagenet_root``, else the root that
    `darts data imagenet` recorded in ``<data.root>/imagenet/manifest.json``."""
    if explicit is not None:
        return Path(explicit)
    if params.data.imagenet_root:
        return Path(params.data.imagenet_root)
    recorded = Path(params.data.root) / "imagenet"
    if manifest.path(recorded).exists():
        return Path(manifest.read(recorded)["root"])
    raise DartsError(f"no ImageNet data: {IMAGENET_HELP}")


def require_root(explicit: str | Path | None, params: Any) -> Path:
    """``resolve_root``, which must hold ``train/``; otherwise the helpful error naming the root."""
    root = resolve_root(explicit, params)
    if not (root / "train").is_dir():
        raise DartsError(f"no ImageNet data at {root} (no train/ folder): {IMAGENET_HELP}")
    recorded = Path(params.data.root) / "imagenet"
    manifest.verified_imagefolder(root, manifest.read(recorded) if manifest.path(recorded).exists() else None)
    return root
