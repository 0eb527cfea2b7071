"""The recurrent DARTS cell (Sect. 3.1.2): a DAG of gated highway updates.

Node 0 mixes the input and the previous hidden state: ``(c, h~) = [x_t, h_{t-1}] W0`` and
``s0 = h_{t-1} + sigmoid(c) * (tanh(h~) - h_{t-1})``. Every later node i applies, to a predecessor
state s_j, ``(c, h~) = s_j W_i`` and ``s = s_j + sigmoid(c) * (f(h~) - s_j)``; the cell output is
the mean of the learned nodes. The evaluation cell has one (op, predecessor) per node; the search
cell sums every (op, predecessor) pair of a node weighted by softmax(alpha), with non-affine
BatchNorm on every node. Dropout masks on the cell input (x) and on each state fed to a linear map
(h) are drawn once per forward pass and shared by all time steps and nodes.

Speed: the input half of W0 is applied to all time steps in one matmul before the time loop, and
everything else that does not change over time (the op weights of each node) is prepared once per
forward pass; inside the loop a search node costs one matmul for all its predecessors.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from darts.genotypes import RNN_PRIMITIVES
from darts.genotypes import RNN_STEPS as STEPS  # the cell's nodes: one home, beside the genotype
from darts.spaces.rnn.dropout import dropout_mask

INIT_RANGE = 0.04  # uniform init of W0, W_i and the embedding (tied decoder): the official INITRANGE

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}


def num_edges(steps: int = STEPS) -> int:
    """Node i (0-based) has i + 1 predecessors: 1 + 2 + ... + steps edges (36 for 8 nodes)."""
    return steps * (steps + 1) // 2


class RecurrentCell(nn.Module):
    """What the evaluation and search cells share: the weights, the masks and the time loop.

    ``forward(inputs (T, B, ninp), hidden (B, nhid), probs=None) -> (states (T, B, nhid), last (B, nhid))``
    (``probs`` = softmax(alpha), for the search cell). Subclasses define ``_plan``, whatever a
    forward pass can compute once for all time steps, and ``_step``, one time step. Parameter
    names follow the official cell (``_W0``, ``_Ws.<i>``) so state dicts line up.
    """

    def __init__(self, ninp: int, nhid: int, dropoutx: float, dropouth: float, steps: int = STEPS):
        super().__init__()
        self.ninp, self.nhid, self.steps = ninp, nhid, steps
        self.dropoutx, self.dropouth = dropoutx, dropouth
        self._W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE))
        self._Ws = nn.ParameterList(
            nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE)) for _ in range(steps)
        )

    def forward(self, inputs: Tensor, hidden: Tensor, probs: Tensor | None = None) -> tuple[Tensor, Tensor]:
        batch = inputs.size(1)
        x_mask = dropout_mask((batch, self.ninp), self.dropoutx, inputs) if self.training and self.dropoutx else None
        h_mask = dropout_mask((batch, self.nhid), self.dropouth, inputs) if self.training and self.dropouth else None
        x_part = _masked(inputs, x_mask) @ self._W0[: self.ninp]  # (T, B, 2 nhid): all time steps at once
        w_h0 = self._W0[self.ninp:]
        plan = self._plan(probs)
        outputs = []
        for x_t in x_part.unbind(0):  # unbind, not x_part[t]: its backward does not zero-fill per step
            s0 = self._first_node(x_t, hidden, w_h0, h_mask)
            hidden = self._step(s0, h_mask, plan)
            outputs.append(hidden)
        return torch.stack(outputs), hidden

    def _first_node(self, x_part: Tensor, h_prev: Tensor, w_h0: Tensor, h_mask: Tensor | None) -> Tensor:
        c, h = (x_part + _masked(h_prev, h_mask) @ w_h0).split(self.nhid, dim=-1)
        return h_prev + torch.sigmoid(c) * (torch.tanh(h) - h_prev)

    def _plan(self, probs: Tensor | None) -> Any:
        raise NotImplementedError

    def _step(self, s0: Tensor, h_mask: Tensor | None, plan: Any) -> Tensor:
        """The cell output at one time step, given node 0."""
        raise NotImplementedError

    def matmul_macs_per_token(self) -> int:
        """Multiply-adds of the cell's linear maps for one token (element-wise ops excluded)."""
        raise NotImplementedError


