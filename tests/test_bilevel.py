"""The bilevel step (darts/search/bilevel.py) against independent computations on tiny networks.

The strongest check: the second-order architecture gradient equals the exact derivative of the
unrolled objective d/dα L_val(w − ξ(m·buf + c∇w L_train(w, α) + wd·w), α), differentiated by
autograd through the virtual step.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from darts.search.bilevel import Architect


class MixedEdge(nn.Module):
    def __init__(self, channels: int, act: type[nn.Module], pool: type[nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList([
            nn.Sequential(act(), nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                          nn.BatchNorm2d(channels, affine=False)),
            pool(3, stride=1, padding=1),
            nn.Identity(),
        ])

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class TinySearchNet(nn.Module):
    """Two mixed edges in a row, each with its own row of alphas: a DARTS cell in miniature."""

    def __init__(self, act: type[nn.Module] = nn.ReLU, pool: type[nn.Module] = nn.MaxPool2d,
                 dropout: float = 0.0, channels: int = 4, classes: int = 5):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        self.edges = nn.ModuleList([MixedEdge(channels, act, pool) for _ in range(2)])
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(channels, classes)
        self.alphas = nn.Parameter(0.5 * torch.randn(2, 3))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for edge, row in zip(self.edges, F.softmax(self.alphas, dim=-1)):
            h = self.drop(edge(h, row))
        return self.head(h.mean((2, 3)))


class TiedNet(nn.Module):
    """An encoder matrix reused, transposed, as the decoder (as a language model ties them)."""

    def __init__(self, dim: int = 6, hidden: int = 4):
        super().__init__()
        self.encoder = nn.Linear(dim, hidden, bias=False)
        self.decoder = nn.Linear(hidden, dim, bias=False)
        self.decoder.weight = self.encoder.weight  # (hidden, dim) vs (dim, hidden): used transposed below
        self.alphas = nn.Parameter(0.5 * torch.randn(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tied_forward(self.encoder.weight, self.decoder.weight, self.alphas, x)


def tied_forward(enc: torch.Tensor, dec: torch.Tensor, alphas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    h = x @ enc.t()
    w = F.softmax(alphas, dim=0)
    h = w[0] * torch.tanh(h) + w[1] * torch.sigmoid(h) + w[2] * h
    return h @ dec


def ce_loss(forward, batch):
    x, y = batch
    return F.cross_entropy(forward(x), y)


def batches(dtype: torch.dtype, n: int = 8, size: int = 6, classes: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    make = lambda: (torch.randn(n, 3, size, size, generator=g, dtype=dtype),  # noqa: E731
                    torch.randint(0, classes, (n,), generator=g))
    return make(), make()


def setup(model: nn.Module, order="second", hessian="exact", fd_epsilon=0.01, clip=None,
          lr=0.1, loss_fn=ce_loss, warm_batch=None):
    """An Architect with the paper's optimizer settings, after one real weight step so that
    the momentum buffers exist."""
    alpha_ids = {id(a) for a in [model.alphas]}
    weights = [p for p in model.parameters() if id(p) not in alpha_ids]
    w_opt = torch.optim.SGD(weights, lr=lr, momentum=0.9, weight_decay=3e-4)
    a_opt = torch.optim.Adam([model.alphas], lr=3e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    if warm_batch is not None:
        loss_fn(model, warm_batch).backward(inputs=weights)
        w_opt.step()
        w_opt.zero_grad()
    arch = Architect(model, w_opt, a_opt, loss_fn, order=order, hessian=hessian,
                     fd_epsilon=fd_epsilon, virtual_step_clip=clip)
    return arch, w_opt, a_opt


def unrolled_alpha_grad(model, w_opt, train, valid, clip=None, loss_fn=ce_loss):
    """d/dα L_val(w'(α), α), differentiated through the virtual step by autograd (independent of
    the finite-difference / Hessian-vector product formula under test)."""
    names = {id(p): n for n, p in model.named_parameters()}
    group = w_opt.param_groups[0]
    params = group["params"]
    buffers = lambda: {n: b.clone() for n, b in model.named_buffers()}  # noqa: E731
    rng = torch.get_rng_state()
    g = torch.autograd.grad(loss_fn(lambda x: functional_call(model, buffers(), (x,)), train),
                            params, create_graph=True)
    coef = 1.0
    if clip is not None:
        total = torch.sqrt(sum((gi.detach() ** 2).sum() for gi in g))
        coef = min(1.0, clip / (float(total) + 1e-6))
    w_prime = {}
    for p, gi in zip(params, g):
        buf = w_opt.state[p]["momentum_buffer"]
        w_prime[names[id(p)]] = p - group["lr"] * (group["momentum"] * buf + coef * gi + group["weight_decay"] * p)
    torch.set_rng_state(rng)
    val = loss_fn(lambda x: functional_call(model, {**buffers(), **w_prime}, (x,)), valid)
    return torch.autograd.grad(val, model.alphas)[0]


def state_snapshot(model, w_opt):
    return ({k: v.clone() for k, v in model.state_dict().items() if k != "alphas"},
            [None if p.grad is None else p.grad.clone() for n, p in model.named_parameters() if n != "alphas"],
            {id(p): s["momentum_buffer"].clone() for p, s in w_opt.state.items()})


@pytest.mark.parametrize("hessian, fd_epsilon", [("exact", 0.01), ("finite_difference", 1e-5)])
@pytest.mark.parametrize("clip", [None, 0.05])
def test_second_order_gradient_is_the_unrolled_objectives_derivative(hessian, fd_epsilon, clip):
    torch.manual_seed(0)
    model = TinySearchNet().double()
    train, valid = batches(torch.float64)
    arch, w_opt, _ = setup(model, hessian=hessian, fd_epsilon=fd_epsilon, clip=clip, warm_batch=train)
    expected = unrolled_alpha_grad(model, w_opt, train, valid, clip=clip)
    got = arch.arch_gradient(train, valid)[0][0]
    first_order = torch.autograd.grad(ce_loss(model, valid), model.alphas)[0]
    assert (expected - first_order).norm() > 1e-3 * expected.norm()  # the implicit term matters here
    tol = 1e-10 if hessian == "exact" else 1e-6
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol * expected.norm().item())


def test_virtual_clip_is_capped_at_one():
    """The official RNN scaled the implicit term by clip/‖g‖ even when that exceeds 1; a clip far
    above the gradient norm must change nothing."""
    torch.manual_seed(0)
    model = TinySearchNet().double()
    train, valid = batches(torch.float64)
    plain, _, _ = setup(model, warm_batch=train)
    clipped, _, _ = setup(model, clip=1e6)
    clipped.weight_optimizer = plain.weight_optimizer
    torch.testing.assert_close(clipped.arch_gradient(train, valid)[0][0], plain.arch_gradient(train, valid)[0][0],
                               rtol=1e-12, atol=0)


def _fd_relative_errors(model, w_opt_state_batch, epsilons):
    train, valid = w_opt_state_batch
    arch, w_opt, _ = setup(model, hessian="exact", warm_batch=train)
    exact = arch.arch_gradient(train, valid)[0][0]
    w_prime = arch.virtual_weights(train)
    at_w_prime = torch.autograd.grad(
        ce_loss(lambda x: functional_call(model, {**{n: b.clone() for n, b in model.named_buffers()}, **w_prime},
                                          (x,)), valid), model.alphas)[0]
    implicit = at_w_prime - exact
    errors = []
    for eps in epsilons:
        fd = Architect(model, w_opt, arch.arch_optimizer, ce_loss, hessian="finite_difference", fd_epsilon=eps)
        errors.append(float((fd.arch_gradient(train, valid)[0][0] - exact).norm() / implicit.norm()))
    return errors


@pytest.mark.parametrize("act, pool", [(nn.ReLU, nn.MaxPool2d), (nn.Softplus, nn.AvgPool2d)])
def test_finite_difference_converges_to_exact_until_round_off(act, pool):
    """Truncation error falls with ε (on the ReLU/max-pool network once ±εu stops crossing kinks),
    then round-off takes over."""
    torch.manual_seed(0)
    model = TinySearchNet(act=act, pool=pool).double()
    epsilons = [1e-2, 1e-4, 1e-5, 1e-11, 1e-13]
    e = dict(zip(epsilons, _fd_relative_errors(model, batches(torch.float64), epsilons)))
    assert e[1e-2] > e[1e-4] > e[1e-5] < e[1e-11] < e[1e-13]
    assert e[1e-5] < 1e-8 and e[1e-13] > 100 * e[1e-5]


def test_finite_difference_at_paper_epsilon_on_smooth_surrogate():
    torch.manual_seed(0)
    model = TinySearchNet(act=nn.Softplus, pool=nn.AvgPool2d).double()
    (error,) = _fd_relative_errors(model, batches(torch.float64), [0.01])
    assert error < 1e-3


@pytest.mark.parametrize("order, hessian", [("first", "exact"), ("second", "finite_difference"), ("second", "exact")])
def test_alpha_step_leaves_weights_buffers_and_random_state_untouched(order, hessian):
    torch.manual_seed(0)
    model = TinySearchNet(dropout=0.3)
    train, valid = batches(torch.float32)
    arch, w_opt, _ = setup(model, order=order, hessian=hessian, warm_batch=train)
    before, alphas, rng = state_snapshot(model, w_opt), model.alphas.detach().clone(), torch.get_rng_state()
    arch.step(train, valid)
    after = state_snapshot(model, w_opt)
    for k, v in before[0].items():
        assert torch.equal(v, after[0][k]), k
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(before[1], after[1]))
    assert all(torch.equal(v, after[2][k]) for k, v in before[2].items())
    assert torch.equal(rng, torch.get_rng_state())
    assert not torch.equal(alphas, model.alphas)


def test_first_order_step_is_alternating_gradient_descent():
    torch.manual_seed(0)
    model = TinySearchNet().double()
    twin = copy.deepcopy(model)
    arch, w_opt, a_opt = setup(model, order="first")
    weights = [p for n, p in twin.named_parameters() if n != "alphas"]
    t_w_opt = torch.optim.SGD(weights, lr=0.1, momentum=0.9, weight_decay=3e-4)
    t_a_opt = torch.optim.Adam([twin.alphas], lr=3e-3, betas=(0.5, 0.999), weight_decay=1e-3)
    for step in range(3):
        train, valid = batches(torch.float64, seed=step)
        arch.step(train, valid)
        assert all(p.grad is None for _, p, _ in arch.weights)  # no weight gradients in the alpha step
        ce_loss(model, train).backward(inputs=[p for _, p, _ in arch.weights])
        w_opt.step()
        w_opt.zero_grad(set_to_none=True)

        twin.alphas.grad = torch.autograd.grad(ce_loss(twin, valid), twin.alphas)[0]
        t_a_opt.step()
        t_w_opt.zero_grad()
        ce_loss(twin, train).backward(inputs=weights)
        t_w_opt.step()
    torch.testing.assert_close(model.alphas, twin.alphas, rtol=1e-12, atol=1e-14)
    for (name, p), q in zip(((n, p) for n, p in model.named_parameters() if n != "alphas"), weights):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("clip", [None, 0.05])
def test_virtual_weights_are_the_optimizers_next_step(clip):
    torch.manual_seed(0)
    model = TinySearchNet()
    train, _ = batches(torch.float32)
    arch, w_opt, _ = setup(model, clip=clip, warm_batch=batches(torch.float32, seed=7)[0])
    w_opt.load_state_dict(w_opt.state_dict())  # as on resume: the optimizer's groups are new dicts
    w_opt.param_groups[0]["lr"] = 0.05  # as the schedule changes it
    w_prime = arch.virtual_weights(train)
    twin = copy.deepcopy(model)
    weights = [p for n, p in twin.named_parameters() if n != "alphas"]
    t_opt = torch.optim.SGD(weights, lr=0.1, momentum=0.9, weight_decay=3e-4)
    t_opt.load_state_dict(w_opt.state_dict())
    assert t_opt.param_groups[0]["lr"] == 0.05
    ce_loss(twin, train).backward(inputs=weights)
    if clip is not None:
        nn.utils.clip_grad_norm_(weights, clip)
    t_opt.step()
    stepped = dict(twin.named_parameters())
    assert set(w_prime) == {n for n, _, _ in arch.weights}
    for name, w in w_prime.items():
        torch.testing.assert_close(w, stepped[name].detach(), rtol=1e-5, atol=1e-6, msg=name)


def test_dropout_masks_are_shared_by_every_evaluation():
    """With fresh masks per evaluation (the official RNN architect) the finite difference is
    dominated by mask noise; replaying one random state makes it agree with the exact product."""
    torch.manual_seed(0)
    model = TinySearchNet(dropout=0.5).double()
    train, valid = batches(torch.float64)
    arch, w_opt, _ = setup(model, hessian="exact", warm_batch=train)
    rng = torch.get_rng_state()
    exact = arch.arch_gradient(train, valid)[0][0]
    torch.set_rng_state(rng)
    expected = unrolled_alpha_grad(model, w_opt, train, valid)
    torch.testing.assert_close(exact, expected, rtol=1e-10, atol=1e-12)
    fd = Architect(model, w_opt, arch.arch_optimizer, ce_loss, hessian="finite_difference", fd_epsilon=1e-5)
    torch.set_rng_state(rng)
    torch.testing.assert_close(fd.arch_gradient(train, valid)[0][0], exact, rtol=1e-6, atol=1e-8)


def test_tied_weights_are_updated_once_and_everywhere():
    """The official RNN's virtual step left the tied decoder at its old value."""
    torch.manual_seed(0)
    model = TiedNet().double()
    loss_fn = lambda forward, b: F.mse_loss(forward(b[0]), b[1])  # noqa: E731
    g = torch.Generator().manual_seed(3)
    train, valid = [(torch.randn(5, 6, generator=g, dtype=torch.float64),
                     torch.randn(5, 6, generator=g, dtype=torch.float64)) for _ in range(2)]
    arch, w_opt, _ = setup(model, loss_fn=loss_fn, lr=0.5, warm_batch=train)
    assert [n for n, _, _ in arch.weights] == ["encoder.weight"]

    w = model.encoder.weight
    gw = torch.autograd.grad(loss_fn(lambda x: tied_forward(w, w, model.alphas, x), train), w, create_graph=True)[0]
    w_prime = w - 0.5 * (0.9 * w_opt.state[w]["momentum_buffer"] + gw + 3e-4 * w)
    val = loss_fn(lambda x: tied_forward(w_prime, w_prime, model.alphas, x), valid)
    expected = torch.autograd.grad(val, model.alphas)[0]
    torch.testing.assert_close(arch.arch_gradient(train, valid)[0][0], expected, rtol=1e-10, atol=1e-12)


