"""The bilevel step of DARTS (Sect. 2.3, Alg. 1): one architecture update, first or second order.

Shared by the CNN and the RNN search. The architecture gradient is

    first order:   dα = ∇α L_val(w, α)
    second order:  dα = ∇α L_val(w', α) − H u,   H u = ∇²α,w L_train(w, α) · u,   u = ξ c v,
                   v = ∇w' L_val(w', α),   w' = the next step of the weight optimizer,

where w' = w − ξ(momentum · buf + c ∇w L_train(w, α) + wd · w) folds in the optimizer's momentum
and weight decay (as the official CNN code does; the paper notes the objective "is modified
accordingly"), ξ is each weight's current learning rate (paper, footnote 1) and c is the
gradient-clipping coefficient min(1, clip / ‖∇w L_train‖) when the virtual step clips as the real
one does (c = 1 without clipping). H u is taken by the central difference of footnote 2,
(∇α L_train(w + εu) − ∇α L_train(w − εu)) / 2ε with ε = fd_epsilon / ‖u‖ (the paper's points
w ± 0.01 v/‖v‖), or exactly by double backward.

Every evaluation is functional (torch.func.functional_call): the network is never copied or
rebuilt, the live weights are never perturbed, BatchNorm statistics go to throw-away copies, and
each evaluation replays the random state the step started from, so dropout masks agree across
w, w' and w ± εu. The step leaves the global random state where it found it. The per-weight
arithmetic (w', w ± εu, the norms) runs as fused ``torch._foreach`` ops, and the buffers' copies
live in one scratch set refreshed per evaluation, not cloned anew.

Under a caller's autocast (bf16) the network's evaluations run in low precision, except the two
finite-difference points, which run in the weights' own precision: εu is ~1e-5 of a weight, below
bf16's resolution, so in bf16 w + εu and w − εu round to the same weights and their difference
would be rounding noise. w', u, ε and the quotient are float32 tensor arithmetic outside the network.

Data-parallel (``reduce``, DEVIATIONS.md): each process evaluates the losses on its slice of the
batch, and every gradient the step combines is the mean over processes: ∇w L_train of the virtual
step (so w' is the same on every rank), v and ∇α L_val at w', and H u. The step then computes the
architecture gradient of the mean of the per-process losses.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Literal, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call

Forward = Callable[..., Any]
"""The model's forward at given weights: ``forward(*inputs)`` returns what ``model(*inputs)`` would."""

LossFn = Callable[[Forward, Any], "Tensor | tuple[Tensor, Any]"]
"""``loss_fn(forward, batch)``: the scalar loss of a batch, optionally with an auxiliary output
(e.g. the next hidden state of a recurrent model), returned as ``(loss, aux)``."""

Order = Literal["first", "second"]
Hessian = Literal["finite_difference", "exact"]


class ArchStep(NamedTuple):
    loss: Tensor  # L_val at the point its alpha gradient was taken (w in first order, w' in second)
    aux: Any  # the loss function's auxiliary output there, or None


