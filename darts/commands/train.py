"""Retrain a genotype from scratch with the paper's recipe and write a run directory.

  darts train cifar10  --genotype DARTS_V2 --seed 0 --out runs/train_cifar10/DARTS_V2-r0
  darts train cifar10  --genotype G.json --seed 0 --out DIR --split search   (a selection run)
  darts train imagenet --genotype DARTS_V2 --seed 0 --out DIR [--imagenet-root DIR]
  darts train ptb      --genotype DARTS_V2 --seed 0 --out runs/train_ptb/DARTS_V2 [--split search]
  darts train wikitext2 --genotype DARTS_V2 --seed 0 --out runs/train_wikitext2/DARTS_V2

Every epoch is checkpointed under runtime.checkpoint_dir; rerunning the same command resumes.
CIFAR-10 and ImageNet are data-parallel: the command starts one process per GPU the job holds
(SLURM's allocation, else the visible CUDA devices; `--nproc N` overrides; see darts/launch.py)
through PyTorch's launcher, on one node or (a SLURM job) several; the params' batch_size is the
global batch. The language models run as one process.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from darts import launch
from darts.config import add_config_args, params_from_args, seed_arg
from darts.errors import DartsError
from darts.genotypes import load_genotype
from darts.io import write_json

log = logging.getLogger(__name__)

# The datasets whose training loop is data-parallel (darts.distributed): they start one process per
# device the job holds; the others run as one process.
DATA_PARALLEL = frozenset({"cifar10", "imagenet"})


@dataclass(frozen=True)
class Trainer:
    """One ``darts train DATASET``: its help line and its own options (``configure`` must not import
    torch, so ``darts --help`` stays fast). Training itself is ``darts.train.run.train_genotype``."""

    help: str
    configure: Callable[[argparse.ArgumentParser], None]


def add_split_option(parser: argparse.ArgumentParser, section: str) -> None:
    parser.add_argument(
        "--split", choices=("full", "search"), default="full",
        help=f"full: train on the training set, report the test metric; search: a selection run "
             f"(params section {section}) trained on the search split and scored on its held-out part",
    )


def _configure_cifar10(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="the CIFAR-10 folder `darts data cifar10` wrote "
                                                  "(default: <data.root>/cifar10)")
    add_split_option(parser, "select_cnn")


def _configure_imagenet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--imagenet-root", type=Path,
                        help="an ImageFolder root with train/ and val/ (default: data.imagenet_root, "
                             "else the root `darts data imagenet` recorded)")
    parser.add_argument(
        "--if-missing", choices=("fail", "skip"), default="fail",
        help="skip: at smoke scale, when no ImageNet data exists, write metrics.json "
             '{"status": "not_run", ...} and succeed; at paper scale a missing ImageNet always fails',
    )


def _configure_lm(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="the corpus folder (train.txt, valid.txt, test.txt) "
                                                  "`darts data` wrote (default: <data.root>/<dataset>)")


def _configure_ptb(parser: argparse.ArgumentParser) -> None:
    _configure_lm(parser)
    parser.add_argument(
        "--split", choices=("full", "search"), default="full",
        help="full: the final PTB run (params train_ptb), valid and test perplexity; search: a selection "
             "run (params select_rnn) scored on validation perplexity, the test set unread",
    )


TRAINERS: dict[str, Trainer] = {
    "cifar10": Trainer("CIFAR-10: final evaluation (App. A.2.1) or a selection run (--split search)",
                       _configure_cifar10),
    "imagenet": Trainer("ImageNet, mobile setting (App. A.2.3): top-1/top-5 error", _configure_imagenet),
    "ptb": Trainer("Penn Treebank (App. A.2.2): valid/test perplexity, or a selection run (--split search)",
                   _configure_ptb),
    "wikitext2": Trainer("WikiText-2 transfer (App. A.2.4): valid/test perplexity", _configure_lm),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage examples' lines
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for name, trainer in TRAINERS.items():
        p = sub.add_parser(name, help=trainer.help, description=trainer.help)
        p.add_argument("--genotype", required=True, help="a published name (e.g. DARTS_V2), a genotype.json, "
                                                         "or an official Genotype(...) string")
        p.add_argument("--seed", type=seed_arg, default=0)
        p.add_argument("--out", type=Path, required=True, help="the run directory to write")
        trainer.configure(p)
        launch.add_launch_args(p)
        add_config_args(p)


def run(args: argparse.Namespace) -> int:
    from darts.train.run import SPACE, data_root, train_genotype

    params = params_from_args(args)
    genotype = load_genotype(args.genotype, SPACE[args.dataset])
    if args.dataset == "imagenet":
        try:
            data = data_root("imagenet", params, args.imagenet_root)
        except DartsError as exc:
            if args.if_missing != "skip" or params.scale != "smoke":
                raise
            log.warning("recording the stage as not run: %s", exc)
            write_json(Path(args.out) / "metrics.json", {"status": "not_run", "reason": "no ImageNet data"})
            return 0
    else:
        data = args.data
    code = launch.relaunch(args, params.runtime.device, data_parallel=args.dataset in DATA_PARALLEL,
                           what=f"darts train {args.dataset}", configure=configure)
    if code is not None:  # this process launched the run's processes, which have ended
        return code
    train_genotype(args.dataset, params, genotype, args.seed, args.out, split=getattr(args, "split", "full"), data=data)
    return 0
