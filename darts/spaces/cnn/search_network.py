"""The continuous relaxation of the CNN space (Sect. 2.2, 3.1.1): every edge of a cell is a mixed op,
the softmax(alpha)-weighted sum of all eight primitives, and one alpha matrix (14 x 8) is shared by
all normal cells and one by all reduction cells.

The alphas are ``nn.Parameter``s of the module, kept apart by ``arch_parameters()`` and
``weight_parameters()``, so the bilevel step can give each its own optimizer and evaluate the
network at other weights with ``torch.func.functional_call`` instead of copying it.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint

from darts.genotypes import CNN_STEPS, CNNGenotype, derive_cnn
from darts.spaces.cnn.operations import (
    OPS, PRIMITIVES, DilConv, FactorizedReduce, ReLUConvBN, SepConv, Zero, reduction_indices,
)

ARCH_PARAMETER_NAMES = ("alphas_normal", "alphas_reduce")


class MixedOp(nn.Module):
    """One relaxed edge (Eq. 2): sum over primitives of w_o * o(x). Pools get a non-affine BatchNorm,
    as the other ops end in one, so no op wins by output scale alone."""

    def __init__(self, C: int, stride: int):
        super().__init__()
        self._ops = nn.ModuleList()
        for primitive in PRIMITIVES:
            op = OPS[primitive](C, stride, False)
            if "pool" in primitive:
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            self._ops.append(op)
        # The four convolutions all begin with ReLU(x): computed once per edge, not four times
        # (same values and gradients, an eighth less activation memory in the search network).
        self._starts_with_shared_relu = [isinstance(op, (SepConv, DilConv)) for op in self._ops]

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        activated = F.relu(x)
        out: torch.Tensor | None = None
        for w, op, shared in zip(weights.unbind(), self._ops, self._starts_with_shared_relu):
            if isinstance(op, Zero):  # w * 0 adds nothing to the value or to any gradient
                continue
            y = w * (_after_first_layer(op.op, activated) if shared else op(x))
            out = y if out is None else out + y
        assert out is not None
        return out


def _after_first_layer(sequence: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    for layer in itertools.islice(sequence, 1, None):
        x = layer(x)
    return x


class SearchCell(nn.Module):
    """Two preprocessed inputs, ``steps`` intermediate nodes each summing a mixed op from every earlier
    state, output = concat of the last ``multiplier`` nodes. Reduction cells stride the input edges."""

    def __init__(
        self, steps: int, multiplier: int, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool
    ):
        super().__init__()
        self.reduction = reduction
        self._steps = steps
        self._multiplier = multiplier
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine=False)
        self._ops = nn.ModuleList(
            MixedOp(C, 2 if reduction and j < 2 else 1) for i in range(steps) for j in range(2 + i)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        offset = 0
        for _ in range(self._steps):
            node = self._ops[offset](states[0], weights[offset])
            for j in range(1, len(states)):
                node = node + self._ops[offset + j](states[j], weights[offset + j])
            offset += len(states)
            states.append(node)
        return torch.cat(states[-self._multiplier:], dim=1)


class SearchNetwork(nn.Module):
    """The search network: stem, ``layers`` cells (reductions at layers//3 and 2*layers//3, channels
    doubled there), global pooling, linear classifier; plus the two alpha matrices.

    ``track_running_stats=True`` is the official code (BatchNorm keeps running averages, used in eval
    mode); False is the paper's "always batch-specific statistics" (App. A.1.1).

    A lever for the GPU's memory, off by default (the paper's math):

    - ``checkpoint_cells``: each cell's activations are recomputed in the backward pass instead of
      kept (``torch.utils.checkpoint``, non-reentrant), so a forward holds only the cells' inputs.
      Same values and gradients (first and second order, double backward included); the
      recomputation sees the tensors the forward used, also under ``functional_call`` (which has
      swapped the module's own back by then), and updates BatchNorm statistics on throw-away
      copies, so running averages count each batch once, as without checkpointing.

    Under a caller's autocast (the search's ``bf16``) the stem and the cells run in low precision,
    while the alphas' softmax, the pooling, the classifier and the logits stay float32.
    """

    def __init__(
        self,
        C: int,
        num_classes: int,
        layers: int,
        steps: int = CNN_STEPS,
        multiplier: int = CNN_STEPS,
        stem_multiplier: int = 3,
        alpha_init: Literal["randn", "zeros"] = "randn",
        alpha_init_scale: float = 1e-3,
        track_running_stats: bool = True,
        checkpoint_cells: bool = False,
    ):
        super().__init__()
        self.checkpoint_cells = checkpoint_cells
        if not 1 <= multiplier <= steps:
            raise ValueError(f"multiplier must be in 1..steps={steps}, got {multiplier}")
        self._steps = steps
        self._multiplier = multiplier
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_indices(layers)
            if reduction:
                C_curr *= 2
            self.cells.append(SearchCell(steps, multiplier, C_prev_prev, C_prev, C_curr, reduction, reduction_prev))
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, multiplier * C_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        if not track_running_stats:
            _use_batch_statistics(self)

        shape = (sum(2 + i for i in range(steps)), len(PRIMITIVES))
        self.alphas_normal = nn.Parameter(_initial_alphas(shape, alpha_init, alpha_init_scale))
        self.alphas_reduce = nn.Parameter(_initial_alphas(shape, alpha_init, alpha_init_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device = x.device.type
        with torch.autocast(device, enabled=False):  # float32 under a caller's autocast
            weights_normal = F.softmax(self.alphas_normal, dim=-1)
            weights_reduce = F.softmax(self.alphas_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        recompute = self.checkpoint_cells and torch.is_grad_enabled()
        for cell in self.cells:
            weights = weights_reduce if cell.reduction else weights_normal
            s0, s1 = s1, (_checkpointed(cell, s0, s1, weights) if recompute else cell(s0, s1, weights))
        if not torch.is_autocast_enabled(device):
            return self.classifier(self.global_pooling(s1).flatten(1))
        with torch.autocast(device, enabled=False):  # float32 logits under a caller's autocast
            return self.classifier(self.global_pooling(s1.float()).flatten(1))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas_normal, self.alphas_reduce]

    def named_weight_parameters(self) -> Iterator[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in self.named_parameters() if n not in ARCH_PARAMETER_NAMES)

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in self.named_weight_parameters()]

    @torch.no_grad()
    def genotype(self) -> CNNGenotype:
        """The discrete cell of the current alphas (Sect. 2.4)."""
        genotype = derive_cnn(
            F.softmax(self.alphas_normal, dim=-1).cpu(), F.softmax(self.alphas_reduce, dim=-1).cpu(), self._steps
        )
        concat = tuple(range(2 + self._steps - self._multiplier, 2 + self._steps))
        return dataclasses.replace(genotype, normal_concat=concat, reduce_concat=concat)


def _checkpointed(cell: SearchCell, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``cell(s0, s1, weights)``, its activations recomputed in the backward pass.

    The recomputation runs ``cell`` on the parameter and buffer tensors this call saw (under
    ``functional_call`` these are not the module's own once the call has returned), the buffers
    cloned: a BatchNorm in training mode would otherwise count this batch in its running averages
    a second time. The random state is replayed (``preserve_rng_state``)."""
    params = dict(cell.named_parameters())
    buffers = dict(cell.named_buffers())
    forward_done = False

    def run(s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nonlocal forward_done
        if not forward_done:
            forward_done = True
            return cell(s0, s1, weights)
        state = params | {n: b.clone() for n, b in buffers.items()}
        return functional_call(cell, state, (s0, s1, weights))

    return checkpoint(run, s0, s1, weights, use_reentrant=False, preserve_rng_state=True)


def _initial_alphas(shape: tuple[int, int], alpha_init: str, scale: float) -> torch.Tensor:
    """``randn``: scale * N(0, 1), the official code; ``zeros``: the paper's equal attention to all ops."""
    if alpha_init == "randn":
        return scale * torch.randn(shape)
    if alpha_init == "zeros":
        return torch.zeros(shape)
    raise ValueError(f"alpha_init must be 'randn' or 'zeros', got {alpha_init!r}")


def _use_batch_statistics(module: nn.Module) -> None:
    """Make every BatchNorm normalise with the current batch's statistics, in training and eval alike."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.track_running_stats = False
            m.running_mean = None
            m.running_var = None
            m.num_batches_tracked = None
