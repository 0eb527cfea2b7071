"""The recurrent language model around a DARTS cell: embedding, one cell, tied decoder.

As the official model (and AWD-LSTM): token-wise embedding dropout (``dropoute``), locked dropout
on the embeddings (``dropouti``) and on the cell output (``dropout``), and a decoder whose weight
is the embedding matrix (so ``emsize`` must equal ``nhid``). Names follow the official state dict:
``encoder.weight``, ``rnns.0._W0``, ``rnns.0._Ws.<i>``, ``decoder.weight`` (tied), ``decoder.bias``.

Initialisation, as the official model: the embedding (and so the tied decoder weight) and every
cell matrix uniform in +-``INIT_RANGE`` (0.04), the decoder bias zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darts.genotypes import RNN_PRIMITIVES, RNNGenotype, derive_rnn
from darts.spaces.rnn.cell import INIT_RANGE, STEPS, DARTSCell, RecurrentCell, SearchCell, num_edges
from darts.spaces.rnn.dropout import embedding_dropout, locked_dropout


@dataclass(frozen=True)
class Dropouts:
    """Dropout probabilities, named as the official flags: output, hidden nodes, cell input,
    embedded input (locked), embedding rows (token-wise)."""

    dropout: float = 0.75
    dropouth: float = 0.25
    dropoutx: float = 0.75
    dropouti: float = 0.2
    dropoute: float = 0.0

    @classmethod
    def of(cls, section: Any) -> "Dropouts":
        """The probabilities of a params section with these five fields (search_rnn, train_ptb, ...)."""
        return cls(section.dropout, section.dropouth, section.dropoutx, section.dropouti, section.dropoute)


@dataclass
class LMOutput:
    logits: Tensor    # (T, B, vocab)
    hidden: Tensor    # (B, nhid): the state to carry into the next batch
    states: Tensor    # (T, B, nhid): cell outputs before output dropout (for TAR)
    dropped: Tensor   # (T, B, nhid): cell outputs after output dropout (for AR)


class RNNModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhid: int, cell: RecurrentCell, dropouts: Dropouts):
        super().__init__()
        if ninp != nhid:
            raise ValueError(f"the decoder is tied to the embedding, so emsize ({ninp}) must equal nhid ({nhid})")
        self.ntoken, self.ninp, self.nhid = ntoken, ninp, nhid
        self.dropouts = dropouts
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnns = nn.ModuleList([cell])
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)  # the official INITRANGE
        nn.init.zeros_(self.decoder.bias)

    @property
    def cell(self) -> RecurrentCell:
        return self.rnns[0]

    def init_hidden(self, batch_size: int) -> Tensor:
        return self.encoder.weight.new_zeros(batch_size, self.nhid)

    def forward(self, tokens: Tensor, hidden: Tensor) -> LMOutput:
        d = self.dropouts
        emb = embedding_dropout(self.encoder.weight, tokens, d.dropoute, self.training)
        emb = locked_dropout(emb, d.dropouti, self.training)
        states, hidden = self.cell(emb, hidden, self._probs())
        dropped = locked_dropout(states, d.dropout, self.training)
        return LMOutput(self.decoder(dropped), hidden, states, dropped)

    def _probs(self) -> Tensor | None:
        return None

    def matmul_macs_per_token(self) -> int:
        """Multiply-adds per token of the cell's maps and the decoder (``mult_adds`` in info)."""
        return self.cell.matmul_macs_per_token() + self.decoder.weight.numel()


class RNNSearchModel(RNNModel):
    """The search network: the relaxed cell plus one alpha matrix (edges x ``RNN_PRIMITIVES``)."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, dropouts: Dropouts, steps: int = STEPS,
                 alpha_init: str = "randn", alpha_init_scale: float = 1e-3, track_running_stats: bool = True):
        cell = SearchCell(ninp, nhid, dropouts.dropoutx, dropouts.dropouth, steps, track_running_stats)
        super().__init__(ntoken, ninp, nhid, cell, dropouts)
        shape = (num_edges(steps), len(RNN_PRIMITIVES))
        init = alpha_init_scale * torch.randn(shape) if alpha_init == "randn" else torch.zeros(shape)
        self.alphas = nn.Parameter(init)

    def _probs(self) -> Tensor | None:
        return F.softmax(self.alphas, dim=-1)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def genotype(self) -> RNNGenotype:
        """The discrete cell of Sect. 2.4 (k = 1) from the current alphas."""
        return derive_rnn(F.softmax(self.alphas.detach().float(), dim=-1).cpu(), self.cell.steps)


def build_eval_model(ntoken: int, ninp: int, nhid: int, genotype: RNNGenotype, dropouts: Dropouts) -> RNNModel:
    """The evaluation network of a genotype."""
    cell = DARTSCell(ninp, nhid, dropouts.dropoutx, dropouts.dropouth, genotype.recurrent, genotype.concat)
    return RNNModel(ntoken, ninp, nhid, cell, dropouts)


def lm_loss(out: LMOutput, targets: Tensor, ar_alpha: float = 0.0, tar_beta: float = 0.0) -> tuple[Tensor, Tensor]:
    """(regularised loss, raw cross-entropy). AR penalises large dropped outputs, TAR large
    changes between consecutive outputs (Merity et al. 2018), as the official training step."""
    raw = F.cross_entropy(out.logits.reshape(-1, out.logits.size(-1)), targets.reshape(-1))
    loss = raw
    if ar_alpha:
        loss = loss + ar_alpha * out.dropped.pow(2).mean()
    if tar_beta:
        loss = loss + tar_beta * (out.states[1:] - out.states[:-1]).pow(2).mean()
    return loss, raw
