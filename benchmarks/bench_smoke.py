"""Wall time of the smoke pipeline (`make smoke` after set-up), and where it goes.

Run: python benchmarks/bench_smoke.py [--before REV] [--mirror DIR]

For this checkout (and, with --before, a git revision run side by side in the same invocation) it
makes a fresh smoke folder, runs `dvc repro` twice (the second must be a no-op) and prints a table:
total wall seconds, stages run, the seconds inside the stages' own training loops (the
`wall_seconds` of every search_cost.json / train_cost.json), and the rest: engine and process
start-up (DVC's hashing and lock file, Python and torch imports, data loading, tabulate).
A revision from before `darts workspace` existed runs the old way: a clone with `scale: smoke` in
its params.yaml, its own code first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env_for(mirror: Path, code: Path | None) -> dict[str, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", DVC_NO_ANALYTICS="1",
               DARTS_DATA_MIRROR=str(mirror))
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def prepare(rev: str | None, dest: Path) -> tuple[Path, Path | None]:
    """A smoke folder for this checkout (darts workspace) or for ``rev`` (a clone at scale smoke)."""
    if rev is None:
        subprocess.run([str(BIN / "darts"), "workspace", str(dest), "--scale", "smoke", "--project", str(REPO)],
                       check=True, capture_output=True)
        return dest, None
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    subprocess.run(["git", "checkout", "--quiet", rev], cwd=dest, check=True)
    params = dest / "params.yaml"
    params.write_text(re.sub(r"^scale: paper$", "scale: smoke", params.read_text(), flags=re.M))
    return dest, dest


def repro(folder: Path, env: dict[str, str]) -> tuple[float, int, str]:
    """`dvc repro` in ``folder``: wall seconds, stages run, the combined output."""
    start = time.perf_counter()
    proc = subprocess.run(["dvc", "repro"], cwd=folder, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        print(f"{folder}: dvc repro exited {proc.returncode}:\n{out[-3000:]}", file=sys.stderr)
    return seconds, len(re.findall(r"Running stage '", out)), out


def loop_seconds(runs: Path) -> float:
    total = 0.0
    for name in ("search_cost.json", "train_cost.json"):
        for path in runs.rglob(name):
            total += float(json.loads(path.read_text()).get("wall_seconds") or 0.0)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="a git revision to measure side by side (e.g. 7e21609)")
    parser.add_argument("--mirror", type=Path, default=Path(os.environ.get("DARTS_DATA_MIRROR", REPO.parent / "shared" / "datasets")))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-smoke-") as tmp:
        for label, rev in ([("before " + args.before, args.before)] if args.before else []) + [("this checkout", None)]:
            folder, code = prepare(rev, Path(tmp) / label.replace(" ", "_"))
            env = env_for(args.mirror.resolve(), code)
            first, stages, _ = repro(folder, env)
            second, again, _ = repro(folder, env)
            inside = loop_seconds(folder / "runs")
            rows.append((label, first, stages, inside, first - inside, second, again))
    print("| pipeline | `dvc repro` s | stages run | in training loops s | engine + start-up s (share) | second `dvc repro` s (stages) |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, first, stages, inside, rest, second, again in rows:
        print(f"| {label} | {first:.0f} | {stages} | {inside:.0f} | {rest:.0f} ({rest / first:.0%}) | {second:.1f} ({again}) |")


if __name__ == "__main__":
    main()
