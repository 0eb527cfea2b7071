"""Training a recurrent genotype as a language model: PTB (App. A.2.2), WikiText-2 (App. A.2.4)
and the 300-epoch PTB selection runs (Sect. 3.2), with the AWD-LSTM recipe the official code uses.

SGD at lr 20 (scaled per batch by seq_len / bptt over variable-length BPTT windows), gradient
clipping, AR/TAR, weight decay, and a switch to averaged SGD once the validation loss stops
improving: after an epoch whose validation loss exceeds the minimum of all but the last
``nonmono`` earlier epochs, SGD continues and the iterates from then on are averaged (ASGD with
t0 = 0, lambda = 0, as the official code); validation uses the average. The weights with the best
validation loss are kept (weights.pt) and, for a final run, scored on the test set; a selection
run (``--split search``, params ``select_rnn``) never reads the test set.

Every epoch is checkpointed (model, optimizer, the ASGD switch and average, the best weights, the
validation history, RNG); rerunning the same command resumes and ends bit-identical on the CPU.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from darts import rundir, runtime
from darts.config import Params, TrainRNN, config_hash, section_dict
from darts.data import text
from darts.errors import DartsError
from darts.evaluation import evaluate_lm, perplexity
from darts.genotypes import RNNGenotype
from darts.checkpoint import save_tensors
from darts.run import Run
from darts.spaces.rnn.model import Dropouts, RNNModel, build_eval_model, lm_loss

log = logging.getLogger(__name__)

LMDataset = Literal["ptb", "wikitext2"]
Split = Literal["full", "search"]


@dataclass(frozen=True)
class Task:
    """Which run this is; it names the params section and whether the test set is read."""

    dataset: LMDataset
    split: Split = "full"

    def __post_init__(self) -> None:
        if self.split == "search" and self.dataset != "ptb":
            raise DartsError("--split search is the PTB selection run (select_rnn); train WikiText-2 with --split full")

    @property
    def section(self) -> str:
        return "select_rnn" if self.split == "search" else f"train_{self.dataset}"

    @property
    def reads_test(self) -> bool:
        return self.split == "full"


def asgd_due(previous_losses: list[float], loss: float, nonmono: int) -> bool:
    """The non-monotone trigger: ``loss`` is worse than the best of all but the last ``nonmono``
    earlier epochs (Merity et al. 2018; the official ``val_loss > min(best_val_loss[:-nonmono])``)."""
    return len(previous_losses) > nonmono and loss > min(previous_losses[:-nonmono])


class IterateAverage:
    """The running mean of the parameters after each step since averaging started: ASGD's output
    (t0 = 0, lambda = 0). ``swapped()`` lends the average to the model, e.g. for evaluation."""

    def __init__(self, params: list[nn.Parameter]):
        self.params = params
        self.count = 0
        self.average: list[Tensor] = []

    def update(self) -> None:
        with torch.no_grad():
            self.count += 1
            if self.count == 1:
                self.average = [p.detach().clone() for p in self.params]
            else:
                torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1.0 / self.count)

    def swapped(self) -> "_Swap":
        return _Swap(self.params, self.average)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "average": [a.clone() for a in self.average]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count = state["count"]
        self.average = [a.to(p.device) for a, p in zip(state["average"], self.params)]


class _Swap:
    def __init__(self, params: list[nn.Parameter], values: list[Tensor]):
        self.params, self.values, self.saved = params, values, []

    def __enter__(self) -> None:
        with torch.no_grad():
            self.saved = [p.detach().clone() for p in self.params]
            for p, v in zip(self.params, self.values):
                p.copy_(v)

    def __exit__(self, *exc: Any) -> None:
        with torch.no_grad():
            for p, v in zip(self.params, self.saved):
                p.copy_(v)


def train_epoch(model: RNNModel, optimizer: torch.optim.SGD, source: Tensor, cfg: TrainRNN,
                generator: torch.Generator, average: IterateAverage | None, epoch: int, progress: bool
                ) -> dict[str, float]:
    """One pass over the batchified training stream in variable-length windows."""
    from tqdm import tqdm

    model.train()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    hidden = model.init_hidden(source.size(1))
    total, tokens = torch.zeros((), dtype=torch.float64, device=source.device), 0
    windows = text.variable_bptt(source.size(0), cfg.bptt, cfg.max_seq_len_delta, generator)
    for step, (i, seq_len) in enumerate(tqdm(windows, desc=f"epoch {epoch}", disable=not progress, leave=False), 1):
        x, y = text.get_batch(source, i, seq_len)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * x.size(0) / cfg.bptt
        out = model(x, hidden)
        loss, raw = lm_loss(out, y, cfg.ar_alpha, cfg.tar_beta)
        if not math.isfinite(raw_value := float(raw.detach())):
            raise DartsError(f"training diverged at epoch {epoch}, step {step}: loss {raw_value}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if not math.isfinite(norm := float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))):
            raise DartsError(f"training diverged at epoch {epoch}, step {step}: gradient norm {norm} "
                             "(clipping would silently zero the update)")
        optimizer.step()
        if average is not None:
            average.update()
        hidden = out.hidden.detach()
        total += raw.detach().double() * y.numel()
        tokens += y.numel()
    loss = float(total) / max(tokens, 1)
    return {"train_loss": loss, "train_ppl": perplexity(loss)}


def run_key(task: Task, params: Params, seed: int, genotype: RNNGenotype, data_summary: dict[str, Any]) -> str:
    return config_hash(task.section, task.dataset, section_dict(params, task.section), seed,
                       genotype.to_json(), data_summary)


def train(task: Task, params: Params, genotype: RNNGenotype, seed: int, out: str | Path,
          data_root: str | Path) -> dict[str, Any]:
    """Train (or resume) one run; write its run directory; return metrics.json's content."""
    cfg: TrainRNN = getattr(params, task.section)
    device = runtime.setup(params.runtime, seed)
    data = text.load_corpora(task.dataset, data_root, cfg.train_tokens, cfg.eval_tokens)
    model = build_eval_model(data.vocab_size, cfg.emsize, cfg.nhid, genotype, Dropouts.of(cfg)).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    average = IterateAverage(list(model.parameters()))
    progress = _Progress()
    key = run_key(task, params, seed, genotype, data.summary)
    run = Run(params, task.section, key, seed, out,
              {"model": model, "optimizer": optimizer, "average": average, "progress": progress}, "train",
              task=task.section, dataset=task.dataset, genotype=genotype.to_json(), data=data.summary)
    train_source = text.batchify(data.train, cfg.batch_size).to(device)
    log.info("%s: %s params, %d training tokens, ASGD %s", task.section, f"{n_params:,}", len(data.train),
             "on" if cfg.asgd else "off")

    for epoch in range(run.start_epoch, cfg.epochs):
        t0 = time.monotonic()
        generator = text.bptt_generator(seed, epoch)
        row: dict[str, Any] = {"epoch": epoch + 1}
        row |= train_epoch(model, optimizer, train_source, cfg, generator,
                           average if progress.asgd_epoch is not None else None, epoch + 1, params.runtime.progress)
        averaged = progress.asgd_epoch is not None
        if averaged:
            with average.swapped():
                valid_loss = evaluate_lm(model, data.valid, cfg.eval_batch_size, cfg.bptt)
                progress.keep_if_best(model, valid_loss, epoch + 1)
        else:
            valid_loss = evaluate_lm(model, data.valid, cfg.eval_batch_size, cfg.bptt)
            progress.keep_if_best(model, valid_loss, epoch + 1)
            if cfg.asgd and asgd_due(progress.valid_losses, valid_loss, cfg.nonmono):
                progress.asgd_epoch = epoch + 1
                log.info("epoch %d: validation loss stopped improving; switching to averaged SGD", epoch + 1)
        if not math.isfinite(valid_loss):
            raise DartsError(f"training diverged at epoch {epoch + 1}: validation loss {valid_loss}")
        progress.valid_losses.append(valid_loss)
        row |= {"valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss), "averaged": averaged,
                "seconds": round(time.monotonic() - t0, 3)}
        run.end_epoch(row, ("train_ppl", "valid_ppl"))

    model.load_state_dict(progress.best_state)
    metrics: dict[str, Any] = {
        "valid_loss": progress.best_loss, "valid_ppl": perplexity(progress.best_loss),
        "best_epoch": progress.best_epoch, "asgd_epoch": progress.asgd_epoch,
        "params": n_params, "train_tokens": len(data.train), "valid_tokens": len(data.valid),
        "epochs": cfg.epochs, "vocab_size": data.vocab_size,
    }
    if task.reads_test:
        test_loss = evaluate_lm(model, data.test, cfg.test_batch_size, cfg.bptt)
        metrics |= {"test_loss": test_loss, "test_ppl": perplexity(test_loss), "test_tokens": len(data.test)}
    run.finish(metrics, device, {rundir.WEIGHTS: lambda path: save_tensors(progress.best_state, path)})
    return metrics


@dataclass
class _Progress:
    """What a resumed run needs beyond model, optimizer and average: the ASGD switch, the
    validation history that triggers it, and the best weights so far."""

    asgd_epoch: int | None = None
    valid_losses: list[float] = field(default_factory=list)
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, Tensor] | None = None

    def keep_if_best(self, model: nn.Module, loss: float, epoch: int) -> None:
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        return {"asgd_epoch": self.asgd_epoch, "valid_losses": list(self.valid_losses), "best_loss": self.best_loss,
                "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