class DARTSCell(RecurrentCell):
    """A discrete cell from a genotype: ``recurrent[i] = (activation, predecessor)`` builds state i+1.

    Each state is multiplied once by the column-concatenation of the maps of all nodes reading it."""

    def __init__(self, ninp: int, nhid: int, dropoutx: float, dropouth: float,
                 recurrent: Sequence[tuple[str, int]], concat: Sequence[int]):
        super().__init__(ninp, nhid, dropoutx, dropouth, steps=len(recurrent))
        for i, (op, pred) in enumerate(recurrent):
            if op not in ACTIVATIONS:
                raise ValueError(f"node {i + 1}: unknown op {op!r}; expected one of {sorted(ACTIVATIONS)}")
            if not 0 <= pred <= i:
                raise ValueError(f"node {i + 1}: predecessor {pred} is not an earlier state (0..{i})")
        if not concat or any(not 0 <= k <= len(recurrent) for k in concat):
            raise ValueError(f"concat {list(concat)} must name states 0..{len(recurrent)}")
        self.recurrent = [(op, int(pred)) for op, pred in recurrent]
        self.concat = [int(k) for k in concat]
        self._readers = [[i for i, (_, pred) in enumerate(self.recurrent) if pred == j] for j in range(self.steps + 1)]

    def _plan(self, probs: Tensor | None) -> list[Tensor | None]:
        """For each state, the concatenated maps of the nodes that read it (None: no reader)."""
        return [torch.cat([self._Ws[i] for i in nodes], dim=1) if nodes else None for nodes in self._readers]

    def _step(self, s0: Tensor, h_mask: Tensor | None, plan: list[Tensor | None]) -> Tensor:
        states = [s0]
        pre: dict[int, Tensor] = {}  # node -> its (c, h~) pre-activation
        for j in range(self.steps + 1):
            if j > 0:
                op, pred = self.recurrent[j - 1]
                c, h = pre.pop(j - 1).split(self.nhid, dim=-1)
                s_prev = states[pred]
                states.append(s_prev + torch.sigmoid(c) * (ACTIVATIONS[op](h) - s_prev))
            if plan[j] is not None:
                projected = (_masked(states[j], h_mask) @ plan[j]).split(2 * self.nhid, dim=-1)
                pre.update(zip(self._readers[j], projected))
        return torch.stack([states[k] for k in self.concat]).mean(0)

    def matmul_macs_per_token(self) -> int:
        return self._W0.numel() + sum(w.numel() for w in self._Ws)


class SearchCell(RecurrentCell):
    """The relaxed cell: node i is the softmax(alpha)-weighted sum over its i + 1 predecessors and
    the non-zero ops of the highway update; BatchNorm (no affine) after every node. Row
    ``i(i+1)/2 + j`` of alpha is the edge from state j into node i; columns follow ``RNN_PRIMITIVES``.
    The output is the mean of the ``steps`` learned nodes. Node i maps all its predecessors with
    W_i in one matmul. Without running statistics, BatchNorm normalises with the batch's own
    statistics in evaluation too."""

    def __init__(self, ninp: int, nhid: int, dropoutx: float, dropouth: float, steps: int = STEPS,
                 track_running_stats: bool = True):
        super().__init__(ninp, nhid, dropoutx, dropouth, steps)
        self.bns = nn.ModuleList(nn.BatchNorm1d(nhid, affine=False, track_running_stats=track_running_stats)
                                 for _ in range(steps + 1))
        self._activations = [ACTIVATIONS[op] for op in RNN_PRIMITIVES if op != "none"]
        self._op_columns = [k for k, op in enumerate(RNN_PRIMITIVES) if op != "none"]

    def _plan(self, probs: Tensor | None) -> list[tuple[list[Tensor], Tensor]]:
        """Per node: each non-zero op's weights over its predecessors, and their sum over ops,
        shaped (predecessors, 1, 1) to broadcast over (predecessors, batch, nhid)."""
        if probs is None:
            raise TypeError("SearchCell needs probs = softmax(alpha)")
        weights = probs[:, self._op_columns].unsqueeze(-1).unsqueeze(-1)  # (edges, ops, 1, 1)
        plan, offset = [], 0
        for i in range(self.steps):
            w = weights[offset: offset + i + 1]
            plan.append((list(w.unbind(1)), w.sum(1)))
            offset += i + 1
        return plan

    def _step(self, s0: Tensor, h_mask: Tensor | None, plan: list[tuple[list[Tensor], Tensor]]) -> Tensor:
        prev = self.bns[0](s0).unsqueeze(0)  # (states so far, B, nhid)
        for i, (op_weights, total) in enumerate(plan):
            c, h = (_masked(prev, h_mask) @ self._Ws[i]).split(self.nhid, dim=-1)
            mixed = op_weights[0] * self._activations[0](h)
            for w, f in zip(op_weights[1:], self._activations[1:]):
                mixed = torch.addcmul(mixed, w, f(h))
            # sum_k w_jk (s_j + c (f_k(h) - s_j)) = total_j s_j + c (sum_k w_jk f_k(h) - total_j s_j)
            kept = total * prev
            node = (kept + torch.sigmoid(c) * (mixed - kept)).sum(0)
            prev = torch.cat([prev, self.bns[i + 1](node).unsqueeze(0)])
        return prev[1:].mean(0)

    def matmul_macs_per_token(self) -> int:
        return self._W0.numel() + sum((i + 1) * w.numel() for i, w in enumerate(self._Ws))


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask
