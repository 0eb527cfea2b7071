"""Evaluation shared by the searches and the retraining loops: a classifier's mean cross-entropy
and top-1/top-5 accuracy, a language model's mean cross-entropy per token, and perplexity."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darts.data import text
from darts.errors import DartsError


@dataclass(frozen=True)
class EvalResult:
    loss: float  # mean cross-entropy (no label smoothing)
    top1: float  # accuracy, %
    top5: float  # accuracy, %
    images: int


def topk_hits(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """(top-1 hits, top-5 hits) of a batch as float64 scalars (top-k over at most 5 classes)."""
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
    return top[:, 0].sum().double(), top.any(dim=1).sum().double()


@torch.no_grad()
def evaluate_classifier(model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device,
                        logits: Callable[[Tensor], Tensor] | None = None,
                        reduce: Callable[[Tensor], Tensor] = lambda sums: sums) -> EvalResult:
    """Loss and top-1/top-5 accuracy over ``batches`` (already on ``device``), BatchNorm in eval mode.

    ``logits`` maps a batch of inputs to float logits (default: ``model``); ``reduce`` sums the
    per-process totals of a distributed evaluation. The model is left in eval mode."""
    model.eval()
    forward = logits or model
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1, top5, n
    for x, y in batches:
        out = forward(x)
        top1, top5 = topk_hits(out, y)
        sums += torch.stack([F.cross_entropy(out, y, reduction="sum").double(), top1, top5,
                             torch.tensor(float(y.numel()), dtype=torch.float64, device=device)])
    loss_sum, top1, top5, n = reduce(sums).tolist()
    if n == 0:
        raise DartsError("the evaluation set is empty")
    return EvalResult(loss=loss_sum / n, top1=100.0 * top1 / n, top5=100.0 * top5 / n, images=int(n))


@torch.no_grad()
def evaluate_lm(model: nn.Module, data: Tensor, batch_size: int, bptt: int) -> float:
    """Mean cross-entropy per token over ``data`` cut into ``batch_size`` streams and fixed
    ``bptt`` windows, the hidden state carried across windows (dropout off)."""
    model.eval()
    source = text.batchify(data, batch_size).to(model.encoder.weight.device)
    if source.size(0) < 2:
        raise DartsError(f"{len(data)} tokens are too few for evaluation batch size {batch_size}")
    hidden = model.init_hidden(batch_size)
    total, count = torch.zeros((), dtype=torch.float64, device=source.device), 0
    for i in range(0, source.size(0) - 1, bptt):
        x, y = text.get_batch(source, i, bptt)
        out = model(x, hidden)
        total += F.cross_entropy(out.logits.reshape(-1, out.logits.size(-1)), y.reshape(-1), reduction="sum").double()
        count += y.numel()
        hidden = out.hidden
    return float(total) / count


def perplexity(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf
