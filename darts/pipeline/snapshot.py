"""Search progress as the paper measures it (Fig. 3): the cell derived after chosen epochs of a
search, retrained from scratch with the selection recipe and scored on held-out data.

A search records the genotype it would derive after every epoch in its ``history.jsonl``. For one
search (space, order, seed), each epoch of ``pipeline.snapshot_epochs`` gives a cell that is
trained by the selection's own trainer (``darts.pipeline.select.selection_trainer``, the code path
of ``darts train <dataset> --split search``; params select_cnn / select_rnn, seed
``pipeline.select_seed``): one training code path, and a snapshot
equal to a selection candidate shares its checkpoint key, so it resumes the finished run.

  OUT/e<epoch>/      a `darts train --split search` run directory, plus the snapshot's genotype.json
  OUT/snapshots.json {"space", "order", "seed", "history", "metric", "snapshots": [{epoch, score, genotype_file}]}
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from darts.config import Params, section_dict
from darts.errors import DartsError
from darts.genotypes import Genotype, genotype_from_json
from darts.io import write_json
from darts.pipeline.select import DATASET, METRIC, SECTION, TrainFn, held_out_score, selection_trainer
from darts.recording import write_meta
from darts.rundir import read_history, search_dir

log = logging.getLogger(__name__)


def snapshot_genotype(history: Path, epoch: int, space: str) -> Genotype:
    """The genotype the search derived after ``epoch`` (from 1), as its history recorded it."""
    rows = read_history(history)
    row = next((r for r in rows if r["epoch"] == epoch), None)
    if row is None:
        recorded = sorted(r["epoch"] for r in rows)
        raise DartsError(f"{history}: no epoch {epoch} recorded (epochs {recorded[0]}-{recorded[-1]}); "
                         "pipeline.snapshot_epochs must lie within the search's epochs")
    if "genotype" not in row:
        raise DartsError(f"{history}: epoch {epoch} has no 'genotype'")
    try:
        genotype = genotype_from_json(row["genotype"])
    except DartsError as exc:
        raise DartsError(f"{history}: epoch {epoch}: {exc}") from None
    if genotype.space != space:
        raise DartsError(f"{history}: epoch {epoch} holds a {genotype.space.upper()} genotype; "
                         f"a {space.upper()} one is needed")
    return genotype


def snapshot_run_dir(out: Path, epoch: int) -> Path:
    return out / f"e{epoch}"


def evaluate_snapshots(params: Params, space: str, order: str, seed: int, out: Path, runs_root: Path,
                       train: TrainFn | None = None) -> dict[str, Any]:
    """Retrain the snapshots of one search; write ``out/e<epoch>/`` and ``out/snapshots.json``.
    ``train`` defaults to ``selection_trainer(params)``."""
    train = train or selection_trainer(params)
    search = search_dir(runs_root, space, order, seed)
    history = search / "history.jsonl"
    epochs = params.pipeline.snapshot_epochs
    # every snapshot is read before any is trained: a missing epoch fails in seconds, not hours
    genotypes = {epoch: snapshot_genotype(history, epoch, space) for epoch in epochs}
    snapshots = []
    for i, (epoch, genotype) in enumerate(genotypes.items(), 1):
        run_dir = snapshot_run_dir(out, epoch)
        genotype_file = run_dir / "genotype.json"
        genotype.save(genotype_file, name=f"{order}-s{seed}-e{epoch}", source=f"{history} epoch {epoch}")
        log.info("snapshot_eval %s %s-s%d: epoch %d (%d/%d)", space, order, seed, epoch, i, len(genotypes))
        try:
            train(DATASET[space], genotype_file, params.pipeline.select_seed, run_dir)
        except DartsError as exc:
            raise DartsError(f"snapshot_eval {space} {order}-s{seed}: training the epoch-{epoch} cell failed: "
                             f"{exc}") from None
        snapshots.append({"epoch": epoch, "score": held_out_score(run_dir / "metrics.json", space),
                          "genotype_file": str(genotype_file)})
    record = {"space": space, "order": order, "seed": seed, "history": str(history), "metric": METRIC[space],
              "snapshots": snapshots}
    write_json(out / "snapshots.json", record)
    write_meta(out, section_dict(params, SECTION[space], "pipeline"), space=space, order=order, seed=seed)
    return record
