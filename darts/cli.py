"""The `darts` command. Each subcommand lives in darts/commands/<name>.py, which defines
``configure(parser)`` and ``run(args) -> int``; a command imports torch only inside ``run``, so
start-up (and ``darts --help``) stays light."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from types import ModuleType

from darts import __version__
from darts.commands import (
    clean,
    compare,
    data,
    evaluate,
    genotype,
    info,
    sample,
    search,
    select,
    snapshot,
    tabulate,
    train,
    workspace,
)
from darts.errors import DartsError, os_error_message

# name -> (module, one-line help). Order is the order `darts --help` lists them.
COMMANDS: dict[str, tuple[ModuleType, str]] = {
    "data": (data, "fetch or copy a dataset, verify it, write its manifest"),
    "search": (search, "architecture search (first or second order): genotype, alphas, history"),
    "train": (train, "retrain a genotype from scratch (CIFAR-10, ImageNet, PTB, WikiText-2; selection runs)"),
    "evaluate": (evaluate, "error of saved weights (ours or the official release's)"),
    "genotype": (genotype, "show a genotype, convert official string <-> JSON, sample a random one"),
    "info": (info, "parameter count and multiply-adds of a genotype's evaluation network"),
    "sample": (sample, "sample the random-search baseline's cells uniformly from the space"),
    "select": (select, "choose the best cell of the searches (or random samples) by held-out score"),
    "snapshot": (snapshot, "retrain the cells a search derived at chosen epochs (Fig. 3's search progress)"),
    "workspace": (workspace, "the pipeline at one scale in its own folder (make smoke: smoke/)"),
    "tabulate": (tabulate, "the results tables beside the paper's, the figures and results/REPORT.md"),
    "compare": (compare, "diff results/ against the paper's tables; --strict fails on any miss"),
    "clean": (clean, "list or prune checkpoint keys: finished runs', or all but the newest per stage"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="darts",
        description="DARTS (Liu et al., ICLR 2019): search, select, retrain, evaluate, tabulate.",
    )
    parser.add_argument("--version", action="version", version=f"darts {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except DartsError as exc:
        print(f"darts {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file-system failure no module turned into a DartsError: path and cause
        logging.getLogger("darts").debug("file-system error", exc_info=True)
        print(f"darts {args.command}: error: {os_error_message(exc, _failing_path(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"darts {args.command}: interrupted", file=sys.stderr)
        return 130


def _failing_path(exc: OSError) -> object:
    """The path an OSError concerns: its own file name, else (an ``os.write`` on a full disk carries
    none) the ``path`` the innermost frame was working on (a local ``path`` or ``self.path``)."""
    if exc.filename is not None:
        return None  # os_error_message names it
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return None
    local = tb.tb_frame.f_locals
    for candidate in (local.get("path"), getattr(local.get("self"), "path", None)):
        if isinstance(candidate, (str, os.PathLike)):
            return os.fspath(candidate)
    return None


if __name__ == "__main__":
    raise SystemExit(main())
