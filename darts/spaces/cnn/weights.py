"""Loading the official pretrained weights (or any state dict in their layout) into our evaluation networks.

The official checkpoints were written by PyTorch 0.3: plain state dicts (CIFAR-10) or
``{"state_dict": ...}`` training checkpoints (ImageNet), possibly with the ``module.`` prefix of
``nn.DataParallel``, and without the ``num_batches_tracked`` buffers that later PyTorch added to
BatchNorm (BatchNorm's own loader fills those in). Files are read with ``weights_only=True``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from darts.errors import DartsError

_PREFIX = "module."
_LEGACY_OPTIONAL = "num_batches_tracked"


def load_official_state_dict(model: nn.Module, source: str | Path | Mapping[str, Any]) -> None:
    """Load ``source`` (a file or a mapping) into ``model`` strictly; DartsError names the first bad key."""
    where = str(source) if isinstance(source, (str, Path)) else "state dict"
    raw = _read(Path(source)) if isinstance(source, (str, Path)) else source
    state = _unwrap(raw, where)
    check_state_dict(model, state, where)
    model.load_state_dict(state, strict=True)


def _read(path: Path) -> Any:
    if not path.is_file():
        raise DartsError(f"{path}: weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file fails in many ways inside the unpickler
        message = str(exc)
        if "Unsupported global" in message:
            name = re.search(r"GLOBAL (\S+)", message)
            raise DartsError(f"{path}: refused by safe loading (weights_only=True): it holds "
                             f"{name.group(1) if name else 'objects'}, not only tensors") from None
        detail = re.search(r"WeightsUnpickler error:\s*(.+)", message)
        reason = detail.group(1) if detail else (message.splitlines()[0] if message else type(exc).__name__)
        raise DartsError(f"{path}: not a loadable weights file ({reason.strip()})") from None


def _unwrap(raw: Any, where: str) -> dict[str, torch.Tensor]:
    """The tensor mapping inside a checkpoint, without a DataParallel ``module.`` prefix."""
    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not raw:
        raise DartsError(f"{where}: expected a state dict (a mapping of names to tensors), got {type(raw).__name__}")
    for key, value in raw.items():
        if not isinstance(value, torch.Tensor):
            raise DartsError(f"{where}: '{key}' is a {type(value).__name__}, not a tensor; not a state dict")
    if all(str(k).startswith(_PREFIX) for k in raw):
        return {k[len(_PREFIX):]: v for k, v in raw.items()}
    return dict(raw)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], where: str = "state dict") -> None:
    """Raise DartsError at the first key (in the model's order) that is missing, unexpected or mis-shaped."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            if key.endswith(_LEGACY_OPTIONAL):
                continue
            raise DartsError(f"{where}: missing key '{key}' (shape {tuple(tensor.shape)}); "
                             f"is this the right network, genotype and size?")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise DartsError(f"{where}: key '{key}' has shape {tuple(state[key].shape)}, "
                             f"the network needs {tuple(tensor.shape)}")
    for key in state:
        if key not in expected:
            raise DartsError(f"{where}: unexpected key '{key}'; is this the right network, genotype and size?")
