"""The data-parallel search (DEVIATIONS.md, "Data-parallel search") on 2 CPU processes (gloo) against
one process computing the same objective: the mean of the per-rank losses, each slice of the batch
with its own BatchNorm statistics (``GhostBatch`` below runs the network on each slice separately).

- the bilevel step itself (float64, first order, finite-difference and exact second order): the alpha
  gradient, w' and, after a few alpha + weight steps, the alphas and the weights;
- ``darts search cnn --nproc 2`` at smoke size (the launch path, torchrun underneath): alphas, genotype, training
  loss and the Hessian-eigenvalue diagnostic against the one-process objective; a kill of one rank
  and the rerun (bit-identical to an uninterrupted 2-process run); another world size starts fresh;
- ``darts search rnn`` with 2 processes (the batch columns split) against one process on the same
  columns, dropouts off.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from darts.config import load_section
from darts.distributed import World
from darts.search import cnn
from darts.search.bilevel import Architect
from darts.search.common import reducer
from darts.spaces.cnn.search_network import SearchNetwork

REPO = Path(__file__).resolve().parents[1]
WORLD = 2


class GhostBatch(nn.Module):
    """One process computing the data-parallel objective of ``parts`` ranks: the network on each
    rank's slice of the batch (rank r takes samples r, r + parts, ..., as the samplers deal them),
    the logits put back in batch order, so the batch-mean loss is the mean of the per-rank losses."""

    def __init__(self, net: nn.Module, parts: int):
        super().__init__()
        self.net, self.parts = net, parts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.net(x[r::self.parts]) for r in range(self.parts)]
        return torch.stack(outs, dim=1).reshape(x.size(0), -1)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "net":
                raise
            return getattr(self.net, name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIGS = [("first", "finite_difference"), ("second", "finite_difference"), ("second", "exact")]


def bilevel_steps(order: str, hessian: str, world: World, parts: int) -> dict:
    """The alpha gradient and w' before and after 3 steps of ``cnn.train_epoch``, then the state.
    ``world`` > 1: this rank's slices; ``parts`` > 1: one process on the whole batch, ghost-batched."""
    torch.manual_seed(0)
    net = SearchNetwork(4, 10, 3).double()
    model = GhostBatch(net, parts) if parts > 1 else net
    w_opt = torch.optim.SGD(net.weight_parameters(), lr=0.05, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=3e-2, betas=(0.5, 0.999), weight_decay=1e-3)
    architect = Architect(model, w_opt, a_opt, cnn.cross_entropy, order=order, hessian=hessian,
                          reduce=reducer(world))
    gen = torch.Generator().manual_seed(1)
    batches = [(torch.randn(8, 3, 8, 8, generator=gen, dtype=torch.float64), torch.randint(0, 10, (8,), generator=gen))
               for _ in range(7)]
    mine = [(x[world.rank::world.size], y[world.rank::world.size]) for x, y in batches]
    weight_batches, arch_batches = mine[:3], mine[3:6]
    alphas0 = net.alphas_normal.detach().clone()
    strip = lambda d: {k.removeprefix("net."): v for k, v in d.items()}  # noqa: E731
    grad0 = architect.arch_gradient(weight_batches[0], arch_batches[0])[0]
    w0 = strip(architect.virtual_weights(weight_batches[0]))
    cfg = load_section("search_cnn", REPO / "params.yaml", "smoke", grad_clip=5.0)  # fp32, as the params
    metrics = cnn.train_epoch(model, architect, weight_batches, iter(arch_batches), cfg,
                              torch.device("cpu"), torch.contiguous_format, 1, False, world)
    grad1 = architect.arch_gradient(mine[6], mine[5])[0]  # with momentum buffers now
    w1 = strip(architect.virtual_weights(mine[6]))
    return {"grad0": grad0, "w0": w0, "grad1": grad1, "w1": w1, "metrics": metrics, "alphas0": alphas0,
            "state": {k: v.detach().clone() for k, v in net.named_parameters()}}


