"""The evaluation networks built from a genotype (App. A.2.1, A.2.3): NetworkCIFAR and, for the mobile
ImageNet setting, NetworkImageNet, each with its auxiliary tower and drop path.

Module names follow the official release, so its pretrained weights load with strict matching
(see darts.spaces.cnn.weights). Set ``drop_path_prob`` from the training loop (the official recipe
ramps it linearly from 0 to its final value over training).
"""

from __future__ import annotations

import torch
from torch import nn

from darts.genotypes import CNNGenotype
from darts.spaces.cnn.operations import OPS, FactorizedReduce, Identity, ReLUConvBN, reduction_indices


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of one path with probability ``drop_prob``, scaling survivors by 1/(1 - drop_prob)."""
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * (mask / keep)


class Cell(nn.Module):
    """A discrete cell: each node sums two ops of earlier states; output = concat of the genotype's nodes."""

    def __init__(
        self, genotype: CNNGenotype, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_prev_prev, C)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        edges = genotype.reduce if reduction else genotype.normal
        self._concat = genotype.reduce_concat if reduction else genotype.normal_concat
        self.multiplier = len(self._concat)
        self._indices = [index for _, index in edges]
        self._ops = nn.ModuleList(OPS[op](C, 2 if reduction and index < 2 else 1, True) for op, index in edges)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        dropping = self.training and drop_prob > 0.0
        for first in range(0, len(self._ops), 2):
            node = None
            for k in (first, first + 1):
                op = self._ops[k]
                h = op(states[self._indices[k]])
                if dropping and not isinstance(op, Identity):
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self._concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """Auxiliary classifier on the 8x8 output of the cell at 2/3 of the depth (loss weight 0.4 in training)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AuxiliaryHeadImageNet(nn.Module):
    """Auxiliary classifier on the 7x7 output of the cell at 2/3 of the depth. As in the official
    network (and its pretrained weights) there is no BatchNorm after the 2x2 convolution."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


def _build_cells(
    genotype: CNNGenotype, layers: int, C_stem_prev_prev: int, C_stem_prev: int, C: int, reduction_prev: bool
) -> tuple[nn.ModuleList, int, int]:
    """The cells, the channels of the last one, and the channels where the auxiliary head attaches."""
    cells = nn.ModuleList()
    C_prev_prev, C_prev, C_curr = C_stem_prev_prev, C_stem_prev, C
    C_auxiliary = C_prev
    for i in range(layers):
        reduction = i in reduction_indices(layers)
        if reduction:
            C_curr *= 2
        cell = Cell(genotype, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        if i == 2 * layers // 3:
            C_auxiliary = C_prev
    return cells, C_prev, C_auxiliary


class _EvalNetwork(nn.Module):
    """What both evaluation networks share: the cell loop, the auxiliary tap, the classifier."""

    cells: nn.ModuleList
    auxiliary_head: nn.Module | None
    global_pooling: nn.Module
    classifier: nn.Linear

    def __init__(self, layers: int, auxiliary: bool):
        super().__init__()
        self._layers = layers
        self._auxiliary = auxiliary
        self.drop_path_prob = 0.0

    def _classify(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == 2 * self._layers // 3 and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, logits_aux


class NetworkCIFAR(_EvalNetwork):
    """CIFAR-10 evaluation network (20 cells, 36 channels in the paper): 3x3 stem of 3C channels, cells.

    ``forward`` returns ``(logits, logits_aux)``; ``logits_aux`` is None unless training with the tower.
    """

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: CNNGenotype,
                 stem_multiplier: int = 3):
        super().__init__(layers, auxiliary)
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_stem, 3, padding=1, bias=False), nn.BatchNorm2d(C_stem))
        self.cells, C_prev, C_auxiliary = _build_cells(genotype, layers, C_stem, C_stem, C, reduction_prev=False)
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_auxiliary, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s = self.stem(x)
        return self._classify(s, s)


class NetworkImageNet(_EvalNetwork):
    """ImageNet evaluation network, mobile setting (14 cells, 48 channels in the paper): two stems
    reducing 224x224 by 4 and 8, so the cells see 28, 14 and 7 pixels.

    ``forward`` returns ``(logits, logits_aux)``; ``logits_aux`` is None unless training with the tower.
    """

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool, genotype: CNNGenotype):
        super().__init__(layers, auxiliary)
        self.stem0 = nn.Sequential(
            nn.Conv2d(3, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.cells, C_prev, C_auxiliary = _build_cells(genotype, layers, C, C, C, reduction_prev=True)
        self.auxiliary_head = AuxiliaryHeadImageNet(C_auxiliary, num_classes) if auxiliary else None
        # The official network pools with AvgPool2d(7), the same at 224x224; adaptive pooling also
        # serves the smaller images of a CPU-sized subset.
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = self.stem0(x)
        return self._classify(s0, self.stem1(s0))
