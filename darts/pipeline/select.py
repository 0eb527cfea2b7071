"""Best-of-N selection (Sect. 3.2): train each candidate cell from scratch with the short
selection schedule and keep the one with the best held-out score.

Each candidate is trained by ``darts.train.run.train_genotype(..., split="search")``, the code path
of ``darts train <dataset> --split search`` and of the final training stages, with the selection
params (``select_cnn``: 100 epochs on CIFAR-10's search split, scored on its held-out half;
``select_rnn``: 300 epochs on PTB, scored on validation perplexity). The held-out score is all that
is read back; a candidate whose metrics mention the test set fails the selection, because the test
set must not be seen before the final stages.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from darts.config import Params, section_dict
from darts.errors import DartsError
from darts.genotypes import load_genotype
from darts.io import read_json, write_json
from darts.pipeline.plan import candidate_dirs
from darts.recording import write_meta
from darts.rundir import ORDERS, RANDOM
from darts.train.run import SPACE, train_genotype

log = logging.getLogger(__name__)

# The held-out metric each space is selected by (lower is better for both).
METRIC: dict[str, str] = {"cnn": "valid_error", "rnn": "valid_ppl"}
DATASET: dict[str, str] = {"cnn": "cifar10", "rnn": "ptb"}
SECTION: dict[str, str] = {"cnn": "select_cnn", "rnn": "select_rnn"}

# Trains one candidate: (dataset, genotype file, seed, output dir); writes the run dir's metrics.json.
TrainFn = Callable[[str, Path, int, Path], None]


@dataclass(frozen=True)
class Candidate:
    name: str
    genotype_file: Path


def candidates(params: Params, space: str, method: str, runs_root: Path) -> list[Candidate]:
    """The genotypes to choose from; each must exist."""
    found = []
    for name, run_dir in candidate_dirs(params, space, method, runs_root).items():
        genotype = run_dir / "genotype.json"
        if not genotype.is_file():
            raise DartsError(f"{genotype}: candidate {name} has no genotype; run its stage first")
        found.append(Candidate(name, genotype))
    return found


def held_out_score(metrics_path: Path, space: str) -> float:
    """The candidate's held-out score; refuses metrics computed on the test set."""
    metrics = read_json(metrics_path)
    leaked = sorted(k for k in metrics if k.startswith("test_"))
    if leaked:
        raise DartsError(f"{metrics_path}: a selection run reported test-set metrics {leaked}; "
                         "selection must never read the test set")
    key = METRIC[space]
    value = metrics.get(key)
    if value is None and key == "valid_ppl" and isinstance(metrics.get("valid_loss"), (int, float)):
        return math.inf   # a perplexity that overflowed (written as null beside its finite loss): the worst score
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DartsError(f"{metrics_path}: missing numeric '{key}' (the held-out score of a {space} selection run)")
    return float(value)


def choose(scores: Mapping[str, float]) -> str:
    """The name with the lowest score (error or perplexity); ties go to the earlier candidate."""
    if not scores:
        raise DartsError("selection: no candidates")
    return min(scores, key=lambda name: (scores[name], list(scores).index(name)))


def select(
    params: Params,
    space: str,
    method: str,
    out: Path,
    runs_root: Path,
    train: TrainFn | None = None,
) -> dict[str, Any]:
    """Select for one method and write ``selected.json``, ``genotype.json`` and ``meta.json`` into ``out``.
    ``train`` defaults to ``selection_trainer(params)``."""
    out.mkdir(parents=True, exist_ok=True)
    record = _train_and_choose(params, space, method, out, runs_root, train or selection_trainer(params))
    chosen = next(c for c in record["candidates"] if c["name"] == record["chosen"])
    load_genotype(chosen["genotype_file"], space).save(
        out / "genotype.json", name=f"{method}:{record['chosen']}", source=chosen["genotype_file"])
    write_json(out / "selected.json", record)
    write_meta(out, section_dict(params, SECTION[space], "pipeline"), space=space, method=method)
    log.info("select %s %s: chose %s (%s=%s)", space, method, record["chosen"], record["metric"], record["score"])
    return record


def _train_and_choose(params: Params, space: str, method: str, out: Path, runs_root: Path,
                      train: TrainFn) -> dict[str, Any]:
    if method not in (*ORDERS, RANDOM):
        raise DartsError(f"select {space}: unknown method {method!r}")
    pool = candidates(params, space, method, runs_root)
    scores: dict[str, float] = {}
    for i, cand in enumerate(pool, 1):
        run_dir = out / "candidates" / cand.name
        log.info("select %s %s: candidate %d/%d %s", space, method, i, len(pool), cand.name)
        try:
            train(DATASET[space], cand.genotype_file, params.pipeline.select_seed, run_dir)
        except DartsError as exc:
            raise DartsError(f"select {space} {method}: training candidate {cand.name} failed: {exc}") from None
        scores[cand.name] = held_out_score(run_dir / "metrics.json", space)
    return {
        "method": method,
        "chosen": choose(scores),
        "score": _finite_or_none(min(scores.values())),
        "metric": METRIC[space],
        "candidates": [{"name": c.name, "score": _finite_or_none(scores[c.name]), "genotype_file": str(c.genotype_file)} for c in pool],
    }


def selection_trainer(params: Params) -> TrainFn:
    """Train a candidate as ``darts train DATASET --split search`` does, with these params."""

    def train(dataset: str, genotype_file: Path, seed: int, out: Path) -> None:
        genotype = load_genotype(genotype_file, SPACE[dataset])
        train_genotype(dataset, params, genotype, seed, out, split="search")

    return train


def _finite_or_none(score: float) -> float | None:
    """JSON holds no Infinity: an overflowed perplexity is recorded as null."""
    return score if math.isfinite(score) else None
