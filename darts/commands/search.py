"""Architecture search (Sect. 2, Alg. 1): `darts search cnn|rnn --seed N --out DIR
[--order first|second] [--data DIR]`. Writes genotype.json, alphas.json, history.jsonl, metrics, search_cost.json and
meta.json into DIR; resumes from its checkpoint when rerun with the same configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from darts.config import add_config_args, params_from_args, seed_arg
from darts.rundir import ORDERS

# space -> its dataset folder under data.root
SPACES: dict[str, str] = {"cnn": "cifar10", "rnn": "ptb"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", choices=sorted(SPACES), help="search space")
    parser.add_argument("--seed", type=seed_arg, required=True)
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--order", choices=ORDERS,
                        help="first or second order (default: the params section's `order`, second)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: <data.root>/cifar10 or /ptb)")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.search import cnn, rnn  # torch: imported only when a search runs

    if args.order:
        args.overrides = [*args.overrides, f"search_{args.space}.order={args.order}"]
    params = params_from_args(args)
    data_root = args.data or Path(params.data.root) / SPACES[args.space]
    search = {"cnn": cnn.search, "rnn": rnn.search}[args.space]
    search(params, args.seed, args.out, data_root)
    return 0
