"""Parameter and multiply-add counts of the CNN networks, as the paper's Tables 1 and 3 report them.

Parameters exclude the auxiliary tower (as the official ``count_parameters_in_MB``) and a search
network's alphas (the official code kept them outside ``model.parameters()``). Multiply-adds count
convolutions (grouped and depthwise included) and linear layers for one image in eval mode, the
usual convention; pooling, BatchNorm, activations and additions are not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from darts.genotypes import CNNGenotype
from darts.spaces.cnn.eval_network import NetworkCIFAR, NetworkImageNet


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    arch = {id(p) for p in getattr(model, "arch_parameters", list)()}
    return sum(
        p.numel() for name, p in model.named_parameters()
        if id(p) not in arch and not (exclude_auxiliary and "auxiliary" in name)
    )


def count_mult_adds(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass on one input of ``input_shape`` = (channels, height, width)."""
    total = 0

    def conv(module: nn.Conv2d, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)

    def linear(module: nn.Linear, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


@dataclass(frozen=True)
class EvalSetting:
    """A dataset's evaluation network: its class, classes and input resolution (its size, cells and
    channels, is a parameter: params ``train_cifar10`` / ``train_imagenet``)."""

    network: type[nn.Module]
    classes: int
    resolution: int


EVAL_SETTINGS: dict[str, EvalSetting] = {
    "cifar10": EvalSetting(NetworkCIFAR, classes=10, resolution=32),
    "imagenet": EvalSetting(NetworkImageNet, classes=1000, resolution=224),
}


def network_info(dataset: str, genotype: CNNGenotype, layers: int, channels: int) -> dict[str, Any]:
    """Counts of the evaluation network of ``dataset`` with ``layers`` cells and ``channels`` initial channels."""
    setting = EVAL_SETTINGS[dataset]
    model = setting.network(channels, setting.classes, layers, True, genotype)
    return {
        "dataset": dataset,
        "network": setting.network.__name__,
        "layers": layers,
        "channels": channels,
        "classes": setting.classes,
        "resolution": setting.resolution,
        "params": count_parameters(model),
        "params_auxiliary": count_parameters(model, exclude_auxiliary=False) - count_parameters(model),
        "mult_adds": count_mult_adds(model, (3, setting.resolution, setting.resolution)),
        "mult_adds_per": "image",
    }
