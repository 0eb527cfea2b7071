"""Reading the datasets' files without torch: CIFAR-10 pickles, word-level token streams, ImageFolder
listings. The data stage counts with these (and stays quick to start); the loaders build on them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Callable

import numpy as np

from darts.data.registry import IMAGENET_HELP
from darts.errors import DartsError

# ---- CIFAR-10: the official python pickles --------------------------------------------------------

CIFAR_BATCHES_DIR = "cifar-10-batches-py"
CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_BATCH = "test_batch"
CIFAR_CLASSES = 10


class _BatchUnpickler(pickle.Unpickler):
    """Only numpy arrays and plain containers: a CIFAR batch needs nothing else, so no code runs.

    The official batches are Python 2 pickles (protocol 2, bytes keys); a batch re-pickled by Python 3
    (torchvision reads it too) has str keys and, at protocol 2, bytes as ``_codecs.encode(str, "latin1")``,
    at protocol 5 arrays as ``numpy._core.numeric._frombuffer``: pure functions, allowed as well.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR batch")
        return super().find_class(module, name)


def cifar_batches_dir(root: str | Path) -> Path:
    """The folder holding the batches: ``root/cifar-10-batches-py`` (the official layout) or root."""
    root = Path(root)
    for candidate in (root / CIFAR_BATCHES_DIR, root):
        if (candidate / CIFAR_TRAIN_BATCHES[0]).exists():
            return candidate
    raise DartsError(f"{root}: no CIFAR-10 batches (expected {CIFAR_BATCHES_DIR}/data_batch_1); "
                     f"run `darts data cifar10 --out {root}`")


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return _BatchUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DartsError(f"{path}: file not found") from None
    except OSError as exc:
        raise DartsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, MemoryError) as exc:
        raise DartsError(f"{path}: not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None


def _field(batch: Any, name: str) -> Any:
    """``batch[name]`` under a bytes key (Python 2 pickles, the official ones) or a str key (Python 3)."""
    if not isinstance(batch, dict):
        raise KeyError(name)
    for key in (name.encode(), name):
        if key in batch:
            return batch[key]
    raise KeyError(name)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images (N, 32, 32, 3) uint8 RGB and labels (N,) int64."""
    batch = _unpickle(path)
    try:
        data, labels = np.asarray(_field(batch, "data")), np.asarray(_field(batch, "labels"), dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise DartsError(f"{path}: not a CIFAR-10 batch (no {exc})") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DartsError(f"{path}: expected uint8 data of shape (N, 3072) and N labels, "
                         f"got {data.dtype} {data.shape} and {len(labels)} labels")
    if labels.size and not (labels.min() >= 0 and labels.max() < CIFAR_CLASSES):
        raise DartsError(f"{path}: labels outside 0..{CIFAR_CLASSES - 1}")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # R, G, B planes -> HWC
    return np.ascontiguousarray(images), labels


def load_cifar10(root: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_x, train_y, test_x, test_y)``: uint8 NHWC images and int64 labels, in file order."""
    folder = cifar_batches_dir(root)
    train = [read_cifar_batch(folder / name) for name in CIFAR_TRAIN_BATCHES]
    test_x, test_y = read_cifar_batch(folder / CIFAR_TEST_BATCH)
    return np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train]), test_x, test_y


def cifar_label_names(root: str | Path) -> list[str]:
    meta = _unpickle(cifar_batches_dir(root) / "batches.meta")
    try:
        return [name.decode() if isinstance(name, bytes) else str(name) for name in _field(meta, "label_names")]
    except (KeyError, TypeError) as exc:
        raise DartsError(f"{cifar_batches_dir(root) / 'batches.meta'}: not CIFAR-10 metadata (no {exc})") from None


def describe_cifar10(root: str | Path) -> dict[str, Any]:
    """Split sizes and per-class counts, for the manifest."""
    _, train_y, _, test_y = load_cifar10(root)
    return {
        "splits": {"train": int(len(train_y)), "test": int(len(test_y))},
        "classes": CIFAR_CLASSES,
        "class_names": cifar_label_names(root),
        "class_counts": {"train": np.bincount(train_y, minlength=CIFAR_CLASSES).tolist(),
                         "test": np.bincount(test_y, minlength=CIFAR_CLASSES).tolist()},
    }


