"""Choose the cell for final evaluation: the best of the searches (or random samples) by held-out score.

  darts select cnn --method second --out runs/select_cnn/second
  darts select rnn --method random --out runs/select_rnn/random

Candidates of an order are runs/search_<space>/<order>/s<seed>/ for the active pipeline.seeds; of
`random`, runs/search_<space>/random/sample<i>/. Each is trained from scratch with the selection schedule
(params select_cnn / select_rnn), the code path of `darts train ... --split search`; the test set is never read.
Writes OUT/selected.json, OUT/genotype.json (the chosen cell) and OUT/candidates/<name>/ (the runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from darts.config import add_config_args, params_from_args
from darts.rundir import ORDERS, RANDOM


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", choices=("cnn", "rnn"))
    parser.add_argument("--method", required=True, choices=(*ORDERS, RANDOM),
                        help="the searches of one order, or random search's samples")
    parser.add_argument("--out", type=Path, required=True, help="the selection's output directory")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="the runs/ tree holding the candidates")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.pipeline.select import select

    select(params_from_args(args), args.space, args.method, args.out, args.runs)
    return 0