def rnn_steps(order: str, hessian: str, world: World, parts: int) -> dict:
    """3 windows of ``rnn.train_epoch`` (float64, dropouts off): alphas and weights after them, and
    the epoch's losses; ``world`` > 1: this rank's block of columns; ``parts`` > 1: ghost columns."""
    from darts.search import rnn

    cfg = load_section("search_rnn", REPO / "params.yaml", "smoke", order=order, hessian=hessian, emsize=8, nhid=8,
                       dropout=0.0, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)
    torch.manual_seed(0)
    net = rnn.build_search_model(cfg, 50).double()
    model = GhostColumns(net, parts) if parts > 1 else net
    architect = rnn.build_architect(model, cfg, world)
    gen = torch.Generator().manual_seed(2)
    source = rnn.rank_columns(torch.randint(0, 50, (13, 8), generator=gen), world)
    arch = rnn.ArchStream(rnn.rank_columns(torch.randint(0, 50, (13, 8), generator=gen), world))
    metrics = rnn.train_epoch(model, architect, source, arch, iter([(0, 4), (4, 5), (9, 3)]), cfg, 1, False, world)
    return {"metrics": metrics, "state": {k: v.detach().clone() for k, v in net.named_parameters()}}


def _bilevel_worker(rank: int, port: int, out: str) -> None:
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        results = {c: bilevel_steps(*c, World(rank, WORLD), 1) for c in CONFIGS}
        results |= {("rnn", *c): rnn_steps(*c, World(rank, WORLD), 1) for c in CONFIGS}
        gathered = [None] * WORLD
        dist.all_gather_object(gathered, results)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp") / "ranks.pt"
    mp.spawn(_bilevel_worker, args=(free_port(), str(out)), nprocs=WORLD)
    return torch.load(out)


def close(a, b, tol=1e-9) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= tol * max(1.0, abs(b))
    return torch.allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("config", CONFIGS, ids=["-".join(c) for c in CONFIGS])
def test_two_ranks_step_as_one_process_on_the_mean_of_their_losses(two_ranks, config):
    """Alpha gradient and w' (before and after 3 steps, momentum included), the alphas and weights
    after them, and the epoch's training loss: 2 ranks == 1 process on the ghost-batched objective."""
    reference = bilevel_steps(*config, World(), WORLD)
    rank0, rank1 = (ranks[config] for ranks in two_ranks)
    for key in ("grad0", "w0", "grad1", "w1", "state"):
        assert close(rank0[key], reference[key]), key
        assert all(torch.equal(a, b) for a, b in zip(_flat(rank0[key]), _flat(rank1[key]))), f"{key} differs by rank"
    assert close(rank0["metrics"], reference["metrics"])
    # the steps did move the alphas (the comparison is not of untouched initial values)
    assert (rank0["state"]["alphas_normal"] - rank0["alphas0"]).abs().max() > 1e-3


@pytest.mark.parametrize("config", CONFIGS, ids=["-".join(c) for c in CONFIGS])
def test_two_ranks_of_the_rnn_search_step_as_one_process_on_ghost_columns(two_ranks, config):
    """RNN (float64, dropouts off, AR/TAR and virtual-step clipping on): each rank its block of columns
    and their hidden states; after 3 windows the weights and alphas equal one process's."""
    reference = rnn_steps(*config, World(), WORLD)
    rank0, rank1 = (ranks[("rnn", *config)] for ranks in two_ranks)
    assert close(rank0["state"], reference["state"])
    assert all(torch.equal(rank0["state"][k], rank1["state"][k]) for k in reference["state"])
    assert close(rank0["metrics"], reference["metrics"])


def _flat(value) -> list[torch.Tensor]:
    return list(value.values()) if isinstance(value, dict) else list(value)


# --- `darts search cnn|rnn --nproc 2` (the launch path: torchrun, gloo) ---------------------------------------

