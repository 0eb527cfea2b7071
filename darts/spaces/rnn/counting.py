"""Parameter and multiply-add counts of the recurrent networks (Tables 2 and 4: 23M on PTB, 33M on
WikiText-2).

Parameters count every weight once (the decoder shares the embedding matrix) and exclude a search
network's alphas. Multiply-adds are per token: the cell's linear maps and the decoder; the
embedding lookup and element-wise operations are not counted. Networks are built on the meta
device, so counting a 33M-parameter model allocates nothing.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from darts.genotypes import RNNGenotype
from darts.spaces.rnn.model import Dropouts, build_eval_model


def count_parameters(params: Iterable[nn.Parameter]) -> int:
    """Elements of the distinct tensors among ``params`` (a tied matrix counts once)."""
    return sum({id(p): p.numel() for p in params}.values())


NO_DROPOUT = Dropouts(0.0, 0.0, 0.0, 0.0, 0.0)   # dropout changes no count


def describe_rnn(genotype: RNNGenotype, vocab_size: int, emsize: int, nhid: int) -> dict[str, Any]:
    with torch.device("meta"):
        model = build_eval_model(vocab_size, emsize, nhid, genotype, NO_DROPOUT)
    return {
        "params": count_parameters(model.parameters()),
        "mult_adds": model.matmul_macs_per_token(),
        "mult_adds_per": "token",
        "emsize": emsize, "nhid": nhid, "vocab": vocab_size, "nodes": len(genotype.recurrent),
    }
