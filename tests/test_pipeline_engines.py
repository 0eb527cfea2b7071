"""DVC and Snakemake run one pipeline: the dry run lists exactly DVC's stages, commands and outputs;
the local profile runs part of it and resumes a killed job; the SLURM profile runs all of it on a
real single-node SLURM, every active stage a SLURM job, and `dvc commit -f` versions the result."""

from __future__ import annotations

import os
import re
import sys
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from darts.io import read_json
from pipeline_helpers import REPO, fresh_clone, kill_after_checkpoint, run, tool_env

SLURM_SCRIPT = REPO / "workflow" / "slurm" / "localslurm.sh"


def dry_run_jobs(output: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """rule name -> (shell command, outputs), parsed from `snakemake --dry-run --printshellcmds`."""
    jobs = {}
    for block in re.split(r"\n(?=(?:local)?rule \S+:\n)", output):
        head = re.match(r"(?:local)?rule (\S+):\n", block)
        if not head or head[1] == "all":
            continue
        outputs = re.search(r"^\s+output: (.*)$", block, re.M)[1].split(", ")
        shell = re.search(r"^Shell command: \((.*)\) > \S+ 2>&1$", block, re.M)[1]
        jobs[head[1]] = (shell, tuple(outputs))
    return jobs


def dvc_stages(repo: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """DVC's own view: stage address -> (command, outputs)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        return {s.name: (s.cmd, tuple(o.def_path for o in s.outs)) for s in dvc.index.stages}


def test_snakemake_dry_run_lists_exactly_dvcs_stages(tmp_path, mirror):
    repo = fresh_clone(tmp_path / "repo", scale="paper")
    out = run([str(Path(sys.executable).parent / "snakemake"), "--profile", "workflow/profiles/local",
               "--dry-run", "--printshellcmds"], repo, tool_env(mirror)).stdout
    snake = dry_run_jobs(out)
    dvc = dvc_stages(repo)
    assert len(snake) == len(dvc) > 100
    assert sorted(snake.values()) == sorted(dvc.values())
    # the paper-scale matrix: 2 orders x 4 seeds per space, 7 CNN methods x 10 runs
    assert sum(name.startswith("search_cnn@") for name in dvc) == 8
    assert sum(name.startswith("train_cifar10@") for name in dvc) == 70


def snakemake(repo: Path, env: dict[str, str], *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).parent / "snakemake"), *args], repo, env, timeout=timeout)


@pytest.mark.slow
def test_local_profile_partial_run_and_resume(tmp_path, mirror):
    """A partial run through the local profile, then a job killed mid-run resumes when rerun."""
    repo = fresh_clone(tmp_path / "repo")
    env = tool_env(mirror)
    profile = ["--profile", "workflow/profiles/local", "--cores", "1"]
    snakemake(repo, env, *profile, "runs/train_ptb/DARTS_V2", "runs/random_rnn", "runs/search_rnn/first/s3")
    assert read_json(repo / "runs/train_ptb/DARTS_V2/metrics.json")["status"] == "skipped"  # published cells off
    assert read_json(repo / "runs/search_rnn/first/s3/metrics.json")["status"] == "skipped"  # seed 3: paper only
    assert (repo / "runs/random_rnn/sample1/genotype.json").is_file()

    stage_out = "runs/search_rnn/first/s0"
    kill_after_checkpoint([str(Path(sys.executable).parent / "snakemake"), *profile, stage_out], repo, env)
    assert not (repo / stage_out / "genotype.json").exists()
    snakemake(repo, env, *profile, "--unlock")  # a hard kill leaves Snakemake's lock behind
    snakemake(repo, env, *profile, stage_out)
    log = (repo / ".snakemake/logs/search_rnn__first_0.log").read_text()
    assert "resuming from" in log, log[-3000:]
    assert (repo / stage_out / "genotype.json").is_file()


def free_port_pair() -> int:
    while True:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            try:
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


@pytest.fixture()
def slurm(tmp_path):
    """A single-node SLURM for this test: (SLURM_CONF, the folder of its srun wrapper, its state folder)."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM binaries not installed ({', '.join(missing)}): apt-get install slurm-wlm munge")
    state = tmp_path / "slurm"
    env = dict(os.environ, DARTS_SLURM_PORT=str(free_port_pair()))
    started = subprocess.run([str(SLURM_SCRIPT), "start", str(state)], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    conf = re.search(r"export SLURM_CONF=(\S+)", started.stdout)[1]
    bin_dir = re.search(r"export PATH=(\S+):\$PATH", started.stdout)[1]
    yield conf, bin_dir, state
    subprocess.run([str(SLURM_SCRIPT), "stop", str(state)], env=env, check=True)


def is_skip_marker(path: Path) -> bool:
    metrics = path / "metrics.json"
    return metrics.is_file() and read_json(metrics).get("status") == "skipped"


@pytest.mark.slow
def test_slurm_profile_runs_the_smoke_pipeline(tmp_path, mirror, slurm):
    conf, bin_dir, state = slurm
    repo = fresh_clone(tmp_path / "repo")
    env = tool_env(mirror, SLURM_CONF=conf)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    start = time.monotonic()
    snakemake(repo, env, "--profile", "workflow/profiles/slurm", "--slurm-init-seconds-before-status-checks", "2",
              "--seconds-between-status-checks", "2")
    print(f"snakemake --profile workflow/profiles/slurm at smoke scale: {time.monotonic() - start:.0f} s")
    assert (repo / "results/table1_cifar10.csv").stat().st_size > 0

    # every stage active at this scale ran as a SLURM job that succeeded; the skipped instances ran
    # on the submit host (local rules), never queued
    stages = dvc_stages(repo)
    skipped = {name for name, (_, outs) in stages.items() if all(is_skip_marker(repo / o) for o in outs)}
    assert "search_cnn@second-3" in skipped and "search_cnn@second-1" not in skipped
    log = (state / "log" / "slurmctld.log").read_text()
    submitted = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log)
    succeeded = re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0", log)
    assert len(submitted) == len(set(succeeded)) == len(stages) - len(skipped) >= 30

    run(["dvc", "commit", "--force"], repo, env)
    status = run(["dvc", "status"], repo, env).stdout
    assert "up to date" in status, status