CNN = ["search_cnn.layers=3", "search_cnn.init_channels=4", "search_cnn.batch_size=16", "search_cnn.train_images=64",
       "search_cnn.epochs=2", "search_cnn.eigenvalue_every=2", "search_cnn.eigenvalue_iterations=2"]
# A few windows only: at lr 20 the float32 rounding of the two summation orders grows ~10x per window.
RNN = ["search_rnn.epochs=1", "search_rnn.batch_size=8", "search_rnn.bptt=8", "search_rnn.train_tokens=240",
       "search_rnn.eval_tokens=300", "search_rnn.order=first", *(f"search_rnn.{d}=0.0" for d in ("dropout", "dropouth", "dropoutx", "dropouti"))]


def launch(space: str, nproc: int, out: Path, checkpoints: Path, data: Path, overrides: list[str]) -> list[str]:
    """``darts search SPACE --nproc N``: the launch path (darts/launch.py starts N CPU processes, gloo,
    through PyTorch's launcher)."""
    sets = [f"runtime.checkpoint_dir={checkpoints}", *overrides]
    return [sys.executable, "-m", "darts", "search", space, "--nproc", str(nproc), "--seed", "0", "--out", str(out),
            "--data", str(data), "--scale", "smoke", *(a for s in sets for a in ("--set", s))]


ENV = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def ghost_model(module, name: str, parts: int):
    """``module.name`` (the search-network builder) wrapped so one process computes the objective of ``parts`` ranks."""
    build = getattr(module, name)
    return lambda *a, **k: GhostBatch(build(*a, **k), parts) if name == "SearchNetwork" else GhostColumns(build(*a, **k), parts)


class GhostColumns(GhostBatch):
    """The recurrent model on each rank's contiguous block of the batch columns, outputs joined."""

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor):
        from darts.spaces.rnn.model import LMOutput

        width = tokens.size(1) // self.parts
        outs = [self.net(tokens[:, r * width:(r + 1) * width], hidden[r * width:(r + 1) * width])
                for r in range(self.parts)]
        return LMOutput(torch.cat([o.logits for o in outs], 1), torch.cat([o.hidden for o in outs], 0),
                        torch.cat([o.states for o in outs], 1), torch.cat([o.dropped for o in outs], 1))


def alphas(run: Path) -> dict[str, torch.Tensor]:
    from darts.io import read_json

    return {k: torch.tensor(v) for k, v in read_json(run / "alphas.json").items()}


