"""Retrain the cells a search derived at chosen epochs (the paper's Fig. 3; the snapshot_eval stage).

  darts snapshot cnn --order second --seed 0 --out runs/snapshot_eval/cnn/second-s0
  darts snapshot rnn --order first --seed 1 --out DIR --set pipeline.snapshot_epochs=[5,25]

Reads runs/search_<space>/<order>/s<seed>/history.jsonl; for each epoch of pipeline.snapshot_epochs
trains that epoch's cell from scratch with the selection recipe (`darts train cifar10|ptb --split
search`, params select_cnn / select_rnn, seed pipeline.select_seed) into OUT/e<epoch>/, and writes
OUT/snapshots.json with each snapshot's held-out score. The test set is never read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from darts.config import add_config_args, params_from_args, seed_arg
from darts.rundir import ORDERS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage examples' lines
    parser.add_argument("space", choices=("cnn", "rnn"))
    parser.add_argument("--order", choices=ORDERS, required=True, help="the search's order")
    parser.add_argument("--seed", type=seed_arg, required=True, help="the search's seed")
    parser.add_argument("--out", type=Path, required=True, help="the output directory of this search's snapshots")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="the runs/ tree holding the search")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.pipeline.snapshot import evaluate_snapshots

    evaluate_snapshots(params_from_args(args), args.space, args.order, args.seed, args.out, args.runs)
    return 0
