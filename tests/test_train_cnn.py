"""CNN retraining: schedules, metrics, real runs on cifar10-mini and imagenet-mini, resume, guards.

Every run is the smoke scale of params.yaml (3 cells, 4 channels, 1 thread, deterministic) on the
real mini datasets, with checkpoints under the test's temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from darts.checkpoint import read_verified
from darts.cli import main
from darts.config import load_params, load_section
from darts.errors import DartsError
from darts.genotypes import load_genotype
from darts.io import read_json, read_jsonl
from darts.spaces.cnn.eval_network import NetworkCIFAR, NetworkImageNet
from darts.spaces.cnn.weights import load_official_state_dict
from darts.train import cnn
from darts import distributed as D

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def cifar_section(**values):
    """params.yaml's train_cifar10 with ``values`` replaced (the schema has no defaults)."""
    return load_section("train_cifar10", PARAMS, **values)


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """Deterministic mode is process-wide: give it back as found."""
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    yield
    torch.use_deterministic_algorithms(deterministic)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cifar_root(mirror: Path) -> Path:
    return mirror / "cifar10-mini"


@pytest.fixture(scope="module")
def imagenet_root(mirror: Path) -> Path:
    return mirror / "imagenet-mini"


def smoke_args(tmp_path: Path, *sets: str) -> list[str]:
    overrides = [f"runtime.checkpoint_dir={tmp_path / 'ckpt'}", *sets]
    return ["--params", str(PARAMS), "--scale", "smoke", *[a for s in overrides for a in ("--set", s)]]


def train_cifar(tmp_path: Path, root: Path, out: Path, *sets: str, split: str = "full") -> int:
    return main(["train", "cifar10", "--genotype", "DARTS_V2", "--seed", "1", "--out", str(out), "--data", str(root),
                 "--split", split, *smoke_args(tmp_path, *sets)])


# -- schedules -----------------------------------------------------------------------------------

def test_cosine_schedule_matches_torch_and_starts_at_the_initial_lr():
    cfg = cifar_section(epochs=600, lr=0.025, lr_min=0.0)
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs, eta_min=cfg.lr_min)
    for epoch in range(cfg.epochs):
        assert cnn.learning_rate(cfg, epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()
    assert cnn.learning_rate(cfg, 0) == 0.025
    assert cnn.learning_rate(cfg, 300) == pytest.approx(0.0125)


def test_step_schedule_matches_torch_steplr():
    cfg = cifar_section(epochs=250, lr=0.1, lr_schedule="step", lr_gamma=0.97, lr_decay_period=1)
    opt = torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.97)
    for epoch in range(cfg.epochs):
        assert cnn.learning_rate(cfg, epoch) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()
    assert cnn.learning_rate(cifar_section(lr=1.0, lr_schedule="step", lr_gamma=0.5, lr_decay_period=3), 7) == 0.25


def test_drop_path_ramps_linearly_from_zero():
    cfg = cifar_section(epochs=600, drop_path_prob=0.2)
    probs = [cnn.drop_path_prob(cfg, e) for e in range(cfg.epochs)]
    assert probs[0] == 0.0 and probs[300] == pytest.approx(0.1) and probs[-1] == pytest.approx(0.2 * 599 / 600)
    steps = {round(b - a, 12) for a, b in zip(probs, probs[1:])}
    assert steps == {round(0.2 / 600, 12)}


# -- evaluation arithmetic -----------------------------------------------------------------------

class _FixedLogits(nn.Module):
    """Returns row ``x[i, 0, 0, 0]`` of a fixed logits table: an evaluation with known answers."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor):
        return self.table[x[:, 0, 0, 0].long()] + 0 * self.anchor, None


def test_evaluate_counts_top1_top5_and_mean_loss():
    torch.manual_seed(0)
    table = torch.randn(7, 10)
    labels = torch.tensor([int(table[0].argmax()), 3, 5, 0, 9, 1, int(table[6].argsort()[-5])])
    images = torch.arange(7, dtype=torch.float32).view(7, 1, 1, 1).expand(7, 3, 2, 2).clone()
    dataset = torch.utils.data.TensorDataset(images, labels)
    cfg = cifar_section(eval_batch_size=3)
    result = cnn.evaluate(_FixedLogits(table), dataset, cfg, torch.device("cpu"), D.World())

    rank = (table > table[torch.arange(7), labels][:, None]).sum(1)  # classes scored above the label
    assert result.images == 7
    assert result.top1 == pytest.approx(100 * (rank == 0).float().mean().item())
    assert result.top5 == pytest.approx(100 * (rank < 5).float().mean().item())
    nll = [math.log(table[i].exp().sum().item()) - table[i, labels[i]].item() for i in range(7)]
    assert result.loss == pytest.approx(sum(nll) / 7, rel=1e-6)
    assert 0 < result.top1 < result.top5 < 100  # the table exercises both metrics


_BF16_STEP = """
import math, torch
from torch import nn
from darts.config import load_section
from darts.genotypes import load_genotype
from darts.spaces.cnn.eval_network import NetworkCIFAR
from darts.train import cnn
from darts import distributed as D
torch.set_num_threads(1)
torch.manual_seed(0)
cfg = load_section("train_cifar10", "params.yaml", layers=3, init_channels=4, batch_size=8, bf16=True,
                   channels_last=True)
model = NetworkCIFAR(4, 10, 3, True, load_genotype("DARTS_V2", "cnn")).to(memory_format=torch.channels_last)
before = [p.detach().clone() for p in model.parameters()]
data = torch.utils.data.TensorDataset(torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,)))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
loss, acc = cnn.train_epoch(model, torch.utils.data.DataLoader(data, batch_size=8), opt, nn.CrossEntropyLoss(),
                            cfg, torch.device("cpu"), D.World())
