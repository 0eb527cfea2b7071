"""The recurrent-cell search on Penn Treebank (Sect. 2.3, Alg. 1; App. A.1.2).

Each step takes the next variable-length BPTT window of the training stream, updates the alphas
on a window of the same length from the architecture stream (the PTB validation set, as the
official code, or the held-out tail of the training tokens: params ``search_rnn.arch_data``),
then the weights on the training window: SGD at lr 20 scaled by seq_len / bptt, AR/TAR, gradient
clipping. Both streams carry their hidden state from window to window within an epoch, as the
official search does. The architecture step is the shared ``Architect``: its virtual step uses
the same regularised loss as the real weight step, clips as the real step does
(``virtual_step_clip: match``) or not at all (``none``), and replays one random state for every
loss evaluation, so all of them see the same dropout masks. Writes the run directory of
docs/design.md; the validation perplexity is measured on the PTB validation set after every epoch.

Data-parallel under torchrun (DEVIATIONS.md, "Data-parallel search"): ``batch_size`` is the global
number of columns of the batchified streams; rank r takes its contiguous block of columns of both,
carries their hidden states and draws its own dropout masks; the BatchNorm of the cell normalises
each rank's columns on its own (ghost batches); both steps use gradients averaged over the ranks.
Every rank measures the validation perplexity (the same model after the BatchNorm averages are
averaged); rank 0 writes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

import torch
from torch import Tensor, nn

from darts import distributed as D
from darts import runtime
from darts.config import Params, SearchRNN, config_hash, section_dict
from darts.data import text
from darts.search.bilevel import Architect
from darts.evaluation import evaluate_lm, perplexity
from darts.run import Run
from darts.data.loading import derive_seed
from darts.search.common import (
    all_finite_check,
    alphas_softmax,
    average_buffers,
    average_gradients,
    check_finite,
    eigenvalue_due,
    in_world,
    reducer,
    result_files,
)
from darts.spaces.rnn.model import Dropouts, LMOutput, RNNSearchModel, lm_loss

log = logging.getLogger(__name__)


class LMBatch(NamedTuple):
    """One BPTT window with the hidden state it starts from and the regularisation to apply."""

    data: Tensor
    targets: Tensor
    hidden: Tensor
    ar_alpha: float = 0.0
    tar_beta: float = 0.0


def window_loss(forward: Callable[..., LMOutput], batch: LMBatch) -> tuple[Tensor, Tensor]:
    """The bilevel loss function: (loss of the window, the hidden state after it)."""
    out = forward(batch.data, batch.hidden)
    loss, _ = lm_loss(out, batch.targets, batch.ar_alpha, batch.tar_beta)
    return loss, out.hidden.detach()


class ArchStream:
    """The architecture data as one stream of windows that wraps around (hidden state reset at
    the wrap); each window has the length of the training window it accompanies."""

    def __init__(self, source: Tensor):
        if source.size(0) < 2:
            raise ValueError("the architecture data holds fewer than two rows at this batch size")
        self.source, self.position = source, 0
        self.hidden: Tensor | None = None

    def next(self, seq_len: int, init_hidden: Callable[[], Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        if self.position >= self.source.size(0) - 1 or self.hidden is None:
            self.position, self.hidden = 0, init_hidden()
        x, y = text.get_batch(self.source, self.position, seq_len)
        self.position += x.size(0)
        return x, y, self.hidden


def arch_tokens(cfg: SearchRNN, data: text.Corpora) -> tuple[Tensor, Tensor]:
    """(weight-training tokens, architecture tokens) for ``cfg.arch_data``."""
    if cfg.arch_data == "valid":
        return data.train, data.valid
    return text.holdout_split(data.train, cfg.holdout_fraction)


def run_key(params: Params, seed: int, data_summary: dict[str, Any], world_size: int = 1) -> str:
    """Everything that determines the search, the number of processes included (a rerun on another
    world size starts fresh)."""
    sections = section_dict(params, "search_rnn")
    sections["search_rnn"]["world_size"] = world_size
    return config_hash("search_rnn", sections, seed, data_summary)


def build_search_model(cfg: SearchRNN, vocab_size: int) -> RNNSearchModel:
    return RNNSearchModel(vocab_size, cfg.emsize, cfg.nhid, Dropouts.of(cfg), alpha_init=cfg.alpha_init,
                          alpha_init_scale=cfg.alpha_init_scale, track_running_stats=cfg.track_running_stats)


def build_architect(model: RNNSearchModel, cfg: SearchRNN, world: D.World = D.World()) -> Architect:
    w_opt = torch.optim.SGD(model.weight_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    a_opt = torch.optim.Adam(model.arch_parameters(), lr=cfg.arch_lr, betas=cfg.arch_betas,
                             weight_decay=cfg.arch_weight_decay)
    clip = cfg.grad_clip if cfg.virtual_step_clip == "match" else None
    return Architect(model, w_opt, a_opt, window_loss, order=cfg.order, hessian=cfg.hessian,
                     fd_epsilon=cfg.fd_epsilon, virtual_step_clip=clip, reduce=reducer(world))


def rank_columns(source: Tensor, world: D.World) -> Tensor:
    """This rank's contiguous block of the columns of a batchified stream (all of them for one process)."""
    if not world.distributed:
        return source
    width = D.per_rank_batch(source.size(1), world)
    return source[:, world.rank * width:(world.rank + 1) * width].contiguous()


def search(params: Params, seed: int, out: str | Path, data_root: str | Path) -> dict[str, Any]:
    """Run (or resume) the search; write the run directory; return its final metrics."""
    return in_world(params.runtime, seed, lambda device, world: _search(params, seed, out, data_root, device, world))


