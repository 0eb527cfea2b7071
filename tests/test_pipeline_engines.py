"""DVC and Snakemake run one pipeline: the dry run lists exactly DVC's stages, commands and outputs;
the local profile runs part of it and resumes a killed job; the user's `slurm` profile, installed by
the project's install line, is found by name (`snakemake --profile slurm`) and runs all of it on a
real single-node SLURM, every stage a SLURM job named in squeue, and `dvc commit -f` versions the
result."""

from __future__ import annotations

import os
import re
import sys
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from darts.io import read_json
from pipeline_helpers import REPO, free_port_pair, fresh_clone, kill_after_checkpoint, run, tool_env

SLURM_SCRIPT = REPO / "workflow" / "slurm" / "localslurm.sh"
WORKFLOW_PROFILE = REPO / "workflow" / "profiles" / "default" / "config.yaml"
# What only a site knows: never in the workflow profile, whose keys override the user's profile
# (a `default-resources` there would replace the user's whole block, partition and account included).
SITE_KEYS = {"executor", "jobs", "cores", "default-resources", "set-resources"}


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
    assert len(snake) == len(dvc) >= 60
    assert sorted(snake.values()) == sorted(dvc.values())
    # the paper-scale lists: 2 orders x 4 seeds per space, 3 CNN methods (first, second, random) x 10 runs
    assert sum(name.startswith("search_cnn@") for name in dvc) == 8
    assert sum(name.startswith("train_cifar10@") for name in dvc) == 30


def snakemake(repo: Path, env: dict[str, str], *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return run([str(Path(sys.executable).parent / "snakemake"), *args], repo, env, timeout=timeout)


@pytest.mark.slow
def test_local_profile_partial_run_and_resume(tmp_path, mirror):
    """A partial run through the local profile, then a job killed mid-run resumes when rerun."""
    repo = fresh_clone(tmp_path / "repo")
    env = tool_env(mirror)
    profile = ["--profile", "workflow/profiles/local", "--cores", "1"]
    snakemake(repo, env, *profile, "runs/search_rnn/random")
    assert (repo / "runs/search_rnn/random/sample1/genotype.json").is_file()
    assert not (repo / "runs/search_rnn/first").exists()    # a partial run: only the target and its inputs

    stage_out = "runs/search_rnn/first/s0"
    kill_after_checkpoint([str(Path(sys.executable).parent / "snakemake"), *profile, stage_out], repo, env)
    assert not (repo / stage_out / "genotype.json").exists()
    snakemake(repo, env, *profile, "--unlock")  # a hard kill leaves Snakemake's lock behind
    snakemake(repo, env, *profile, stage_out)
    log = (repo / ".snakemake/logs/search_rnn__first_0.log").read_text()
    assert "resuming from" in log, log[-3000:]
    assert (repo / stage_out / "genotype.json").is_file()


def test_workflow_profile_holds_no_site_settings():
    """Snakemake loads workflow/profiles/default by itself and lets it override the user's profile."""
    keys = set(yaml.safe_load(WORKFLOW_PROFILE.read_text()))
    assert not keys & SITE_KEYS, keys & SITE_KEYS
    assert not any(key.startswith("slurm-") for key in keys)
    assert {"retries", "rerun-incomplete", "latency-wait"} <= keys


def install_slurm_profile(repo: Path, config_home: Path, **site_edits) -> dict[str, str]:
    """The project's install line with ``$XDG_CONFIG_HOME`` at ``config_home`` (as a user's
    ``~/.config``), then a site's own edits to the installed copy; returns the env that finds it."""
    env = dict(os.environ, XDG_CONFIG_HOME=str(config_home))
    run([str(repo / "workflow" / "slurm" / "install-profile.sh")], repo, env)
    installed = config_home / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == (REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text()
    if site_edits:
        config = yaml.safe_load(installed.read_text())
        config.update(site_edits)
        installed.write_text(yaml.safe_dump(config, sort_keys=False))
    return {"XDG_CONFIG_HOME": str(config_home)}


def test_installed_slurm_profile_is_found_by_name(tmp_path, mirror):
    """`snakemake --profile slurm`, as cluster users type it, from the root: the user's profile and
    the workflow profile both apply, and the user's default resources (partition) reach the jobs."""
    repo = fresh_clone(tmp_path / "repo")
    env = tool_env(mirror, **install_slurm_profile(repo, tmp_path / "config"))
    out = snakemake(repo, env, "--profile", "slurm", "--dry-run")
    text = out.stdout + out.stderr
    assert "Using profiles slurm and workflow specific profile" in text, text[-3000:]
    assert "slurm_partition=gpu" in text


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


def first_queued_job(proc: subprocess.Popen, env: dict[str, str], timeout: float = 600) -> tuple[str, str]:
    """(name, comment) of the first job squeue lists while ``proc`` runs: the README's squeue format."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        listed = subprocess.run(["squeue", "--noheader", "-o", "%j|%k"], env=env, capture_output=True, text=True)
        for line in listed.stdout.splitlines():
            name, comment = line.strip().split("|", 1)
            return name, comment
        time.sleep(0.5)
    raise AssertionError(f"no job in squeue while snakemake ran (exit {proc.poll()})")


@pytest.mark.slow
def test_slurm_profile_runs_the_smoke_pipeline(tmp_path, mirror, slurm):
    conf, bin_dir, state = slurm
    repo = fresh_clone(tmp_path / "repo")
    # the site's own tuning of its copy: this one-node SLURM answers within a second
    site = install_slurm_profile(repo, tmp_path / "config", **{"slurm-init-seconds-before-status-checks": 2,
                                                              "seconds-between-status-checks": 2})
    env = tool_env(mirror, SLURM_CONF=conf, **site)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    start = time.monotonic()
    log_path = tmp_path / "snakemake.log"
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "snakemake"), "--profile", "slurm"], cwd=repo,
                                env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
        try:
            name, comment = first_queued_job(proc, env)
            code = proc.wait(timeout=1800)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    output = log_path.read_text()
    assert code == 0, output[-6000:]
    print(f"snakemake --profile slurm at smoke scale: {time.monotonic() - start:.0f} s")
    assert (repo / "results/table1_cifar10.csv").stat().st_size > 0
    # squeue names the rule in the comment field; the job name carries the profile's prefix
    assert name.startswith("darts_") and comment.startswith("rule_"), (name, comment)

    # every stage ran as a SLURM job that succeeded (instances that only write a skip marker, if the
    # pipeline has any, run on the submit host)
    stages = dvc_stages(repo)
    skipped = {name for name, (_, outs) in stages.items() if all(is_skip_marker(repo / o) for o in outs)}
    log = (state / "log" / "slurmctld.log").read_text()
    submitted = re.findall(r"_slurm_rpc_submit_batch_job: JobId=(\d+)", log)
    succeeded = re.findall(r"_job_complete: JobId=(\d+) WEXITSTATUS 0", log)
    errors = [line for line in output.splitlines() if "Error" in line or "failed" in line.lower()]
    assert len(submitted) == len(set(succeeded)) == len(stages) - len(skipped) >= 30, errors[-40:]

    run(["dvc", "commit", "--force"], repo, env)
    status = run(["dvc", "status"], repo, env).stdout
    assert "up to date" in status, status
