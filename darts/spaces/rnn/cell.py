"""The recurrent DARTS cell (Sect. 3.1.2): a DAG of gated highway updates.

Node 0 mixes the input and the previous hidden state: ``(c, h~) = [x_t, h_{t-1}] W0`` and
``s0 = h_{t-1} + sigmoid(c) * (tanh(h~) - h_{t-1})``. Every later node i applies, to a predecessor
state s_j, ``(c, h~) = s_j W_i`` and ``s = s_j + sigmoid(c) * (f(h~) - s_j)``; the cell output is
the mean of the learned nodes. The evaluation cell has one (op, predecessor) per node; the search
cell sums every (op, predecessor) pair of a node weighted by softmax(alpha), with non-affine
BatchNorm on every node. Dropout masks on the cell input (x) and on each state fed to a linear map
(h) are drawn once per forward pass and shared by all time steps and nodes.

Speed: each state s_j is multiplied once by the column-concatenation of every W that reads it
(``s_j [W_a | W_b | ...]``), so a time step costs one matmul per state instead of one per edge,
and the input half of W0 is applied to all time steps in a single matmul before the loop.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from darts.spaces.rnn.dropout import dropout_mask

STEPS = 8
INIT_RANGE = 0.04  # uniform init of W0 and W_i, as the official cell

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": lambda x: x,
}
SEARCH_OPS: tuple[str, ...] = ("none", "tanh", "relu", "sigmoid", "identity")  # column order of alpha


def num_edges(steps: int = STEPS) -> int:
    """Node i (0-based) has i + 1 predecessors: 1 + 2 + ... + steps edges (36 for 8 nodes)."""
    return steps * (steps + 1) // 2


class RecurrentCell(nn.Module):
    """What the evaluation and search cells share: the weights, the masks and the time loop.

    ``forward(inputs (T, B, ninp), hidden (B, nhid)) -> (states (T, B, nhid), last (B, nhid))``.
    Parameter names follow the official cell (``_W0``, ``_Ws.<i>``) so state dicts line up.
    """

    def __init__(self, ninp: int, nhid: int, dropoutx: float, dropouth: float, steps: int = STEPS):
        super().__init__()
        self.ninp, self.nhid, self.steps = ninp, nhid, steps
        self.dropoutx, self.dropouth = dropoutx, dropouth
        self._W0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE))
        self._Ws = nn.ParameterList(
            nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE)) for _ in range(steps)
        )

    def forward(self, inputs: Tensor, hidden: Tensor, **kwargs: Tensor) -> tuple[Tensor, Tensor]:
        use_masks = self.training
        x_mask = dropout_mask((inputs.size(1), self.ninp), self.dropoutx, inputs) if use_masks and self.dropoutx else None
        h_mask = dropout_mask((inputs.size(1), self.nhid), self.dropouth, inputs) if use_masks and self.dropouth else None
        x = inputs if x_mask is None else inputs * x_mask
        x_part = torch.matmul(x, self._W0[: self.ninp])  # (T, B, 2 nhid), all time steps at once
        w_h0 = self._W0[self.ninp:]
        readers = self._reader_weights()
        outputs = []
        for x_t in x_part.unbind(0):  # unbind, not x_part[t]: its backward does not zero-fill per step
            hidden = self.step(x_t, hidden, w_h0, readers, h_mask, **kwargs)
            outputs.append(hidden)
        return torch.stack(outputs), hidden

    def first_node(self, x_part: Tensor, h_prev: Tensor, w_h0: Tensor, h_mask: Tensor | None) -> Tensor:
        ch = x_part + _masked(h_prev, h_mask) @ w_h0
        c, h = ch.split(self.nhid, dim=-1)
        return h_prev + torch.sigmoid(c) * (torch.tanh(h) - h_prev)

    def _reader_weights(self) -> list[Tensor | None]:
        """For each state j, the concatenated maps of the nodes that read it (None: no reader)."""
        raise NotImplementedError

    def step(self, x_part: Tensor, h_prev: Tensor, w_h0: Tensor, readers: list[Tensor | None],
             h_mask: Tensor | None, **kwargs: Tensor) -> Tensor:
        raise NotImplementedError

    def matmul_macs_per_token(self) -> int:
        """Multiply-adds of the cell's linear maps for one token (element-wise ops excluded)."""
        raise NotImplementedError


