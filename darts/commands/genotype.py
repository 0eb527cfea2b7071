"""Show, convert or sample genotypes (no torch, no params file).

  darts genotype show DARTS_V2                      a published cell (CNN first; --space rnn for the RNN one)
  darts genotype show runs/search_cnn/second-s0/genotype.json
  darts genotype show "Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)"
  darts genotype convert "Genotype(...)" --out genotype.json    official string -> JSON
  darts genotype convert genotype.json                           JSON -> official string
  darts genotype random --space cnn --seed 0 --out genotype.json uniform over the search space
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from darts.genotypes import Genotype, load_genotype, random_genotype
from darts.io import write_text

SPACES = ("cnn", "rnn")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    show = sub.add_parser("show", help="print a genotype cell by cell, and its official string")
    show.add_argument("genotype", metavar="NAME|FILE|STRING")
    show.add_argument("--space", choices=SPACES, help="the space a published NAME is looked up in (default: cnn)")

    convert = sub.add_parser("convert", help="official Genotype(...) string <-> JSON")
    convert.add_argument("genotype", metavar="NAME|FILE|STRING")
    convert.add_argument("--space", choices=SPACES, help="the space a published NAME is looked up in (default: cnn)")
    convert.add_argument("--to", choices=("json", "official"),
                         help="output form (default: JSON for a string or a name, the official string for JSON)")
    convert.add_argument("--out", type=Path, help="write here (atomically) instead of printing")

    sample = sub.add_parser("random", help="a genotype drawn uniformly from the search space")
    sample.add_argument("--space", choices=SPACES, required=True)
    sample.add_argument("--seed", type=int, required=True)
    sample.add_argument("--out", type=Path, help="write the JSON here (atomically) instead of printing")


def run(args: argparse.Namespace) -> int:
    if args.action == "random":
        genotype = random_genotype(args.space, random.Random(args.seed))
        extra = {"name": f"random_{args.space}-{args.seed}", "source": f"uniform, seed {args.seed}"}
        _emit_json(genotype, extra, args.out)
        return 0

    genotype = load_genotype(args.genotype, args.space)
    if args.action == "show":
        print(f"{args.genotype if len(args.genotype) <= 60 else 'genotype'} ({genotype.space.upper()})")
        print(genotype.describe())
        print(f"official: {genotype.to_official_string()}")
        return 0

    to = args.to or ("official" if _is_json_file(args.genotype) else "json")
    if to == "official":
        text = genotype.to_official_string() + "\n"
        if args.out:
            write_text(args.out, text)
        else:
            print(text, end="")
    else:
        _emit_json(genotype, {}, args.out)
    return 0


def _is_json_file(spec: str) -> bool:
    path = Path(spec)
    return "Genotype(" not in spec and path.is_file() and path.read_text(encoding="utf-8").lstrip().startswith("{")


def _emit_json(genotype: Genotype, extra: dict, out: Path | None) -> None:
    if out:
        genotype.save(out, **extra)
    else:
        print(json.dumps({**extra, **genotype.to_json()}))
