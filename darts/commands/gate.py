"""Run one pipeline stage instance only when it is active at the current scale.

  darts gate --stage train_cifar10 --method first --run 3 --out runs/train_cifar10/first-r3 -- darts train cifar10 ...

dvc.yaml's matrix covers the paper-scale seeds, orders and runs; the smoke overlay (or
$DARTS_SCALE) narrows them. An active instance replaces this process with COMMAND (so a scheduler's
signals reach it directly); an inactive one writes OUT/metrics.json
{"status": "skipped", "reason": ...} and exits 0, so DVC and Snakemake find the stage's output.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path

from darts.config import add_config_args, params_from_args
from darts.errors import DartsError

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", required=True, help="the stage name in dvc.yaml, e.g. search_cnn")
    parser.add_argument("--out", type=Path, required=True, help="the stage instance's output directory")
    parser.add_argument("--space", choices=("cnn", "rnn"), help="the cell space (stages that serve both)")
    parser.add_argument("--order", choices=("first", "second"))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--method", help="first | second | random | a published cell name")
    parser.add_argument("--run", type=int, help="the run id of a repeated final training")
    parser.add_argument("command", nargs="*", help="the stage's command, after --")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.io import write_json
    from darts.pipeline.plan import SKIPPED, inactive_reason

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise DartsError("darts gate: no command given after '--'")
    params = params_from_args(args)
    reason = inactive_reason(params, args.stage, space=args.space, order=args.order, seed=args.seed,
                             method=args.method, run=args.run)
    if reason is None:
        if shutil.which(command[0]) is None:
            raise DartsError(f"darts gate: command {command[0]!r} not found on PATH")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvp(command[0], command)
    log.info("%s %s: skipped (%s)", args.stage, args.out, reason)
    write_json(args.out / "metrics.json", {"status": SKIPPED, "reason": reason, "scale": params.scale})
    return 0
