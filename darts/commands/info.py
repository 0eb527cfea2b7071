"""Parameter count and multiply-adds of a genotype's evaluation network, at the paper's evaluation size
whatever the active scale (``--layers``/``--channels`` override it).

  darts info --genotype DARTS_V2 --dataset cifar10          20 cells, 36 channels, 32x32: 3,349,342 params
  darts info --genotype runs/select_cnn/second/genotype.json --dataset imagenet --json

Parameters exclude the auxiliary tower, as the official code counts them; multiply-adds are those of
convolutions and linear layers for one image at the evaluation resolution.
"""

from __future__ import annotations

import argparse
import importlib
import json
from typing import Any

# dataset -> (genotype space, "module:function"). The function is called as
# function(dataset, genotype, layers=..., channels=...) and returns a dict with at least the
# integer keys "params" and "mult_adds" (optionally "mult_adds_per": "image" or "token").
DATASETS: dict[str, tuple[str, str]] = {
    "cifar10": ("cnn", "darts.spaces.cnn.counting:network_info"),
    "imagenet": ("cnn", "darts.spaces.cnn.counting:network_info"),
    "ptb": ("rnn", "darts.spaces.rnn.counting:network_info"),
    "wikitext2": ("rnn", "darts.spaces.rnn.counting:network_info"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--genotype", required=True, metavar="NAME|FILE|STRING",
                        help="a published name, a genotype.json, or an official Genotype(...) string")
    parser.add_argument("--dataset", required=True, choices=tuple(DATASETS))
    parser.add_argument("--layers", type=int, help="cells (default: the paper's evaluation network)")
    parser.add_argument("--channels", type=int, help="initial channels (default: the paper's evaluation network)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from darts.errors import DartsError
    from darts.genotypes import load_genotype

    for option in ("layers", "channels"):
        value = getattr(args, option)
        if value is not None and value <= 0:
            raise DartsError(f"--{option} must be positive, got {value}")
    space, target = DATASETS[args.dataset]
    genotype = load_genotype(args.genotype, space)
    module, function = target.split(":")
    info = getattr(importlib.import_module(module), function)(
        args.dataset, genotype, layers=args.layers, channels=args.channels
    )
    info = {"genotype": args.genotype, **info}
    print(json.dumps(info) if args.json else _describe(info))
    return 0


def _describe(info: dict[str, Any]) -> str:
    size = ", ".join(f"{k} {info[k]}" for k in ("layers", "channels", "classes", "resolution", "emsize", "nhid", "vocab")
                     if k in info)
    network = f" ({info['network']}: {size})" if "network" in info else ""
    lines = [f"{info['genotype']} on {info['dataset']}{network}"]
    lines.append(f"  params     {info['params']:>13,}  ({info['params'] / 1e6:.2f}M)")
    if info.get("params_auxiliary"):
        lines.append(f"  auxiliary  {info['params_auxiliary']:>13,}  (tower, not counted above)")
    per = info.get("mult_adds_per", "image")
    lines.append(f"  mult-adds  {info['mult_adds']:>13,}  ({info['mult_adds'] / 1e6:.0f}M per {per})")
    return "\n".join(lines)