def strip_seconds(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.fixture(scope="module")
def cnn_runs(tmp_path_factory, mirror):
    """A 2-process `darts search cnn` (second order, finite differences) and one process on the
    ghost-batched objective."""
    from darts.config import load_params

    root, data = tmp_path_factory.mktemp("cnn_ddp"), mirror / "cifar10-mini"
    subprocess.run(launch("cnn", WORLD, root / "two", root / "ckpt", data, CNN), cwd=REPO, env=ENV, check=True)
    params = load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={root / 'ckpt1'}", *CNN])
    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(cnn, "SearchNetwork", ghost_model(cnn, "SearchNetwork", WORLD))
        cnn.search(params, 0, root / "one", data)
    return root, data, params


def test_search_cnn_on_two_processes_matches_one_process_on_the_same_objective(cnn_runs):
    from darts.io import read_json, read_jsonl

    root, _, _ = cnn_runs
    two, one = root / "two", root / "one"
    assert read_json(two / "genotype.json") == read_json(one / "genotype.json")
    a2, a1 = alphas(two), alphas(one)
    for name in a1:
        assert torch.allclose(a2[name], a1[name], rtol=0, atol=2e-6), (name, (a2[name] - a1[name]).abs().max())
    h2, h1 = read_jsonl(two / "history.jsonl"), read_jsonl(one / "history.jsonl")
    for r2, r1 in zip(h2, h1, strict=True):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)
        assert r2["arch_loss"] == pytest.approx(r1["arch_loss"], rel=1e-5)
    assert h2[-1]["hessian_eigenvalue"] == pytest.approx(h1[-1]["hessian_eigenvalue"], rel=1e-3)
    assert read_json(two / "meta.json")["world_size"] == WORLD


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids] + [g for k in kids for g in _children(int(k))]


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _children(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env and b"LOCAL_RANK=" + str(rank).encode() in env:
            return pid
    return None


def test_kill_of_one_rank_then_rerun_resumes_bit_identically(cnn_runs, tmp_path):
    """SIGKILL rank 1 once epoch 1 is checkpointed: the job dies; the rerun on 2 processes resumes and
    ends bit-identical to the uninterrupted 2-process run."""
    from darts.io import read_json, read_jsonl

    root, data, _ = cnn_runs
    out, checkpoints = tmp_path / "run", tmp_path / "ckpt"
    proc = subprocess.Popen(launch("cnn", WORLD, out, checkpoints, data, CNN), cwd=REPO, env=ENV)
    try:
        while not list(checkpoints.glob("search_cnn/*/state.pt")) and proc.poll() is None:
            time.sleep(0.02)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None, "rank 1 not found (the job ended before epoch 2?)"
        os.kill(victim, signal.SIGKILL)
    finally:
        proc.wait(timeout=120)
    assert proc.returncode != 0, "the job outlived the kill of a rank"
    assert not (out / "genotype.json").exists()

    subprocess.run(launch("cnn", WORLD, out, checkpoints, data, CNN), cwd=REPO, env=ENV, check=True)
    assert read_json(out / "alphas.json") == read_json(root / "two" / "alphas.json")
    assert strip_seconds(read_jsonl(out / "history.jsonl")) == strip_seconds(read_jsonl(root / "two" / "history.jsonl"))


def test_world_size_is_in_the_run_key_so_another_one_starts_fresh(cnn_runs):
    from darts.io import read_json

    root, data, params = cnn_runs
    summary = cnn.load_search_data(params.search_cnn, data).summary
    keys = {n: cnn.run_key(params, 0, summary, torch.channels_last, n) for n in (1, 2, 4)}
    assert len(set(keys.values())) == 3
    assert read_json(root / "two" / "meta.json")["run_key"] == keys[2]
    assert {p.name for p in (root / "ckpt" / "search_cnn").iterdir()} == {keys[2]}


def test_search_rnn_on_two_processes_matches_one_process_on_the_same_columns(tmp_path, mirror):
    """Columns split between the ranks (dropouts off, first order: in float32 the finite difference's
    rounding differs between the two summation orders; the float64 test above checks second order):
    alphas and genotype as one process on the ghost-batched columns."""
    from darts.config import load_params
    from darts.io import read_json, read_jsonl
    from darts.search import rnn

    data = mirror / "ptb"
    subprocess.run(launch("rnn", WORLD, tmp_path / "two", tmp_path / "ckpt", data, RNN), cwd=REPO, env=ENV, check=True)
    params = load_params(REPO / "params.yaml", "smoke", [f"runtime.checkpoint_dir={tmp_path / 'ckpt1'}", *RNN])
    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(rnn, "build_search_model", ghost_model(rnn, "build_search_model", WORLD))
        rnn.search(params, 0, tmp_path / "one", data)
    assert read_json(tmp_path / "two" / "genotype.json") == read_json(tmp_path / "one" / "genotype.json")
    a2, a1 = alphas(tmp_path / "two"), alphas(tmp_path / "one")
    assert torch.allclose(a2["recurrent"], a1["recurrent"], rtol=0, atol=1e-5), (a2["recurrent"] - a1["recurrent"]).abs().max()
    for r2, r1 in zip(read_jsonl(tmp_path / "two" / "history.jsonl"), read_jsonl(tmp_path / "one" / "history.jsonl"),
                      strict=True):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)
        assert r2["arch_loss"] == pytest.approx(r1["arch_loss"], rel=1e-5)
