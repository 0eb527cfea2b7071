"""Did a smoke run learn? Statistical margins against chance, computed without darts' code.

Two checks, both comparisons within the run's own data (no number tuned on one CPU):

* a classifier's test error must lie below chance by more than ``sigmas`` standard errors of a
  chance-level classifier on the scored test set: ``error < 100 (1 - 1/k) - sigmas * 100 sqrt(p (1 - p) / n)``
  with ``p = 1 - 1/k`` (k = 10 classes: 90 % minus 3 x 0.95 % at n = 1,000);
* a language model's test perplexity must lie below the add-one (Laplace) unigram perplexity of its
  own training tokens, scored on exactly the test tokens the model was scored on, over the full
  corpus vocabulary (as the model's softmax).

The token streams are read here as the corpora are defined (each line split on whitespace, ``<eos>``
after every line, UTF-8, vocabulary over train, valid and test), and the scored test tokens follow
the evaluation layout the trainer documents: the capped stream cut into ``batch_size`` contiguous
columns (the remainder dropped), every token but each column's first one predicted.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

EOS = "<eos>"
SPLITS = ("train", "valid", "test")


# ---- classification --------------------------------------------------------------------------

def chance_error(classes: int = 10) -> float:
    """The expected test error (%) of a classifier that guesses: 100 (1 - 1/k)."""
    return 100.0 * (1.0 - 1.0 / classes)


def chance_standard_error(n: int, classes: int = 10) -> float:
    """The standard error (% points) of a guessing classifier's error on ``n`` test images."""
    p = 1.0 - 1.0 / classes
    return 100.0 * math.sqrt(p * (1.0 - p) / n)


def error_threshold(n: int, classes: int = 10, sigmas: float = 3.0) -> float:
    """The test error (%) a run must beat: chance minus ``sigmas`` standard errors at ``n`` images."""
    if n <= 0:
        raise ValueError(f"a test set of {n} images")
    return chance_error(classes) - sigmas * chance_standard_error(n, classes)


def error_margin(error: float, n: int, classes: int = 10, sigmas: float = 3.0) -> float:
    """How far (% points) ``error`` lies below the threshold; positive = learned."""
    return error_threshold(n, classes, sigmas) - error


def error_sigmas_below_chance(error: float, n: int, classes: int = 10) -> float:
    """How many chance standard errors ``error`` lies below chance."""
    return (chance_error(classes) - error) / chance_standard_error(n, classes)


# ---- language modelling ------------------------------------------------------------------------

def read_words(path: str | Path) -> list[str]:
    """The word stream of one split: whitespace-split lines, ``<eos>`` after each (UTF-8)."""
    words: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words.extend(line.split())
            words.append(EOS)
    return words


def read_corpus(root: str | Path) -> dict[str, list[str]]:
    """``{"train": [...], "valid": [...], "test": [...]}`` of a corpus folder."""
    return {split: read_words(Path(root) / f"{split}.txt") for split in SPLITS}


def vocabulary_size(corpus: dict[str, list[str]]) -> int:
    """Distinct words over all three splits (``<eos>`` included): the model's softmax size."""
    return len(set().union(*(set(words) for words in corpus.values())))


def cap(words: list[str], limit: int | None) -> list[str]:
    """The first ``limit`` words (all when None), as the smoke caps cut a stream."""
    return words if limit is None else words[:limit]


def scored_tokens(words: list[str], batch_size: int) -> list[str]:
    """The tokens an evaluation in ``batch_size`` contiguous columns predicts: the stream cut into
    ``batch_size`` columns of ``len // batch_size`` tokens (the remainder dropped), all but each
    column's first token (which is only input)."""
    steps = len(words) // batch_size
    if steps < 2:
        raise ValueError(f"{len(words)} tokens are too few for {batch_size} columns")
    out: list[str] = []
    for j in range(batch_size):
        out.extend(words[j * steps + 1:(j + 1) * steps])
    return out


def unigram_perplexity(train: list[str], test: list[str], vocab_size: int) -> float:
    """Perplexity on ``test`` of the add-one unigram model of ``train`` over ``vocab_size`` words:
    ``p(w) = (count(w) + 1) / (len(train) + V)``."""
    counts = Counter(train)
    if len(counts) > vocab_size:
        raise ValueError(f"{len(counts)} distinct training words exceed the vocabulary of {vocab_size}")
    denominator = len(train) + vocab_size
    nll = -sum(math.log((counts.get(w, 0) + 1) / denominator) for w in test)
    return math.exp(nll / len(test))


def lm_baseline(root: str | Path, train_tokens: int | None, eval_tokens: int | None,
                test_batch_size: int) -> dict[str, float]:
    """The add-one unigram baseline of a run from its corpus folder and caps: perplexity, the
    number of test tokens scored, the training tokens counted and the vocabulary size."""
    corpus = read_corpus(root)
    train = cap(corpus["train"], train_tokens)
    test = scored_tokens(cap(corpus["test"], eval_tokens), test_batch_size)
    vocab = vocabulary_size(corpus)
    return {"unigram_ppl": unigram_perplexity(train, test, vocab), "scored_tokens": len(test),
            "train_tokens": len(train), "vocab_size": vocab}
