"""How fast does `darts --help` answer? Compared side by side with bare Python and `import torch`.

Run: python benchmarks/bench_cli_startup.py [--repeat N]. Prints a table (median wall seconds);
the ratio column is relative to a bare interpreter start measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "darts --help": [sys.executable, "-m", "darts", "--help"],
    "darts search --help": [sys.executable, "-m", "darts", "search", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def time_command(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    results = {name: time_command(cmd, args.repeat) for name, cmd in CASES.items()}
    base = results["python -c pass"]
    print(f"| command | median s (n={args.repeat}) | × bare python |")
    print("|---|---:|---:|")
    for name, seconds in results.items():
        print(f"| `{name}` | {seconds:.3f} | {seconds / base:.1f} |")


if __name__ == "__main__":
    main()
