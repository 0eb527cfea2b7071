"""Parameter count and multiply-adds of a genotype's evaluation network, at the size params.yaml gives
it (``train_cifar10`` / ``train_imagenet``: layers, init_channels; ``train_ptb`` / ``train_wikitext2``:
emsize, nhid), like every command at the file's scale unless ``--scale``/``--set`` say otherwise;
``--layers``/``--channels`` size a CNN for this one count.

  darts info --genotype DARTS_V2 --dataset cifar10          20 cells, 36 channels, 32x32: 3,349,342 params
  darts info --genotype runs/select_cnn/second/genotype.json --dataset imagenet --json
  darts info --genotype DARTS_V2 --dataset ptb --set train_ptb.emsize=700 --set train_ptb.nhid=700

Parameters exclude the auxiliary tower, as the official code counts them; multiply-adds are those of
convolutions and linear layers for one image at the evaluation resolution (per token for the
recurrent networks).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from darts.config import add_config_args, params_from_args
from darts.errors import DartsError

# dataset -> the genotype space of its evaluation network
DATASETS: dict[str, str] = {"cifar10": "cnn", "imagenet": "cnn", "ptb": "rnn", "wikitext2": "rnn"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--genotype", required=True, metavar="NAME|FILE|STRING",
                        help="a published name, a genotype.json, or an official Genotype(...) string")
    parser.add_argument("--dataset", required=True, choices=tuple(DATASETS))
    parser.add_argument("--layers", type=int, help="cells: --set train_<dataset>.layers=N for this count")
    parser.add_argument("--channels", type=int, help="initial channels: --set train_<dataset>.init_channels=N")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.data import registry
    from darts.genotypes import load_genotype
    from darts.spaces.cnn import counting as cnn_counting
    from darts.spaces.rnn import counting as rnn_counting

    section_name = f"train_{args.dataset}"
    space = DATASETS[args.dataset]
    if space == "rnn" and (args.layers is not None or args.channels is not None):
        raise DartsError(f"--layers/--channels size CNN networks; the {args.dataset} network's size is params "
                         f"{section_name}.emsize/nhid (--set {section_name}.nhid=...)")
    for option, key in (("layers", "layers"), ("channels", "init_channels")):   # validated as params are
        if getattr(args, option) is not None:
            args.overrides = [*args.overrides, f"{section_name}.{key}={getattr(args, option)}"]
    section = getattr(params_from_args(args), section_name)
    genotype = load_genotype(args.genotype, space)
    if space == "cnn":
        info = cnn_counting.network_info(args.dataset, genotype, section.layers, section.init_channels)
    else:
        vocab = registry.get(args.dataset).vocab_size
        info = {"dataset": args.dataset, "network": "recurrent language model",
                **rnn_counting.describe_rnn(genotype, vocab, section.emsize, section.nhid)}
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
