"""Fetch or copy a dataset, verify it, and write its manifest.json.

CIFAR-10, PTB and WikiText-2 are copied from a mirror (--mirror, else $DARTS_DATA_MIRROR, else
data.mirror in params) or downloaded from their known sources, resumably, with checksum checks.
ImageNet is referenced in place (--imagenet-root, else data.imagenet_root, else the mirror's
imagenet/ or imagenet-mini/). The manifest records whether the data is the full official dataset
or a subset, with its counts.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from darts.config import add_config_args, params_from_args

DATASETS = ("cifar10", "ptb", "wikitext2", "imagenet")
MIRROR_ENV = "DARTS_DATA_MIRROR"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=DATASETS)
    parser.add_argument("--out", type=Path, help="the dataset's folder (default: <data.root>/<dataset>)")
    parser.add_argument("--mirror", type=Path,
                        help=f"a folder laid out like shared/datasets/ to copy from (default: ${MIRROR_ENV}, "
                             f"else data.mirror)")
    parser.add_argument("--imagenet-root", type=Path,
                        help="an ImageFolder root (train/<wnid>/, val/<wnid>/) to reference in place "
                             "(default: data.imagenet_root)")
    parser.add_argument("--force", action="store_true", help="fetch again even if the folder is complete")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.data.prepare import prepare

    params = params_from_args(args)
    out = args.out or Path(params.data.root) / args.dataset
    mirror = args.mirror or os.environ.get(MIRROR_ENV) or params.data.mirror
    manifest = prepare(
        args.dataset, out, mirror=mirror, imagenet_root=args.imagenet_root or params.data.imagenet_root,
        cache_dir=Path(params.runtime.checkpoint_dir) / "downloads", timeout=params.data.download_timeout,
        progress=params.runtime.progress, force=args.force,
    )
    print(describe(manifest, out))
    return 0


def describe(manifest: dict, out: Path) -> str:
    """One line: full or subset, the counts, where the data came from and where the manifest is."""
    unit = "tokens" if "vocab_size" in manifest else "images"
    counts = ", ".join(f"{n:,} {split}" for split, n in manifest["splits"].items())
    extra = f"vocabulary {manifest['vocab_size']:,}" if unit == "tokens" else f"{manifest['classes']} classes"
    kind = "full" if manifest["full"] else "SUBSET"
    source = manifest["source"]
    origin = source.get("path") or source.get("root") or ", ".join(source.get("urls", []))
    return (f"{manifest['dataset']}: {kind} ({counts} {unit}; {extra}) from {source['kind']} {origin} "
            f"-> {out / 'manifest.json'}")