def test_hessian_eigenvalue_is_the_dense_hessians_dominant_one():
    torch.manual_seed(0)
    model = TinySearchNet(act=nn.Softplus, pool=nn.AvgPool2d).double()
    _, valid = batches(torch.float64)
    arch, _, _ = setup(model)
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    dense = torch.autograd.functional.hessian(
        lambda a: ce_loss(lambda x: functional_call(model, {**buffers, "alphas": a}, (x,)), valid),
        model.alphas.detach())
    eigenvalues = torch.linalg.eigvalsh(dense.reshape(6, 6))
    dominant = eigenvalues[eigenvalues.abs().argmax()]
    torch.testing.assert_close(torch.tensor(arch.hessian_eigenvalue(valid, iterations=200), dtype=torch.float64),
                               dominant, rtol=1e-6, atol=1e-10)


def test_rejects_unmodelled_settings():
    model = TinySearchNet()
    weights = [p for n, p in model.named_parameters() if n != "alphas"]
    adam = torch.optim.Adam([model.alphas])
    with pytest.raises(ValueError, match="nesterov"):
        Architect(model, torch.optim.SGD(weights, lr=0.1, momentum=0.9, nesterov=True), adam, ce_loss)
    with pytest.raises(ValueError, match="order"):
        Architect(model, torch.optim.SGD(weights, lr=0.1), adam, ce_loss, order="third")