# ---- word-level corpora (PTB, WikiText-2) ---------------------------------------------------------

EOS = "<eos>"
TEXT_SPLITS = ("train", "valid", "test")


class Dictionary:
    """Word <-> id, ids in order of first appearance."""

    def __init__(self) -> None:
        self.word2idx: dict[str, int] = {}
        self.idx2word: list[str] = []

    def add_word(self, word: str) -> int:
        index = self.word2idx.get(word)
        if index is None:
            index = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return index

    def __len__(self) -> int:
        return len(self.idx2word)


def read_tokens(path: Path, dictionary: Dictionary) -> tuple[list[int], int]:
    """Word ids of a file (whitespace-split words, ``<eos>`` after every line; UTF-8), adding new
    words to ``dictionary``; and the number of lines."""
    add, ids, lines = dictionary.add_word, [], 0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                ids.extend(add(word) for word in line.split())
                ids.append(add(EOS))
                lines += 1
    except FileNotFoundError:
        raise DartsError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        raise DartsError(f"{path}: not UTF-8 text ({exc})") from None
    except OSError as exc:  # a directory where the file should be, unreadable, ...
        raise DartsError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return ids, lines


def describe_text(root: str | Path) -> dict[str, Any]:
    """Token counts (with ``<eos>``), lines and vocabulary size, for the manifest."""
    dictionary, splits, lines = Dictionary(), {}, {}
    for split in TEXT_SPLITS:
        ids, lines[split] = read_tokens(Path(root) / f"{split}.txt", dictionary)
        splits[split] = len(ids)
    return {"splits": splits, "lines": lines, "vocab_size": len(dictionary)}


# ---- ImageFolder roots (ImageNet) ----------------------------------------------------------------

IMAGEFOLDER_SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's


def imagefolder_split(root: str | Path, split: str) -> Path:
    folder = Path(root) / split
    if not folder.is_dir():
        raise DartsError(f"{folder}: not found; an ImageNet root needs train/<wnid>/ and val/<wnid>/. {IMAGENET_HELP}")
    return folder


def class_folders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir())


def scan_imagefolder(root: str | Path) -> dict[str, Any]:
    """What ImageFolder would find under ``train/`` and ``val/``: counts per class, the relative
    path of every image, and a hash of the listing (paths and sizes), so that a changed, added or
    removed image changes ``listing_sha256``."""
    root = Path(root)
    listing = hashlib.sha256()
    splits, class_counts, images = {}, {}, []
    classes: list[str] | None = None
    for split in IMAGEFOLDER_SPLITS:
        folder = imagefolder_split(root, split)
        names = class_folders(folder)
        if classes is not None and names != classes:
            raise DartsError(f"{root}: val/ and train/ have different class folders ({len(names)} vs {len(classes)})")
        classes, counts = names, []
        for name in names:
            found = sorted(
                os.path.relpath(os.path.join(dirpath, file), root)
                for dirpath, _, files in os.walk(folder / name, followlinks=True)
                for file in files if file.lower().endswith(IMAGE_EXTENSIONS)
            )
            counts.append(len(found))
            for rel in found:
                listing.update(f"{rel}\t{os.stat(root / rel).st_size}\n".encode())
            images.extend(found)
        splits[split], class_counts[split] = sum(counts), counts
        if not splits[split]:
            raise DartsError(f"{folder}: no images")
    return {
        "splits": splits, "classes": len(classes or []), "class_names": classes, "class_counts": class_counts,
        "file_count": len(images), "listing_sha256": listing.hexdigest(), "images": images,
    }


def describe_imagefolder(root: str | Path) -> dict[str, Any]:
    found = scan_imagefolder(root)
    del found["images"]
    return found


DESCRIBE: dict[str, Callable[[Path], dict[str, Any]]] = {
    "cifar10": describe_cifar10, "ptb": describe_text, "wikitext2": describe_text, "imagenet": describe_imagefolder,
}
