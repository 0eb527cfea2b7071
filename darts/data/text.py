"""Word-level language-model corpora (PTB, WikiText-2) as AWD-LSTM and DARTS read them.

Each line is split on whitespace and ends with ``<eos>``; the vocabulary grows in order of first
appearance over train, valid, test (10,000 words for PTB, 33,278 for WikiText-2). Files are read
as UTF-8 whatever the locale (WikiText-2 is not ASCII).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from darts.data import manifest
from darts.data.formats import EOS, TEXT_SPLITS as SPLITS, Dictionary, read_tokens  # noqa: F401  (re-exported)
from darts.data.loading import derive_seed
from darts.errors import DartsError


class Corpus:
    """``dictionary`` and the ``train``/``valid``/``test`` splits of ``path`` as 1-D LongTensors."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.dictionary = Dictionary()
        self.lines: dict[str, int] = {}
        self.train, self.valid, self.test = (self._tokenize(split) for split in SPLITS)

    def _tokenize(self, split: str) -> torch.Tensor:
        ids, self.lines[split] = read_tokens(self.path / f"{split}.txt", self.dictionary)
        return torch.tensor(ids, dtype=torch.long)


@dataclass
class Corpora:
    """Token streams (1-D, capped by params at smoke scale), vocabulary size, data summary."""

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    vocab_size: int
    summary: dict[str, Any]


def load_corpora(dataset: str, root: str | Path, train_tokens: int | None, eval_tokens: int | None) -> Corpora:
    """The corpus of ``dataset`` (ptb or wikitext2) in ``root``, capped at the given token counts."""
    root = Path(root)
    if not all((root / f"{split}.txt").is_file() for split in SPLITS):
        raise DartsError(f"{root}: expected train.txt, valid.txt and test.txt; run `darts data {dataset}` first "
                         "or pass --data")
    corpus = Corpus(root)
    return Corpora(
        cap_tokens(corpus.train, train_tokens), cap_tokens(corpus.valid, eval_tokens),
        cap_tokens(corpus.test, eval_tokens), len(corpus.dictionary), manifest_summary(dataset, root),
    )


def cap_tokens(data: torch.Tensor, limit: int | None) -> torch.Tensor:
    """The first ``limit`` tokens (all when None): the smoke scale's token caps."""
    return data if limit is None else data[:limit]


def holdout_split(data: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(head, tail): the last ``fraction`` of the tokens held out, e.g. for architecture steps
    on training data instead of the validation set."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1), got {fraction}")
    cut = len(data) - int(round(fraction * len(data)))
    return data[:cut], data[cut:]


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut the token stream into ``batch_size`` contiguous columns: shape (steps, batch_size),
    dropping the remainder; column j continues where column j - 1's text ends."""
    steps = len(data) // batch_size
    return data[: steps * batch_size].view(batch_size, steps).t().contiguous()


def get_batch(source: torch.Tensor, i: int, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``source[i:i+L]`` and next-word targets ``source[i+1:i+1+L]``, both (L, batch),
    with L = ``seq_len`` shortened at the end of the data."""
    seq_len = min(seq_len, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len]


def variable_bptt(steps: int, bptt: int, max_seq_len_delta: int, generator: torch.Generator
                  ) -> Iterator[tuple[int, int]]:
    """AWD-LSTM's variable-length BPTT over a batchified stream of ``steps`` rows: yields
    ``(i, seq_len)`` until the data is used up.

    Each window's base length is ``bptt`` with probability 0.95, else ``bptt / 2``; its length is
    ``max(5, int(N(base, 5)))`` capped at ``bptt + max_seq_len_delta``. Callers scale the learning
    rate by ``seq_len / bptt`` as AWD-LSTM does, and pass ``seq_len`` to ``get_batch`` (which
    shortens the last window). ``generator`` (e.g. ``bptt_generator(seed, epoch)``) makes the
    windows reproducible.
    """
    i = 0
    while i < steps - 2:
        base = bptt if torch.rand((), generator=generator).item() < 0.95 else bptt / 2
        seq_len = max(5, int(torch.normal(float(base), 5.0, size=(), generator=generator).item()))
        seq_len = min(seq_len, bptt + max_seq_len_delta)
        yield i, seq_len
        i += seq_len


def bptt_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's BPTT windows: a resumed run draws the same windows."""
    return torch.Generator().manual_seed(derive_seed(seed, "bptt", epoch))


def manifest_summary(dataset: str, root: str | Path) -> dict[str, Any]:
    """The data summary for meta.json and checkpoint keys (``dataset``: ptb or wikitext2)."""
    return manifest.folder_summary(dataset, root)
