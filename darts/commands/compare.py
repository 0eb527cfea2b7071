"""Diff our results against the paper's tables.

  darts compare results/ [--strict]

Prints, table by table, each number of ours beside the paper row it is diffed against, flagging
those outside the paper's mean ± compare.sigmas std, or outside the tolerance in params.yaml's
`compare:` section where the paper gives a single number. Exits 0 unless --strict, which fails
when anything is flagged, any row of ours is not at paper scale, or a row of ours did not run.
"""

from __future__ import annotations

import argparse
import sys

from darts.config import add_config_args, params_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="?", default="results",
                        help="the folder `darts tabulate` wrote (default: results)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when a number is flagged or a row of ours is not a paper-scale result")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts.report.compare import compare_results, format_comparison, read_results, strict_failures

    params = params_from_args(args)
    results = compare_results(read_results(args.results), params.compare)
    print(format_comparison(results))
    failures = strict_failures(results)
    if not failures:
        print("\nall numbers of ours lie within the paper's bands, at paper scale")
        return 0
    print(f"\n{len(failures)} problem(s):")
    for failure in failures:
        print(f"  - {failure}")
    if args.strict:
        print("darts compare --strict: FAILED", file=sys.stderr)
        return 1
    return 0