class Architect:
    """Updates the architecture parameters of ``model`` by the DARTS architecture gradient.

    The weights are those of ``weight_optimizer`` (an SGD whose lr, momentum, weight decay and
    momentum buffers define the virtual step), the alphas those of ``arch_optimizer``.
    ``virtual_step_clip`` clips the virtual step's gradient as ``clip_grad_norm_`` clips the real
    one (None: no clipping, as in the official CNN search). ``reduce`` maps a list of gradients to
    their means over the processes of a data-parallel search (None: one process).
    """

    def __init__(
        self,
        model: nn.Module,
        weight_optimizer: torch.optim.SGD,
        arch_optimizer: torch.optim.Optimizer,
        loss_fn: LossFn,
        *,
        order: Order = "second",
        hessian: Hessian = "finite_difference",
        fd_epsilon: float = 0.01,
        virtual_step_clip: float | None = None,
        reduce: Callable[[list[Tensor]], list[Tensor]] | None = None,
    ):
        if order not in ("first", "second"):
            raise ValueError(f"order must be 'first' or 'second', got {order!r}")
        if hessian not in ("finite_difference", "exact"):
            raise ValueError(f"hessian must be 'finite_difference' or 'exact', got {hessian!r}")
        for group in weight_optimizer.param_groups:
            if group.get("nesterov") or group.get("dampening", 0.0) or group.get("maximize"):
                raise ValueError("the virtual step models plain SGD: no nesterov, dampening or maximize")
        self._names = {id(p): n for n, p in model.named_parameters()}
        if any(id(p) not in self._names for g in weight_optimizer.param_groups for p in g["params"]):
            raise ValueError("the weight optimizer holds tensors that are not parameters of the model")
        self.model, self.loss_fn = model, loss_fn
        self.weight_optimizer, self.arch_optimizer = weight_optimizer, arch_optimizer
        self.order, self.hessian = order, hessian
        self.fd_epsilon, self.virtual_step_clip = fd_epsilon, virtual_step_clip
        self.reduce = reduce  # the mean over the processes of a data-parallel search; None: one process
        self.alphas = [p for g in arch_optimizer.param_groups for p in g["params"]]
        self._scratch: dict[str, Tensor] = {}  # the buffers' throw-away copies, reused across evaluations

    @property
    def weights(self) -> list[tuple[str, Tensor, dict[str, Any]]]:
        """(name, parameter, its optimizer group), read afresh: the loop changes the learning rate,
        and loading a state dict replaces the groups."""
        return [(self._names[id(p)], p, g) for g in self.weight_optimizer.param_groups for p in g["params"]]

    def step(self, train_batch: Any, valid_batch: Any) -> ArchStep:
        """One architecture update (Alg. 1, step 1); ``train_batch`` is unused in first order."""
        grads, result = self.arch_gradient(train_batch, valid_batch)
        for alpha, grad in zip(self.alphas, grads):
            alpha.grad = grad
        self.arch_optimizer.step()
        return result

    def arch_gradient(self, train_batch: Any, valid_batch: Any) -> tuple[list[Tensor], ArchStep]:
        with self._replayed_randomness() as replay:
            if self.order == "first":
                loss, aux = self._loss(valid_batch, replay)
                grads = self._mean(torch.autograd.grad(loss, self.alphas, allow_unused=True))
                return [_or_zeros(g, a) for g, a in zip(grads, self.alphas)], ArchStep(loss.detach(), aux)
            exact = self.hessian == "exact"
            train_grads, w_prime, scale = self._virtual_step(train_batch, replay, create_graph=exact)
            loss, aux = self._loss(valid_batch, replay, w_prime)
            grads = self._mean(torch.autograd.grad(loss, [*w_prime.values(), *self.alphas], allow_unused=True))
            v, d_alpha = grads[: len(w_prime)], grads[len(w_prime):]
            u = {n: scale[n] * g for n, g in zip(w_prime, v) if g is not None}
            if exact:
                inner = sum((train_grads[n] * u[n]).sum() for n in u)
                hu = torch.autograd.grad(inner, self.alphas, allow_unused=True)
            else:
                hu = self._finite_difference_hvp(train_batch, replay, u)
            hu = self._mean(hu)
            d_alpha = [_or_zeros(d, a) - _or_zeros(h, a) for d, h, a in zip(d_alpha, hu, self.alphas)]
            return d_alpha, ArchStep(loss.detach(), aux)

    def virtual_weights(self, train_batch: Any) -> dict[str, Tensor]:
        """w': what the weight optimizer's next step on ``train_batch`` would make of the weights."""
        with self._replayed_randomness() as replay:
            return {n: w.detach() for n, w in self._virtual_step(train_batch, replay, create_graph=False)[1].items()}

    def hessian_eigenvalue(self, batch: Any, iterations: int = 5, seed: int = 0) -> float:
        """Dominant eigenvalue of ∇²α L(w, α) on ``batch`` by power iteration with exact
        Hessian-vector products (RobustDARTS' early sign of the skip-connect collapse)."""
        with self._replayed_randomness() as replay:
            loss, _ = self._loss(batch, replay)
            grads = torch.autograd.grad(loss, self.alphas, create_graph=True)
            gen = torch.Generator().manual_seed(seed)
            vec = [torch.randn(a.shape, generator=gen, dtype=a.dtype).to(a.device) for a in self.alphas]
            eigenvalue = torch.zeros(())
            for _ in range(iterations):
                vec = [x / _norm(vec) for x in vec]
                hv = self._mean(torch.autograd.grad(grads, self.alphas, grad_outputs=vec, retain_graph=True))
                eigenvalue = sum((h * x).sum() for h, x in zip(hv, vec))
                vec = list(hv)
            return float(eigenvalue)

    def _virtual_step(
        self, batch: Any, replay: Callable[[], None], create_graph: bool
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor | float]]:
        """(∇w L_train by name, w' as fresh leaves, ξc by name); weights without a gradient are
        skipped by SGD, so they stay out of w' too."""
        # with create_graph the graph outlives the next evaluation: BatchNorm saved its buffers, so
        # they must be copies of their own, not the scratch set the next evaluation overwrites
        loss, _ = self._loss(batch, replay, fresh_buffers=create_graph)
        weights = self.weights
        grads = torch.autograd.grad(loss, [p for _, p, _ in weights], create_graph=create_graph, allow_unused=True)
        used = [(w, g) for w, g in zip(weights, grads) if g is not None]
        steps = self._mean([g.detach() for _, g in used])  # ∇w L_train, the mean over processes
        coef: Tensor | float = 1.0
        if self.virtual_step_clip is not None:
            total = _norm(steps)
            coef = (self.virtual_step_clip / (total + 1e-6)).clamp(max=1.0)
        # w' = w − lr (momentum · buf + c g + wd · w), as SGD computes its step, fused per group
        train_grads, w_prime, scale = {}, {}, {}
        by_group: dict[int, list[int]] = {}
        for i, ((_, _, group), _) in enumerate(used):
            by_group.setdefault(id(group), []).append(i)
        for members in by_group.values():
            group = used[members[0]][0][2]
            params = [used[i][0][1].detach() for i in members]
            d = [steps[i] for i in members]
            if not (isinstance(coef, float) and coef == 1.0):
                d = torch._foreach_mul(d, coef)
            if group["weight_decay"]:
                d = torch._foreach_add(d, params, alpha=group["weight_decay"])
            if group["momentum"]:
                bufs = [self.weight_optimizer.state.get(used[i][0][1], {}).get("momentum_buffer") for i in members]
                with_buf = [k for k, b in enumerate(bufs) if b is not None]
                if with_buf:
                    moved = torch._foreach_add(torch._foreach_mul([bufs[k] for k in with_buf], group["momentum"]),
                                               [d[k] for k in with_buf])
                    d = list(d)
                    for k, m in zip(with_buf, moved):
                        d[k] = m
            new = torch._foreach_add(params, d, alpha=-group["lr"])
            for i, w in zip(members, new):
                (name, _, _), g = used[i]
                w_prime[name] = w.requires_grad_()
                train_grads[name], scale[name] = g, group["lr"] * coef
        return train_grads, w_prime, scale

    def _mean(self, grads: "tuple[Tensor | None, ...] | list[Tensor | None]") -> list:
        """Each gradient's mean over the processes (``reduce``); None stays None (the same on every rank)."""
        if self.reduce is None:
            return list(grads)
        means = iter(self.reduce([g for g in grads if g is not None]))
        return [None if g is None else next(means) for g in grads]

    def _finite_difference_hvp(self, batch: Any, replay: Callable[[], None], u: dict[str, Tensor]) -> list[Tensor]:
        norm = _norm(list(u.values()))
        if norm == 0:
            return [torch.zeros_like(a) for a in self.alphas]
        eps = self.fd_epsilon / norm
        live = {n: p.detach() for n, p, _ in self.weights}
        names, directions = list(u), list(u.values())
        at = [live[n] for n in names]
        sides = []
        for sign in (1.0, -1.0):
            shifted = dict(zip(names, torch._foreach_add(at, torch._foreach_mul(directions, sign * eps))))
            with torch.autocast(self.alphas[0].device.type, enabled=False):  # the weights' precision (docstring)
                loss, _ = self._loss(batch, replay, shifted)
            sides.append(torch.autograd.grad(loss, self.alphas, allow_unused=True))
        return [(_or_zeros(p, a) - _or_zeros(m, a)) / (2 * eps) for p, m, a in zip(*sides, self.alphas)]

    def _loss(self, batch: Any, replay: Callable[[], None], weights: dict[str, Tensor] | None = None,
              fresh_buffers: bool = False):
        """The loss at ``weights`` (the live ones where not given), on copies of the buffers: the
        scratch set, or new clones where the evaluation's graph must outlive the next evaluation."""
        state = {n: b.clone() for n, b in self.model.named_buffers()} if fresh_buffers else self._buffer_copies()
        state.update(weights or {})
        replay()
        out = self.loss_fn(lambda *a, **k: functional_call(self.model, state, a, k), batch)
        return out if isinstance(out, tuple) else (out, None)

    def _buffer_copies(self) -> dict[str, Tensor]:
        """The model's buffers copied into the scratch set (allocated once, refreshed in one fused copy)."""
        live = dict(self.model.named_buffers())
        scratch = self._scratch
        if scratch.keys() != live.keys() or any(
            s.shape != b.shape or s.dtype != b.dtype or s.device != b.device or s.stride() != b.stride()
            for s, b in zip(scratch.values(), live.values())
        ):
            scratch = self._scratch = {n: b.clone() for n, b in live.items()}
        elif scratch:
            torch._foreach_copy_(list(scratch.values()), list(live.values()))
        return dict(scratch)

    @contextmanager
    def _replayed_randomness(self) -> Iterator[Callable[[], None]]:
        devices = sorted({p.device.index or 0 for p in self.alphas if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=devices):
            cpu = torch.get_rng_state()
            cuda = [torch.cuda.get_rng_state(d) for d in devices]

            def replay() -> None:
                torch.set_rng_state(cpu)
                for d, s in zip(devices, cuda):
                    torch.cuda.set_rng_state(s, d)

            yield replay


def _norm(tensors: list[Tensor]) -> Tensor:
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


def _or_zeros(t: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if t is None else t
