"""Create or update a workspace: the pipeline at one scale in its own folder (the smoke run's home).

  darts workspace smoke --scale smoke && cd smoke && dvc repro      # what `make smoke` does
  cd smoke && snakemake --profile workflow/profiles/local            # the same workspace, Snakemake

The folder gets dvc.yaml, the code the stages depend on, and params.yaml resolved at the scale, so
its instances are the scale's (smoke: 2 seeds, 2 CIFAR-10 runs) and DVC and Snakemake agree; it
has its own runs/, data/, results/ and DVC cache. Run it again after editing the project: it copies
only what changed. The project's files are never modified.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from darts.config import SCALES
from darts.pipeline.workspace import sync

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", type=Path, help="the workspace folder (created if missing)")
    parser.add_argument("--scale", choices=SCALES, required=True, help="the scale its params.yaml is resolved at")
    parser.add_argument("--project", type=Path, default=Path("."), help="the project's root (default: .)")


def run(args: argparse.Namespace) -> int:
    changed = sync(args.project, args.dir, args.scale)
    log.info("workspace %s at scale %s: %s", args.dir, args.scale,
             f"{len(changed)} files updated" if changed else "up to date")
    return 0
