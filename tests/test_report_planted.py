"""A planted run tree for the report tests: the files of docs/design.md's run-directory contract,
with numbers chosen so that every mean, std, cost and difference can be worked out by hand.

No tests here; the test_report_* modules import ``plant_runs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from darts import rundir

CNN_OPS = 8
RNN_OPS = 5
CNN_EDGES = 14
RNN_EDGES = 36

# Final-run metrics (CIFAR-10 test error %, PTB/WT2 perplexities), one entry per run.
CIFAR_ERRORS = {"first": [3.0, 3.2, 3.4], "second": [2.7, 2.8], "random": [3.5]}
PTB_PPL = {"second": (58.0, 55.9), "first": (61.0, 58.0)}
WT2_PPL = {"second": (71.0, 69.0)}
SEARCH_BASE_HOURS = {"first": 6.0, "second": 24.0}


def search_hours(order: str, seed: int) -> float:
    """Device hours of one planted search."""
    return SEARCH_BASE_HOURS[order] * (seed + 1)


SELECT_HOURS = 3.0           # per selection candidate
TRAIN_HOURS = 36.0           # per final run


def _write(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def cost(hours: float, gpu: bool) -> dict[str, Any]:
    return {"wall_seconds": hours * 3600, "device": "cuda:0" if gpu else "cpu",
            "device_name": "NVIDIA H100" if gpu else "x86_64", "device_hours": hours,
            "gpu_days": hours / 24 if gpu else None}


def meta(scale: str, seed: int, **extra: Any) -> dict[str, Any]:
    return {"seed": seed, **extra, "params": {"scale": scale}, "git_revision": "abc1234",
            "data": {"dataset": extra.get("dataset", "cifar10"), "subset": scale == "smoke"}}


def softmax_rows(edges: int, ops: int, epoch: int, seed: int) -> list[list[float]]:
    """Rows summing to 1 that drift towards op (edge + seed) % ops as the epochs go by."""
    rows = []
    for e in range(edges):
        favoured = (e + seed) % ops
        raw = [1.0 + (epoch * 0.5 if o == favoured else 0.0) for o in range(ops)]
        total = sum(raw)
        rows.append([v / total for v in raw])
    return rows


CNN_GENOTYPE = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
               ["skip_connect", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}
RNN_GENOTYPE = {
    "recurrent": [["sigmoid", 0], ["relu", 1], ["relu", 1], ["identity", 1],
                  ["tanh", 2], ["sigmoid", 5], ["tanh", 3], ["relu", 5]],
    "concat": [1, 2, 3, 4, 5, 6, 7, 8],
}


def plant_search(runs: Path, space: str, order: str, seed: int, scale: str, epochs: int, gpu: bool) -> Path:
    out = rundir.search_dir(runs, space, order, seed)
    history = []
    for epoch in range(1, epochs + 1):
        row: dict[str, Any] = {"epoch": epoch, "train_loss": 2.0 / epoch, "lr": 0.025, "seconds": 10.0}
        if space == "cnn":
            row.update(train_acc=40.0 + epoch, valid_loss=2.1 / epoch, valid_acc=30.0 + 10 * epoch + seed,
                       genotype=CNN_GENOTYPE,
                       alphas_softmax={"normal": softmax_rows(CNN_EDGES, CNN_OPS, epoch, seed),
                                       "reduce": softmax_rows(CNN_EDGES, CNN_OPS, epoch, seed + 1)},
                       skip_connects=min(epoch + seed, 8),
                       hessian_eigenvalue=0.1 * epoch if order == "second" else None)
        else:
            row.update(valid_ppl=900.0 / epoch + seed, genotype=RNN_GENOTYPE,
                       alphas_softmax={"recurrent": softmax_rows(RNN_EDGES, RNN_OPS, epoch, seed)},
                       skip_connects=epoch)
        history.append(row)
    _jsonl(out / rundir.HISTORY, history)
    final = {k: v for k, v in history[-1].items() if isinstance(v, (int, float)) and v is not None}
    _write(out / rundir.METRICS, final)
    _write(out / rundir.SEARCH_COST, cost(search_hours(order, seed), gpu))
    _write(out / rundir.META, meta(scale, seed, order=order))
    _write(out / rundir.GENOTYPE, CNN_GENOTYPE if space == "cnn" else RNN_GENOTYPE)
    return out


def plant_selection(runs: Path, space: str, method: str, names: list[str], scale: str, gpu: bool) -> Path:
    out = rundir.select_dir(runs, space, method)
    metric = "valid_error" if space == "cnn" else "valid_ppl"
    scores = {name: 10.0 + i for i, name in enumerate(names)}
    for name in names:
        cand = rundir.candidate_dir(out, name)
        _write(cand / rundir.METRICS, {metric: scores[name]})
        _write(cand / rundir.TRAIN_COST, cost(SELECT_HOURS, gpu))
        _write(cand / rundir.META, meta(scale, 0))
    chosen = min(scores, key=scores.get)
    _write(out / rundir.SELECTED, {"method": method, "chosen": chosen, "score": scores[chosen], "metric": metric,
                                   "candidates": [{"name": n, "score": s, "genotype_file": f"{n}.json"} for n, s in scores.items()]})
    _write(out / rundir.GENOTYPE, CNN_GENOTYPE if space == "cnn" else RNN_GENOTYPE)
    return out


def plant_train(out: Path, metrics: dict[str, Any], scale: str, seed: int, gpu: bool, epochs: int, lm: bool) -> Path:
    history = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 3.0 / epoch + seed * 0.01, "lr": 0.025}
        row.update({"train_ppl": 200.0 / epoch, "valid_ppl": 220.0 / epoch} if lm else {"train_acc": 50.0 + 5 * epoch})
        history.append(row)
    _jsonl(out / rundir.HISTORY, history)
    _write(out / rundir.METRICS, metrics)
    _write(out / rundir.TRAIN_COST, cost(TRAIN_HOURS, gpu))
    _write(out / rundir.META, meta(scale, seed))
    return out


def plant_runs(root: Path, scale: str = "paper", gpu: bool = True, epochs: int = 3,
               cifar_errors: dict[str, list[float]] | None = None, seeds: tuple[int, ...] = (0, 1),
               orders: tuple[str, ...] = ("first", "second")) -> Path:
    """A complete run tree under ``root/runs`` (searches of ``seeds`` per order); returns the runs folder."""
    runs = root / "runs"
    for space in ("cnn", "rnn"):
        for order in orders:
            for seed in seeds:
                plant_search(runs, space, order, seed, scale, epochs, gpu)
            plant_selection(runs, space, order, [rundir.seed_name(order, s) for s in seeds], scale, gpu)
        plant_selection(runs, space, rundir.RANDOM, [rundir.sample_name(i) for i in range(3)], scale, gpu)
    for method, errors in (cifar_errors or CIFAR_ERRORS).items():
        if method in ("first", "second") and method not in orders:
            continue
        for i, err in enumerate(errors):
            plant_train(rundir.train_dir(runs, "cifar10", method, i),
                        {"test_error": err, "test_acc": 100 - err, "params": 3_300_000, "epochs": epochs,
                         "train_images": 50000, "test_images": 10000}, scale, i, gpu, epochs, lm=False)
    for method, (valid, test) in PTB_PPL.items():
        if method not in orders:
            continue
        plant_train(rundir.train_dir(runs, "ptb", method), {"valid_ppl": valid, "test_ppl": test, "params": 23_000_000,
                                                  "train_tokens": 929589, "epochs": epochs}, scale, 0, gpu, epochs, lm=True)
    for method, (valid, test) in WT2_PPL.items():
        plant_train(rundir.train_dir(runs, "wikitext2", method), {"valid_ppl": valid, "test_ppl": test, "params": 33_000_000,
                                                        "train_tokens": 2088628, "epochs": epochs}, scale, 0, gpu, epochs, lm=True)
    imagenet = rundir.train_dir(runs, "imagenet", "second")
    if scale == "smoke":
        _write(imagenet / rundir.METRICS, {"status": "not_run", "reason": "no ImageNet data"})
    else:
        plant_train(imagenet, {"top1_error": 26.9, "top5_error": 8.8, "params": 4_700_000, "mult_adds": 574_000_000,
                               "classes": 1000, "train_images": 1281167, "val_images": 50000}, scale, 0, gpu, epochs, lm=False)
    return runs
