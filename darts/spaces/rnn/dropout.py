"""The AWD-LSTM dropouts the recurrent DARTS model uses (Merity et al. 2018; DARTS App. A.1.2).

Every mask is drawn from torch's default generator at the start of a forward pass and then held
fixed over time ("variational" / locked dropout). Drawing all of them from the global RNG is what
lets the bilevel step replay identical masks for every loss evaluation of one step by restoring
the RNG state.
"""

from __future__ import annotations

import torch
from torch import Tensor


def dropout_mask(shape: tuple[int, ...], p: float, like: Tensor) -> Tensor:
    """An inverted-dropout mask: entries are 0 with probability p, else 1 / (1 - p)."""
    return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(1.0 - p).div_(1.0 - p)


def locked_dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """Dropout of a (time, batch, features) tensor with one mask per sequence, shared over time."""
    if not training or p == 0.0:
        return x
    return x * dropout_mask((1, x.size(1), x.size(2)), p, x)


def embedding_dropout(weight: Tensor, tokens: Tensor, p: float, training: bool) -> Tensor:
    """Look up ``tokens`` with whole words dropped: a dropped word's embedding is zero at every
    occurrence in the batch (token-wise embedding dropout). Only the looked-up rows are scaled,
    which equals masking the whole matrix but costs O(tokens) instead of O(vocabulary)."""
    emb = torch.nn.functional.embedding(tokens, weight)
    if not training or p == 0.0:
        return emb
    keep = dropout_mask((weight.size(0), 1), p, weight)
    return emb * torch.nn.functional.embedding(tokens, keep)