class DARTSCell(RecurrentCell):
    """A discrete cell from a genotype: ``recurrent[i] = (activation, predecessor)`` builds state i+1."""

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

    def _reader_weights(self) -> list[Tensor | None]:
        return [torch.cat([self._Ws[i] for i in nodes], dim=1) if nodes else None for nodes in self._readers]

    def step(self, x_part, h_prev, w_h0, readers, h_mask, **kwargs):
        states = [self.first_node(x_part, h_prev, w_h0, h_mask)]
        pre: dict[int, Tensor] = {}  # node -> its (c, h~) pre-activation
        for j in range(self.steps + 1):
            if j > 0:
                op, pred = self.recurrent[j - 1]
                c, h = pre.pop(j - 1).split(self.nhid, dim=-1)
                s_prev = states[pred]
                states.append(s_prev + torch.sigmoid(c) * (ACTIVATIONS[op](h) - s_prev))
            if readers[j] is not None:
                for node, ch in zip(self._readers[j], (_masked(states[j], h_mask) @ readers[j]).split(2 * self.nhid, dim=-1)):
                    pre[node] = ch
        return torch.stack([states[k] for k in self.concat]).mean(0)

    def matmul_macs_per_token(self) -> int:
        return self._W0.numel() + sum(w.numel() for w in self._Ws)


class SearchCell(RecurrentCell):
    """The relaxed cell: node i is the softmax(alpha)-weighted sum over its i + 1 predecessors and
    the non-zero ops of the highway update; BatchNorm (no affine) after every node. Row
    ``i(i+1)/2 + j`` of alpha is the edge from state j into node i; columns follow ``SEARCH_OPS``.
    The output is the mean of the ``steps`` learned nodes."""

    def __init__(self, ninp: int, nhid: int, dropoutx: float, dropouth: float, steps: int = STEPS):
        super().__init__(ninp, nhid, dropoutx, dropouth, steps)
        self.bns = nn.ModuleList(nn.BatchNorm1d(nhid, affine=False) for _ in range(steps + 1))
        self._activations = [ACTIVATIONS[op] for op in SEARCH_OPS if op != "none"]
        self._op_columns = [k for k, op in enumerate(SEARCH_OPS) if op != "none"]

    def _reader_weights(self) -> list[Tensor | None]:
        return list(self._Ws)  # node i maps all its predecessors with W_i in one matmul

    def step(self, x_part, h_prev, w_h0, readers, h_mask, probs: Tensor | None = None, **kwargs):
        if probs is None:
            raise TypeError("SearchCell.step needs probs = softmax(alpha)")
        weights = probs[:, self._op_columns]  # (edges, non-zero ops)
        prev = self.bns[0](self.first_node(x_part, h_prev, w_h0, h_mask)).unsqueeze(0)  # (states, B, nhid)
        offset = 0
        for i in range(self.steps):
            c, h = (_masked(prev, h_mask) @ readers[i]).split(self.nhid, dim=-1)
            w = weights[offset: offset + i + 1]  # (i+1, ops)
            mixed = sum(w[:, k, None, None] * f(h) for k, f in enumerate(self._activations))
            total = w.sum(1)[:, None, None]
            # sum_k w_jk (s_j + c (f_k(h) - s_j)) = total_j s_j + c (sum_k w_jk f_k(h) - total_j s_j)
            node = (total * prev + torch.sigmoid(c) * (mixed - total * prev)).sum(0)
            prev = torch.cat([prev, self.bns[i + 1](node).unsqueeze(0)])
            offset += i + 1
        return prev[1:].mean(0)

    def matmul_macs_per_token(self) -> int:
        return self._W0.numel() + sum((i + 1) * w.numel() for i, w in enumerate(self._Ws))


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask
