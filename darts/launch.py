"""One process per device the job holds, from the same command on a workstation and in a SLURM job.

A data-parallel command (``darts train cifar10|imagenet``) calls ``relaunch`` first. When it is not
already one of the processes of a launch (``WORLD_SIZE`` unset) and the job holds N > 1 devices, it
starts N copies of its own command line through PyTorch's launcher (``torch.distributed.run``,
elastic) and returns their exit status; the copies find ``WORLD_SIZE`` set and train
(``darts.distributed`` joins them into one process group). The number of processes per node:

1. ``--nproc N``, when given;
2. in a SLURM job (``SLURM_JOB_ID``), the GPUs SLURM gave this node: ``SLURM_GPUS_ON_NODE``, else the
   ids in ``SLURM_STEP_GPUS`` / ``SLURM_JOB_GPUS``, else ``SLURM_GPUS_PER_NODE``; none: 1;
3. elsewhere, the visible CUDA devices (``torch.cuda.device_count()``, which honours
   ``CUDA_VISIBLE_DEVICES``) unless ``runtime.device`` is ``cpu``; a CPU-only machine: 1.

On one node the launcher runs in this process (``--standalone``: a c10d rendezvous on a free local
port, so two jobs on one node never collide). A SLURM job spanning several nodes
(``SLURM_JOB_NUM_NODES`` > 1) re-executes itself as one ``srun`` task per node, each running
``python -m torch.distributed.run --nnodes K --nproc-per-node N`` with the c10d rendezvous on the
first node of ``SLURM_JOB_NODELIST`` (``scontrol show hostnames``): K x N processes in all.

A command whose loop is not data-parallel yet passes ``data_parallel=False``: it runs as one
process (a job holding more devices gets a warning; an explicit ``--nproc`` > 1 is refused).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from darts.errors import ConfigError, DartsError

log = logging.getLogger(__name__)

RDZV_PORT = 29400  # the multi-node rendezvous port on the first node (+ job id % 1000, see rdzv_port)


def add_launch_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nproc", type=int, metavar="N",
        help="processes per node (one per GPU); default: the GPUs the job holds (SLURM's allocation, else "
             "the visible CUDA devices), 1 on a CPU-only machine. N > 1 on the CPU uses gloo",
    )


@dataclass(frozen=True)
class Slots:
    """How many processes a launch starts: ``nproc`` per node on ``nnodes`` nodes, and why."""

    nproc: int
    nnodes: int = 1
    source: str = "one process"

    @property
    def world_size(self) -> int:
        return self.nproc * self.nnodes


def is_worker(env: Mapping[str, str] = os.environ) -> bool:
    """One of the processes of a launch (torchrun's or ours): never launches again."""
    return "WORLD_SIZE" in env


def _count_ids(value: str) -> int:
    """``0,1,3`` or ``0-3,6`` (SLURM's id lists) -> the number of ids."""
    count = 0
    for part in filter(None, value.split(",")):
        lo, _, hi = part.partition("-")
        count += int(hi) - int(lo) + 1 if hi else 1
    return count


def _per_node_gpus(value: str) -> int:
    """``SLURM_GPUS_PER_NODE``: ``4``, ``a100:4`` or ``gpu:a100:4`` -> 4."""
    return int(value.split(",")[0].rsplit(":", 1)[-1])


def slurm_gpus_on_node(env: Mapping[str, str]) -> tuple[int, str] | None:
    """The GPUs SLURM gave this node of the job, and the variable that said so (None: none given)."""
    if env.get("SLURM_GPUS_ON_NODE"):
        return int(env["SLURM_GPUS_ON_NODE"]), f"SLURM_GPUS_ON_NODE={env['SLURM_GPUS_ON_NODE']}"
    for name in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if env.get(name):
            return _count_ids(env[name]), f"{name}={env[name]}"
    if env.get("SLURM_GPUS_PER_NODE"):
        return _per_node_gpus(env["SLURM_GPUS_PER_NODE"]), f"SLURM_GPUS_PER_NODE={env['SLURM_GPUS_PER_NODE']}"
    return None


def slurm_nodes(env: Mapping[str, str]) -> int:
    """The nodes of the SLURM job (not of the step: the Snakemake job step spans one node)."""
    return int(env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or 1)


def resolve_slots(nproc: int | None, device: str, env: Mapping[str, str] = os.environ,
                  cuda_count: int | None = None) -> Slots:
    """The processes this job holds devices for (see the module docstring for the order).

    ``device`` is params' ``runtime.device``; ``cuda_count`` stands in for ``torch.cuda.device_count()``
    (asked only when needed)."""
    nnodes = slurm_nodes(env) if env.get("SLURM_JOB_ID") else 1
    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc {nproc}: give at least 1 process per node")
        return Slots(nproc, nnodes, f"--nproc {nproc}")
    if env.get("SLURM_JOB_ID"):
        gpus = slurm_gpus_on_node(env)
        if gpus is None:
            return Slots(1, nnodes, "a SLURM job without GPUs")
        return Slots(max(gpus[0], 1), nnodes, gpus[1])
    if device == "cpu":
        return Slots(1, 1, "runtime.device cpu")
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count()
    return Slots(max(cuda_count, 1), 1, f"{cuda_count} visible CUDA device(s)")


def command_line(args: argparse.Namespace, configure: Callable[[argparse.ArgumentParser], None],
                 argv: Sequence[str] | None = None) -> list[str]:
    """This process's ``darts`` arguments, checked to be the command being run: the launch re-runs
    them in every process, and a caller of ``darts.cli.main`` from Python has other ``sys.argv``.
    ``configure`` is the command module's own (the arguments after the command name must parse,
    with it, to ``args``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    mismatch = DartsError(
        f"cannot start {args.command} on several processes: this process's command line "
        f"({shlex.join(argv) or 'empty'}) is not the `darts {args.command}` being run (called from Python?). "
        "Run it as a command, under torchrun, or with --nproc 1")
    if args.command not in argv:
        raise mismatch
    parser = argparse.ArgumentParser(add_help=False)
    configure(parser)
    try:
        parsed = parser.parse_args(argv[argv.index(args.command) + 1:])
    except SystemExit:
        raise mismatch from None
    ours = {k: v for k, v in vars(args).items() if k not in ("command", "verbose", "_run")}
    if vars(parsed) != ours:
        raise mismatch
    return argv


def worker_argv(argv: Sequence[str]) -> list[str]:
    """The arguments the processes get: the command line without ``--nproc`` (they are workers).

    PyTorch's launcher reads its own options from the whole line (argparse matches a prefix such as
    ``--nproc`` to ``--nproc-per-node``), so a remaining option it would take is refused here."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--nproc":
            next(tokens, None)
        elif not token.startswith("--nproc="):
            out.append(token)
    from torch.distributed.run import get_args_parser

    theirs = [o for o in get_args_parser()._option_string_actions if o.startswith("--")]
    for token in out:
        name = token.split("=", 1)[0]
        if name.startswith("--") and len(name) > 2 and any(o.startswith(name) for o in theirs):
            raise DartsError(f"{name}: PyTorch's launcher would take this option as its own; "
                             "launch the processes with torchrun directly")
    return out


def torchrun_args(slots: Slots, argv: Sequence[str]) -> list[str]:
    """``torch.distributed.run`` arguments for one node: N copies of ``python -m darts ARGV``."""
    return ["--standalone", "--nnodes", "1", "--nproc-per-node", str(slots.nproc), "--max-restarts", "0",
            "-m", "darts", *argv]


def rdzv_port(env: Mapping[str, str]) -> int:
    """The rendezvous port on the first node: ``DARTS_RDZV_PORT``, else one per job (two multi-node
    jobs sharing a first node must not meet in one rendezvous)."""
    if env.get("DARTS_RDZV_PORT"):
        return int(env["DARTS_RDZV_PORT"])
    return RDZV_PORT + int(env.get("SLURM_JOB_ID", "0")) % 1000


def first_node(env: Mapping[str, str]) -> str:
    """The first host of ``SLURM_JOB_NODELIST`` (``scontrol show hostnames`` expands ``gpu[01-04]``)."""
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        raise DartsError("a multi-node launch needs SLURM_JOB_NODELIST: run it inside a SLURM job (sbatch)")
    try:
        shown = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                               env=dict(env), check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise DartsError(f"scontrol show hostnames {nodelist} failed: {exc}") from None
    return shown.stdout.split()[0]


def srun_command(slots: Slots, argv: Sequence[str], env: Mapping[str, str] = os.environ,
                 head: str | None = None) -> list[str]:
    """The multi-node launch: one ``srun`` task per node, each PyTorch's launcher of ``nproc`` workers,
    all meeting in a c10d rendezvous on the first node (id: the job id). ``--overlap``: the step may
    start inside another step that holds the job's resources (a Snakemake job step)."""
    endpoint = f"{head or first_node(env)}:{rdzv_port(env)}"
    return ["srun", "--overlap", f"--nodes={slots.nnodes}", f"--ntasks={slots.nnodes}", "--ntasks-per-node=1",
            "--kill-on-bad-exit=1",
            sys.executable, "-m", "torch.distributed.run", "--nnodes", str(slots.nnodes),
            "--nproc-per-node", str(slots.nproc), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint,
            "--rdzv-id", env.get("SLURM_JOB_ID", "darts"), "--max-restarts", "0", "-m", "darts", *argv]


