"""The launch path (darts/launch.py): how many processes a job's devices call for, that dvc.yaml's
cluster resources and the processes started agree at paper scale, the guards, and real launches:
2 CPU processes (gloo) from `--nproc 2`, and the ImageNet stage's command as a job of a local
single-node SLURM whose node has 2 fake GPUs (`--gres=gpu:2`: SLURM_GPUS_ON_NODE=2 starts 2 ranks).
The 2-process CIFAR-10 run checked against one process is tests/test_train_cnn.py's launch test."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from darts import launch
from darts.checkpoint import read_verified
from darts.cli import main
from darts.commands import search as search_cmd
from darts.commands import train as train_cmd
from darts.config import load_params
from darts.errors import ConfigError, DartsError
from darts.genotypes import load_genotype
from darts.io import read_json
from darts.train import cnn
from pipeline_helpers import free_port_pair

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
SLURM_SCRIPT = REPO / "workflow" / "slurm" / "localslurm.sh"


def slurm_env(gpus: int | None, nodes: int = 1, **extra: str) -> dict[str, str]:
    """What SLURM exports to a job of ``nodes`` nodes holding ``gpus`` GPUs on each."""
    env = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": str(nodes), "SLURM_NNODES": str(nodes), **extra}
    if gpus:
        env |= {"SLURM_GPUS_ON_NODE": str(gpus), "SLURM_JOB_GPUS": ",".join(map(str, range(gpus)))}
    return env


# -- how many processes ---------------------------------------------------------------------------

def test_processes_follow_what_the_job_was_given():
    # a workstation: the visible CUDA devices, unless the params run on the CPU; a CPU-only machine: 1
    assert launch.resolve_slots(None, "auto", {}, cuda_count=8).world_size == 8
    assert launch.resolve_slots(None, "cuda", {}, cuda_count=1).world_size == 1
    assert launch.resolve_slots(None, "auto", {}, cuda_count=0).world_size == 1
    assert launch.resolve_slots(None, "cpu", {}, cuda_count=8).world_size == 1
    # SLURM: the GPUs of this node, from whichever variable the site's SLURM sets
    assert launch.resolve_slots(None, "auto", slurm_env(4)) == launch.Slots(4, 1, "SLURM_GPUS_ON_NODE=4")
    assert launch.resolve_slots(None, "auto", {"SLURM_JOB_ID": "1", "SLURM_JOB_GPUS": "0-3,6"}).nproc == 5
    assert launch.resolve_slots(None, "auto", {"SLURM_JOB_ID": "1", "SLURM_GPUS_PER_NODE": "a100:4"}).nproc == 4
    assert launch.resolve_slots(None, "auto", {"SLURM_JOB_ID": "1", "SLURM_GPUS_PER_NODE": "gpu:a100:2"}).nproc == 2
    assert launch.resolve_slots(None, "auto", slurm_env(None), cuda_count=8).world_size == 1
    assert launch.resolve_slots(None, "auto", slurm_env(8, nodes=2)).world_size == 16
    # the override wins; it counts processes per node
    assert launch.resolve_slots(2, "cpu", {}).world_size == 2
    assert launch.resolve_slots(3, "auto", slurm_env(8, nodes=2)) == launch.Slots(3, 2, "--nproc 3")
    with pytest.raises(ConfigError, match="at least 1"):
        launch.resolve_slots(0, "auto", {})
    # a process of a launch never launches again
    assert launch.is_worker({"WORLD_SIZE": "1"}) and not launch.is_worker({})


def stage_bodies() -> dict[str, dict]:
    """dvc.yaml's stages, foreach/matrix bodies unwrapped."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


def data_parallel(cmd: str) -> bool:
    """Whether the stage's command starts one process per device (the commands' own opt-in lists)."""
    words = cmd.split()
    assert words[0] == "darts", cmd
    if words[1] == "train":
        return words[2] in train_cmd.DATA_PARALLEL
    if words[1] == "search":
        return words[2] in search_cmd.DATA_PARALLEL
    return False


