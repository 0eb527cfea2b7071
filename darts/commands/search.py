"""Architecture search (Sect. 2, Alg. 1): `darts search cnn|rnn --seed N --out DIR
[--order first|second] [--data DIR]`. Writes genotype.json, alphas.json, history.jsonl, metrics, search_cost.json and
meta.json into DIR; resumes from its checkpoint when rerun with the same configuration.

Both searches are data-parallel (DEVIATIONS.md, "Data-parallel search"): a space listed in
DATA_PARALLEL starts one process per device the job holds (`--nproc N` overrides; darts/launch.py),
as `darts train cifar10|imagenet` does; `batch_size` is the global batch. A space not listed runs as
one process (a warning when the job holds more devices; `--nproc` > 1 is refused)."""

from __future__ import annotations

import argparse
from pathlib import Path

from darts import launch
from darts.config import add_config_args, params_from_args, seed_arg
from darts.rundir import ORDERS

# space -> its dataset folder under data.root
SPACES: dict[str, str] = {"cnn": "cifar10", "rnn": "ptb"}
# the spaces whose search loop is data-parallel and may start one process per device
# (darts/search/cnn.py, rnn.py; semantics in DEVIATIONS.md, "Data-parallel search")
DATA_PARALLEL: frozenset[str] = frozenset({"cnn", "rnn"})


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", choices=sorted(SPACES), help="search space")
    parser.add_argument("--seed", type=seed_arg, required=True)
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--order", choices=ORDERS,
                        help="first or second order (default: the params section's `order`, second)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: <data.root>/cifar10 or /ptb)")
    launch.add_launch_args(parser)
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.search import cnn, rnn  # torch: imported only when a search runs

    order = [f"search_{args.space}.order={args.order}"] if args.order else []
    params = params_from_args(argparse.Namespace(**{**vars(args), "overrides": [*args.overrides, *order]}))
    code = launch.relaunch(args, params.runtime.device, data_parallel=args.space in DATA_PARALLEL,
                           what=f"darts search {args.space}", configure=configure)
    if code is not None:  # this process launched the search's processes, which have ended
        return code
    data_root = args.data or Path(params.data.root) / SPACES[args.space]
    search = {"cnn": cnn.search, "rnn": rnn.search}[args.space]
    search(params, args.seed, args.out, data_root)
    return 0
