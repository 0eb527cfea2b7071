"""Sample the random-search baseline's candidate cells uniformly from the search space.

  darts sample cnn --out runs/search_cnn/random      (writes sample<i>/genotype.json for i < pipeline.random_cnn_samples)

`darts select <space> --method random` then picks the best of them by the same selection as DARTS'.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from darts.config import add_config_args, params_from_args
from darts.pipeline.random_baseline import sample

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("space", choices=("cnn", "rnn"))
    parser.add_argument("--out", type=Path, required=True, help="the folder to write sample<i>/genotype.json into")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    count = params.pipeline.random_cnn_samples if args.space == "cnn" else params.pipeline.random_rnn_samples
    paths = sample(args.space, count, args.out)
    log.info("sampled %d random %s cells into %s", len(paths), args.space, args.out)
    return 0