def test_dvc_resources_and_the_processes_started_agree():
    """At paper scale a stage's job gets meta.resources from SLURM; the launch derives the processes from
    what SLURM then exports. Every GPU a stage reserves gets a process, and a stage whose command runs
    as one process reserves at most one GPU."""
    checked = 0
    for name, stage in stage_bodies().items():
        resources = stage["meta"]["resources"]
        gpus, nodes = resources.get("gpus", 0), resources.get("nodes", 1)
        device = "auto"  # paper scale
        if data_parallel(stage["cmd"]):
            slots = launch.resolve_slots(None, device, slurm_env(gpus // nodes, nodes))
            assert slots.world_size == max(gpus, 1), (name, slots)
            assert gpus % nodes == 0, f"{name}: {gpus} GPUs do not split evenly over {nodes} nodes"
            checked += gpus > 1
        else:
            assert gpus <= 1, f"{name} reserves {gpus} GPUs but its command runs as one process"
    assert checked, "no stage holds more than one GPU: the launch is untested against dvc.yaml"
    # the ImageNet stages are the ones: 8 GPUs, 8 processes, batch 128 split evenly
    assert stage_bodies()["train_imagenet"]["meta"]["resources"]["gpus"] == 8
    assert load_params(PARAMS, "paper").train_imagenet.batch_size % 8 == 0


def test_multi_node_launch_is_srun_with_a_c10d_rendezvous_on_the_first_node():
    slots = launch.resolve_slots(None, "auto", slurm_env(4, nodes=2))
    argv = ["train", "imagenet", "--genotype", "DARTS_V2", "--out", "runs/x"]
    cmd = launch.srun_command(slots, argv, slurm_env(4, nodes=2), head="gpu01")
    assert cmd[:cmd.index(sys.executable)] == ["srun", "--overlap", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1",
                                               "--kill-on-bad-exit=1"]
    line = shlex.join(cmd)
    assert f"-m torch.distributed.run --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d " \
           f"--rdzv-endpoint gpu01:{launch.RDZV_PORT + 242} --rdzv-id 4242" in line
    assert line.endswith("-m darts train imagenet --genotype DARTS_V2 --out runs/x")
    assert launch.rdzv_port({"DARTS_RDZV_PORT": "31000"}) == 31000
    with pytest.raises(DartsError, match="SLURM_JOB_NODELIST"):
        launch.first_node({})


def test_worker_arguments_drop_the_override_and_refuse_what_the_launcher_would_take():
    assert launch.worker_argv(["train", "cifar10", "--nproc", "2", "--seed", "1", "--nproc=3"]) == \
        ["train", "cifar10", "--seed", "1"]
    with pytest.raises(DartsError, match="--rdzv"):
        launch.worker_argv(["train", "cifar10", "--rdzv", "x"])


def test_world_size_is_part_of_the_training_run_key(mirror):
    params = load_params(PARAMS, "smoke")
    task, genotype = cnn.Task("cifar10"), load_genotype("DARTS_V2", "cnn")
    summary = {"dataset": "cifar10", "subset": True}
    keys = {n: cnn.run_key(task, params, genotype, 0, summary, n) for n in (1, 2, 8)}
    assert len(set(keys.values())) == 3  # another world size never resumes this one's checkpoint
    assert keys[1] == cnn.run_key(task, params, genotype, 0, summary)  # one process: the key it always had


def smoke(tmp_path: Path) -> list[str]:
    return ["--params", str(PARAMS), "--scale", "smoke", "--set", f"runtime.checkpoint_dir={tmp_path / 'ckpt'}"]


def test_a_launch_from_python_or_of_a_one_process_command_is_refused(tmp_path, mirror, capsys):
    # called from Python, this process's command line is pytest's: it cannot be re-run in N processes
    assert main(["train", "cifar10", "--genotype", "DARTS_V2", "--out", str(tmp_path / "a"),
                 "--data", str(mirror / "cifar10-mini"), "--nproc", "2", *smoke(tmp_path)]) == 1
    assert "Run it as a command" in capsys.readouterr().err
    # a command that is not data-parallel (the language models' training) refuses --nproc > 1
    assert main(["train", "ptb", "--genotype", "DARTS_V2", "--out", str(tmp_path / "p"), "--nproc", "2",
                 *smoke(tmp_path)]) == 2
    assert "not data-parallel yet" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "p").exists()


def test_a_worker_failure_is_the_launch_exit_status(tmp_path, mirror):
    """3 processes cannot split the smoke batch of 16: every worker exits 2 naming it; so does the launch."""
    done = subprocess.run([sys.executable, "-m", "darts", "train", "cifar10", "--genotype", "DARTS_V2",
                           "--out", str(tmp_path / "x"), "--data", str(mirror / "cifar10-mini"), "--nproc", "3",
                           *smoke(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "not divisible by the 3 processes" in done.stderr


# -- a real SLURM job -----------------------------------------------------------------------------

@pytest.fixture()
def slurm(tmp_path):
    """A single-node SLURM whose node has 2 fake GPUs: the environment that submits to it."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"SLURM binaries not installed ({', '.join(missing)}): apt-get install slurm-wlm munge")
    state = tmp_path / "slurm"
    env = dict(os.environ, DARTS_SLURM_PORT=str(free_port_pair()), DARTS_SLURM_GPUS="2")
    started = subprocess.run([str(SLURM_SCRIPT), "start", str(state)], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    conf = re.search(r"export SLURM_CONF=(\S+)", started.stdout)[1]
    bin_dir = re.search(r"export PATH=(\S+):\$PATH", started.stdout)[1]
    # the job runs `darts` from this environment (sbatch exports the submitter's environment)
    path = os.pathsep.join([bin_dir, str(Path(sys.executable).parent), os.environ["PATH"]])
    yield dict(os.environ, SLURM_CONF=conf, PATH=path, OMP_NUM_THREADS="1")
    subprocess.run([str(SLURM_SCRIPT), "stop", str(state)], env=env, check=True)


def sbatch(env: dict[str, str], cwd: Path, log: Path, script: str, *options: str) -> str:
    try:
        done = subprocess.run(["sbatch", "--wait", "--chdir", str(cwd), "--output", str(log), *options,
                               "--wrap", script], env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        queue = subprocess.run(["squeue", "-o", "%i %T %R"], env=env, capture_output=True, text=True).stdout
        text = log.read_text() if log.exists() else "(no job log)"
        raise AssertionError(f"the job did not end in 300 s; squeue:\n{queue}\njob log:\n{text[-3000:]}") from None
    text = log.read_text() if log.exists() else ""
    assert done.returncode == 0, f"{done.stdout}{done.stderr}\n{text[-4000:]}"
    return text


def imagenet_stage_command(item: str) -> str:
    """The published-cell ImageNet stage's command, as dvc.yaml gives it for ``item``."""
    return stage_bodies()["train_imagenet_published"]["cmd"].replace("${item}", item)


@pytest.mark.slow
def test_imagenet_stage_as_a_slurm_job_with_two_gpus_runs_two_ranks(tmp_path, mirror, slurm):
    """The stage's command, unchanged but for the smoke params and the mini data, submitted with
    `--gres=gpu:2`: SLURM_GPUS_ON_NODE=2 starts 2 processes (gloo on this CPU), one run of world size 2."""
    cmd = imagenet_stage_command("DARTS_V2")
    assert cmd == ("darts train imagenet --genotype DARTS_V2 --seed 0 --if-missing skip "
                   "--out runs/train_imagenet/DARTS_V2")
    script = shlex.join([*shlex.split(cmd), "--imagenet-root", str(mirror / "imagenet-mini"), *smoke(tmp_path),
                         "--set", "train_imagenet.train_images=48"])
    text = sbatch(slurm, tmp_path, tmp_path / "job.log", script, "--gres=gpu:2", "--cpus-per-task=2")
    assert "darts train imagenet: launching 2 processes (SLURM_GPUS_ON_NODE=2)" in text
    assert text.count("darts.runtime: device cpu") == 2, text[-3000:]  # each rank sets itself up
    out = tmp_path / "runs" / "train_imagenet" / "DARTS_V2"
    meta, metrics = read_json(out / "meta.json"), read_json(out / "metrics.json")
    assert meta["world_size"] == 2
    assert metrics["train_images"] == 48 and metrics["val_images"] == 50
    (state_file,) = (tmp_path / "ckpt").rglob("state.pt")
    assert len(read_verified(state_file)["rng"]) == 2  # both ranks' random streams


@pytest.mark.slow
def test_multi_node_launch_path_runs_on_a_one_node_allocation(tmp_path, mirror, slurm):
    """The srun + c10d rendezvous command a multi-node job runs, on the one node there is: the
    first node from `scontrol show hostnames`, one launcher task, 2 ranks."""
    argv = ["train", "cifar10", "--genotype", "DARTS_V2", "--seed", "0", "--out", str(tmp_path / "out"),
            "--data", str(mirror / "cifar10-mini"), *smoke(tmp_path), "--set", "train_cifar10.epochs=1"]
    starter = (f"import os; from darts import launch; "
               f"cmd = launch.srun_command(launch.Slots(2, 1), {argv!r}); print(' '.join(cmd), flush=True); "
               f"os.execvp(cmd[0], cmd)")
    text = sbatch(slurm, REPO, tmp_path / "job.log", shlex.join([sys.executable, "-c", starter]),
                  "--nodes=1", "--gres=gpu:2", "--cpus-per-task=2")
    assert "--rdzv-backend c10d --rdzv-endpoint" in text
    assert read_json(tmp_path / "out" / "meta.json")["world_size"] == 2
    assert "test_error" in read_json(tmp_path / "out" / "metrics.json")