assert math.isfinite(loss) and 0 <= acc <= 100, (loss, acc)
assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no weight changed"
print("ok")
"""


def test_bf16_and_channels_last_train_on_the_cpu():
    """In a fresh process: on torch 2.14.1's CPU kernels, bf16 backward after other work in the same
    process (the search tests) produced finite but ~1e28 gradients, so the test must not depend on
    what ran before it. Inside that state the gradient-norm guard below stops the run."""
    result = subprocess.run([sys.executable, "-c", _BF16_STEP], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_overflowing_gradient_norm_stops_instead_of_a_silent_zero_update():
    """clip_grad_norm_ scales by max_norm / inf = 0: without the guard the epoch 'trains' and
    changes nothing. Finite per-element gradients whose norm overflows float32 must stop the run."""
    torch.manual_seed(0)
    cfg = cifar_section(layers=3, init_channels=4, batch_size=8, auxiliary_weight=0.0)
    model = NetworkCIFAR(4, 10, 3, False, load_genotype("DARTS_V2", "cnn"))
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def huge(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, y) * 1e37  # finite loss, gradient norm beyond float32

    with pytest.raises(DartsError, match="non-finite gradient norm"):
        cnn.train_epoch(model, torch.utils.data.DataLoader(data, batch_size=8), opt, huge, cfg,
                        torch.device("cpu"), D.World())


# -- real runs -----------------------------------------------------------------------------------

def test_cifar10_retraining_lowers_the_loss_and_evaluate_agrees(tmp_path, cifar_root, capsys):
    out = tmp_path / "run"
    assert train_cifar(tmp_path, cifar_root, out, "train_cifar10.epochs=4", "train_cifar10.init_channels=8",
                       "train_cifar10.train_images=128", "train_cifar10.eval_images=128") == 0
    history = read_jsonl(out / "history.jsonl")
    metrics = read_json(out / "metrics.json")
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert [row["drop_path_prob"] for row in history] == pytest.approx([0.0, 0.05, 0.1, 0.15])
    assert {"test_error", "test_acc", "test_loss", "params", "epochs", "train_images", "test_images"} <= set(metrics)
    assert metrics["test_error"] == pytest.approx(100 - metrics["test_acc"])
    assert (metrics["train_images"], metrics["test_images"], metrics["epochs"]) == (128, 128, 4)
    assert "valid_error" not in metrics
    for name in ("metrics.csv", "meta.json", "train_cost.json"):
        assert (out / name).is_file()
    assert read_json(out / "meta.json")["params"]["train_cifar10"]["init_channels"] == 8

    # The saved weights are the bare network in the official layout; `darts evaluate` reproduces the error.
    genotype = load_genotype("DARTS_V2", "cnn")
    load_official_state_dict(NetworkCIFAR(8, 10, 3, True, genotype), out / "weights.pt")
    capsys.readouterr()
    assert main(["evaluate", "cifar10", "--genotype", "DARTS_V2", "--weights", str(out / "weights.pt"),
                 "--data", str(cifar_root), "--out", str(tmp_path / "eval.json"),
                 *smoke_args(tmp_path, "train_cifar10.init_channels=8", "train_cifar10.eval_images=128")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["top1_error"] == pytest.approx(metrics["test_error"]) and printed["images"] == 128
    assert read_json(tmp_path / "eval.json") == printed

    # Weights of another cell are refused with the first mismatching key named.
    assert main(["evaluate", "cifar10", "--genotype", "DARTS_V1", "--weights", str(out / "weights.pt"),
                 "--data", str(cifar_root), *smoke_args(tmp_path, "train_cifar10.init_channels=8")]) == 1
    assert "missing key 'cells.0._ops." in capsys.readouterr().err


def test_selection_split_trains_on_the_first_half_and_scores_the_held_out_half(tmp_path, cifar_root):
    params = load_params(PARAMS, "smoke", [f"runtime.checkpoint_dir={tmp_path}"])
    task = cnn.Task("cifar10", "search")
    assert (task.section, task.eval_name) == ("select_cnn", "valid")
    data = cnn.load_data(task, params, cifar_root)

    from darts.data.cifar import load_cifar10

    train_x, _, test_x, _ = load_cifar10(cifar_root)
    half = len(train_x) // 2
    as_bytes = lambda images: {bytes(img.numpy()) for img in images}  # noqa: E731
    fit, held = as_bytes(data.train.images), as_bytes(data.eval.images)
    first, second = (as_bytes(torch.from_numpy(x).permute(0, 3, 1, 2)) for x in (train_x[:half], train_x[half:]))
    assert fit <= first and held <= second and not held & first
    assert not held & as_bytes(torch.from_numpy(test_x).permute(0, 3, 1, 2))
    assert (len(data.train), len(data.eval)) == (128, 128)  # the select_cnn smoke caps

    out = tmp_path / "select"
    assert train_cifar(tmp_path, cifar_root, out, split="search") == 0
    metrics = read_json(out / "metrics.json")
    assert {"valid_error", "valid_acc", "valid_loss", "valid_images"} <= set(metrics)
    assert not any(k.startswith("test_") for k in metrics)
    assert (tmp_path / "ckpt" / "select_cnn").is_dir()


def test_imagenet_mini_trains_a_ten_way_head_and_reports_top1_top5(tmp_path, imagenet_root, capsys):
    out = tmp_path / "imagenet"
    assert main(["train", "imagenet", "--genotype", "DARTS_V2", "--seed", "0", "--out", str(out),
                 "--imagenet-root", str(imagenet_root), *smoke_args(tmp_path, "train_imagenet.train_images=48")]) == 0
    metrics = read_json(out / "metrics.json")
    assert metrics["classes"] == 10 and metrics["val_images"] == 50 and metrics["train_images"] == 48
    assert 0 <= metrics["top5_error"] <= metrics["top1_error"] <= 100
    assert metrics["mult_adds"] > 0 and metrics["params"] > 0
    model = NetworkImageNet(4, 10, 3, True, load_genotype("DARTS_V2", "cnn"))
    load_official_state_dict(model, out / "weights.pt")
    assert model.classifier.out_features == 10
    assert read_jsonl(out / "history.jsonl")[0]["lr"] == 0.1

    capsys.readouterr()
    assert main(["evaluate", "imagenet", "--genotype", "DARTS_V2", "--weights", str(out / "weights.pt"),
                 "--imagenet-root", str(imagenet_root), *smoke_args(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["top1_error"] == pytest.approx(metrics["top1_error"])
    assert printed["top5_error"] == pytest.approx(metrics["top5_error"])


def test_missing_imagenet_is_recorded_at_smoke_scale_and_fails_at_paper_scale(tmp_path, capsys):
    nowhere = [f"data.root={tmp_path / 'no-data'}", "data.imagenet_root=null"]
    out = tmp_path / "skipped"
    assert main(["train", "imagenet", "--genotype", "DARTS_V2", "--out", str(out), "--if-missing", "skip",
                 *smoke_args(tmp_path, *nowhere)]) == 0
    assert read_json(out / "metrics.json") == {"status": "not_run", "reason": "no ImageNet data"}

    paper = ["--params", str(PARAMS), "--scale", "paper", *[a for s in nowhere for a in ("--set", s)]]
    assert main(["train", "imagenet", "--genotype", "DARTS_V2", "--out", str(tmp_path / "paper"),
                 "--if-missing", "skip", *paper]) == 1
    assert "--imagenet-root" in capsys.readouterr().err
    assert not (tmp_path / "paper" / "metrics.json").exists()


def test_a_diverging_run_stops_with_a_clear_error(tmp_path, cifar_root):
    params = load_params(PARAMS, "smoke", [f"runtime.checkpoint_dir={tmp_path}", "train_cifar10.lr=1e30",
                                           "train_cifar10.epochs=1"])
    with pytest.raises(DartsError, match="training diverged: non-finite (loss|gradient norm)"):
        cnn.train(cnn.Task("cifar10"), params, load_genotype("DARTS_V2", "cnn"), 0, tmp_path / "nan", cifar_root)
    assert not list(tmp_path.rglob("state.pt"))


def test_kill_and_resume_ends_bit_identical_and_a_changed_config_starts_fresh(tmp_path, cifar_root, caplog):
    epochs = "train_cifar10.epochs=3"
    reference = tmp_path / "reference"
    assert train_cifar(tmp_path / "a", cifar_root, reference, epochs) == 0

    # A separate process, killed (SIGKILL) as soon as its first epoch is checkpointed.
    resumed = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "darts", "train", "cifar10", "--genotype", "DARTS_V2", "--seed", "1",
           "--out", str(resumed), "--data", str(cifar_root), *smoke_args(tmp_path / "b", epochs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "b" / "ckpt").rglob("state.pt")) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (state_file,) = (tmp_path / "b" / "ckpt").rglob("state.pt")
    assert read_verified(state_file)["epoch"] < 3, "the run ended before it could be killed"
    assert not (resumed / "weights.pt").exists()

    caplog.set_level("INFO")
    assert train_cifar(tmp_path / "b", cifar_root, tmp_path / "changed", epochs, "train_cifar10.lr=0.05") == 0
    assert "resuming" not in caplog.text
    assert train_cifar(tmp_path / "b", cifar_root, resumed, epochs) == 0
    assert "resuming" in caplog.text

    ref_w, res_w = (torch.load(d / "weights.pt", weights_only=True) for d in (reference, resumed))
    assert ref_w.keys() == res_w.keys() and all(torch.equal(ref_w[k], res_w[k]) for k in ref_w)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(read_jsonl(reference / "history.jsonl")) == strip(read_jsonl(resumed / "history.jsonl"))
    assert read_json(reference / "metrics.json") == read_json(resumed / "metrics.json")


def test_launch_path_two_processes_train_and_shard_evaluation_exactly(tmp_path, cifar_root, capsys):
    """The command itself starts 2 CPU processes (gloo) through PyTorch's launcher (`--nproc 2`, as a
    job holding 2 GPUs would): rank 0 writes; sharded evaluation covers every test image once and
    agrees with a single-process `darts evaluate` of the weights."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "darts", "train", "cifar10", "--genotype", "DARTS_V2", "--seed", "0", "--out", str(out),
           "--data", str(cifar_root), "--nproc", "2", *smoke_args(tmp_path, "train_cifar10.epochs=1")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "darts train cifar10: launching 2 processes (--nproc 2)" in done.stderr
    assert done.stderr.count("epoch 1/1") == 1  # only rank 0 reports
    assert read_json(out / "meta.json")["world_size"] == 2
    metrics = read_json(out / "metrics.json")
    cfg = load_params(PARAMS, "smoke").train_cifar10
    assert (metrics["test_images"], metrics["train_images"]) == (cfg.eval_images, cfg.train_images)
    (state_file,) = (tmp_path / "ckpt").rglob("state.pt")
    assert len(read_verified(state_file)["rng"]) == 2  # each rank's stream, for resuming

    capsys.readouterr()
    assert main(["evaluate", "cifar10", "--genotype", "DARTS_V2", "--weights", str(out / "weights.pt"),
                 "--data", str(cifar_root), *smoke_args(tmp_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["top1_error"] == pytest.approx(metrics["test_error"])
    assert printed["loss"] == pytest.approx(metrics["test_loss"], rel=1e-5)