def _check_devices(slots: Slots, device: str) -> None:
    """N processes on CUDA need N visible devices on the node (each takes ``cuda:LOCAL_RANK``)."""
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        return
    visible = torch.cuda.device_count()
    if visible < slots.nproc:
        raise ConfigError(f"{slots.nproc} processes per node ({slots.source}) but {visible} CUDA device(s) "
                          "are visible: give the job that many GPUs, or --nproc")


def _run_torchrun(args: list[str]) -> int:
    """PyTorch's launcher in this process; the first failed worker's exit status on failure."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(args)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        return next((c for c in codes if c and c > 0), 1)
    return 0


def relaunch(args: argparse.Namespace, device: str, *, data_parallel: bool, what: str,
             configure: Callable[[argparse.ArgumentParser], None]) -> int | None:
    """Start this command on every device the job holds; None: carry on in this process.

    Returns the launch's exit status (0: every process succeeded) when it started processes. ``device``
    is ``runtime.device``; ``what`` names the command in messages (``darts train imagenet``);
    ``configure`` is the command module's (see ``command_line``)."""
    if is_worker():
        return None
    explicit = getattr(args, "nproc", None)
    slots = resolve_slots(explicit, device)
    if slots.world_size <= 1:
        return None
    if not data_parallel:
        if explicit is not None:
            raise ConfigError(f"--nproc {explicit}: {what} is not data-parallel yet; it runs as one process")
        log.warning("%s is not data-parallel yet: one process of the %d the job holds devices for (%s)",
                    what, slots.world_size, slots.source)
        return None
    _check_devices(slots, device)
    argv = worker_argv(command_line(args, configure))
    if slots.nnodes > 1:
        cmd = srun_command(slots, argv)
        log.info("%s: %d nodes x %d processes (%s): %s", what, slots.nnodes, slots.nproc, slots.source,
                 shlex.join(cmd))
        sys.stdout.flush()
        sys.stderr.flush()
        return subprocess.call(cmd)
    log.info("%s: launching %d processes (%s)", what, slots.nproc, slots.source)
    return _run_torchrun(torchrun_args(slots, argv))