def _search(params: Params, seed: int, out: str | Path, data_root: str | Path, device: torch.device,
            world: D.World) -> dict[str, Any]:
    cfg = params.search_rnn
    D.per_rank_batch(cfg.batch_size, world)  # the columns divide among the ranks
    data = text.load_corpora("ptb", data_root, cfg.train_tokens, cfg.eval_tokens)
    weight_tokens, arch_data = arch_tokens(cfg, data)
    key = run_key(params, seed, data.summary, world.size)
    model = build_search_model(cfg, data.vocab_size).to(device)
    if world.distributed:  # the same initial model on every rank, then each rank its own dropout masks
        runtime.seed_everything(derive_seed(seed, "rank", world.rank))
    architect = build_architect(model, cfg, world)
    run = Run(params, "search_rnn", key, seed, out,
              {"model": model, "weight_optimizer": architect.weight_optimizer, "arch_optimizer": architect.arch_optimizer},
              "search", world, order=cfg.order, hessian=cfg.hessian, arch_data=cfg.arch_data,
              virtual_step_clip=cfg.virtual_step_clip, data=data.summary, world_size=world.size)
    train_source = rank_columns(text.batchify(weight_tokens, cfg.batch_size), world).to(device)
    arch_source = rank_columns(text.batchify(arch_data, cfg.batch_size), world).to(device)
    log.info("search_rnn: %d weight tokens, %d architecture tokens (%s), order %s", len(weight_tokens),
             len(arch_data), cfg.arch_data, cfg.order)

    for epoch in range(run.start_epoch, cfg.epochs):
        started = time.monotonic()
        row: dict[str, Any] = {"epoch": epoch + 1}
        windows = text.variable_bptt(train_source.size(0), cfg.bptt, cfg.max_seq_len_delta,
                                     text.bptt_generator(seed, epoch))
        row |= train_epoch(model, architect, train_source, ArchStream(arch_source), windows, cfg, epoch + 1,
                           params.runtime.progress and world.is_main, world)
        average_buffers(model, world)
        valid_loss = evaluate_lm(model, data.valid, cfg.eval_batch_size, cfg.bptt)
        row |= {"valid_loss": valid_loss, "valid_ppl": perplexity(valid_loss)}
        if eigenvalue_due(cfg.eigenvalue_every, epoch + 1):
            model.train()
            x, y = text.get_batch(arch_source, 0, cfg.bptt)
            row["hessian_eigenvalue"] = architect.hessian_eigenvalue(
                LMBatch(x, y, model.init_hidden(arch_source.size(1))), cfg.eigenvalue_iterations)
        genotype = model.genotype()
        row |= {
            "skip_connects": sum(op == "identity" for op, _ in genotype.recurrent),
            "seconds": round(time.monotonic() - started, 3),
            "order": cfg.order, "hessian": cfg.hessian, "arch_data": cfg.arch_data,
            "genotype": genotype.to_json(),
            "alphas_softmax": alphas_softmax({"recurrent": model.alphas}),
        }
        run.end_epoch(row, ("train_ppl", "valid_ppl", "skip_connects"))

    last = run.history[-1]
    metrics = {k: last[k] for k in ("train_loss", "train_ppl", "valid_loss", "valid_ppl", "skip_connects")}
    metrics["arch_data"] = cfg.arch_data
    if "hessian_eigenvalue" in last:
        metrics["hessian_eigenvalue"] = last["hessian_eigenvalue"]
    run.finish(metrics, device, result_files(model.genotype(), {"recurrent": model.alphas}))
    return metrics


def train_epoch(model: RNNSearchModel, architect: Architect, source: Tensor, arch: ArchStream,
                windows: Iterator[tuple[int, int]], cfg: SearchRNN, epoch: int, progress: bool,
                world: D.World = D.World()) -> dict[str, float]:
    """Alg. 1 over one pass of the training stream: an alpha step, then a weight step, per window
    (this rank's columns; the gradients of both steps are averaged over the ranks)."""
    from tqdm import tqdm

    model.train()
    weights = model.weight_parameters()
    w_opt = architect.weight_optimizer
    hidden = model.init_hidden(source.size(1))
    sums = torch.zeros(3, dtype=torch.float64, device=source.device)  # loss * tokens, arch loss * tokens, tokens
    for step, (i, seq_len) in enumerate(tqdm(windows, desc=f"epoch {epoch}", disable=not progress, leave=False), 1):
        x, y = text.get_batch(source, i, seq_len)
        for group in w_opt.param_groups:
            group["lr"] = cfg.lr * x.size(0) / cfg.bptt
        ax, ay, a_hidden = arch.next(x.size(0), lambda: model.init_hidden(source.size(1)))
        result = architect.step(LMBatch(x, y, hidden, cfg.ar_alpha, cfg.tar_beta), LMBatch(ax, ay, a_hidden))
        arch.hidden = result.aux
        out = model(x, hidden)
        loss, raw = lm_loss(out, y, cfg.ar_alpha, cfg.tar_beta)
        check_finite(all_finite_check({"train loss": raw.detach(), "architecture loss": result.loss}, world),
                     epoch, step)
        w_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=weights)
        average_gradients(weights, world)
        check_finite({"weight gradient norm": nn.utils.clip_grad_norm_(weights, cfg.grad_clip)}, epoch, step)
        w_opt.step()
        hidden = out.hidden.detach()
        n = float(y.numel())
        sums += torch.stack([raw.detach().double() * n, result.loss.double() * n,
                             torch.tensor(n, dtype=torch.float64, device=sums.device)])
    loss_sum, arch_sum, n = D.all_sum(sums, world).tolist()
    train_loss = loss_sum / n
    return {"train_loss": train_loss, "train_ppl": perplexity(train_loss), "arch_loss": arch_sum / n,
            "arch_ppl": perplexity(arch_sum / n)}
