"""The RNN search's architecture step (the shared Architect driven by darts/search/rnn.py) on a
tiny recurrent model with dropout active, against the unrolled objective computed independently.

phi(alpha) = L_val(w', alpha) with w' = w - xi (c grad_w L_train(w, alpha) + wd w), every loss
evaluated with the same dropout masks, is differentiated by central differences in alpha; the
weights w' are loaded into a copy of the model, whose decoder *is* its embedding matrix. Each of
the three defects measured on the official RNN architect is shown to change the result, so the
tests would fail on the official behaviour:
(a) fresh dropout masks for every loss evaluation; (b) a virtual step that leaves the tied
embedding/decoder matrix at its old value; (c) the implicit term scaled by an uncapped clipping
coefficient clip / ||g|| (> 1 when the gradient is small).
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from darts.config import SearchRNN, load_section
from darts.search.bilevel import Architect
from darts.search.rnn import LMBatch, build_architect, window_loss
from darts.spaces.rnn.model import Dropouts, RNNSearchModel

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
VOCAB, SIZE, STEPS, LR, WD, AR, TAR = 7, 4, 2, 1.0, 1e-3, 0.1, 0.05
DROPOUTS = Dropouts(dropout=0.3, dropouth=0.3, dropoutx=0.3, dropouti=0.3, dropoute=0.2)


def make_model(seed: int = 0) -> RNNSearchModel:
    torch.manual_seed(seed)
    model = RNNSearchModel(VOCAB, SIZE, SIZE, DROPOUTS, steps=STEPS, alpha_init_scale=1.0).double().train()
    with torch.no_grad():
        for p in model.weight_parameters():
            p.normal_(0.0, 0.6)
    return model


def batches(seed: int = 1) -> tuple[LMBatch, LMBatch]:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, VOCAB, (2, 6, 3), generator=g)
    hidden = torch.randn(2, 3, SIZE, generator=g, dtype=torch.float64)
    train = LMBatch(tokens[0, :-1], tokens[0, 1:], hidden[0], AR, TAR)
    valid = LMBatch(tokens[1, :-1], tokens[1, 1:], hidden[1])
    return train, valid


def config(**overrides) -> SearchRNN:
    base = dict(lr=LR, weight_decay=WD, order="second", hessian="exact", grad_clip=1e6, virtual_step_clip="match")
    return load_section("search_rnn", PARAMS, **{**base, **overrides})


def loss_by_hand(model: RNNSearchModel, batch: LMBatch) -> torch.Tensor:
    out = model(batch.data, batch.hidden)
    loss = F.cross_entropy(out.logits.reshape(-1, VOCAB), batch.targets.reshape(-1))
    return loss + batch.ar_alpha * out.dropped.pow(2).mean() + batch.tar_beta * out.states.diff(dim=0).pow(2).mean()


def unrolled_objective(model: RNNSearchModel, train: LMBatch, valid: LMBatch, rng: torch.Tensor,
                       coef: float | None = None, tied_update: bool = True) -> torch.Tensor:
    """phi(alpha) at the model's alphas: the virtual step by ordinary autograd on a copy, the
    weights w' copied in, the same random state before every forward pass."""
    net = copy.deepcopy(model)
    weights = net.weight_parameters()
    torch.set_rng_state(rng)
    grads = torch.autograd.grad(loss_by_hand(net, train), weights)
    norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
    c = coef if coef is not None else 1.0
    with torch.no_grad():
        old_embedding = net.encoder.weight.clone()
        for p, g in zip(weights, grads):
            p.sub_(LR * (c * g + WD * p))
        if not tied_update:  # the official virtual step: the decoder keeps the old matrix
            net.decoder.weight = torch.nn.Parameter(old_embedding)
    torch.set_rng_state(rng)
    with torch.no_grad():
        return loss_by_hand(net, valid), norm


def reference_gradient(model: RNNSearchModel, train: LMBatch, valid: LMBatch, rng: torch.Tensor,
                       h: float = 1e-5, **kw) -> torch.Tensor:
    grad = torch.zeros_like(model.alphas)
    for idx in itertools.product(*map(range, model.alphas.shape)):
        values = []
        for sign in (1.0, -1.0):
            shifted = copy.deepcopy(model)
            with torch.no_grad():
                shifted.alphas[idx] += sign * h
            values.append(unrolled_objective(shifted, train, valid, rng, **kw)[0])
        grad[idx] = (values[0] - values[1]) / (2 * h)
    return grad


def architect_gradient(model: RNNSearchModel, cfg: SearchRNN, train: LMBatch, valid: LMBatch,
                       rng: torch.Tensor) -> torch.Tensor:
    torch.set_rng_state(rng)
    grads, _ = build_architect(model, cfg).arch_gradient(train, valid)
    return grads[0]


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def setup():
    model = make_model()
    train, valid = batches()
    rng = torch.get_rng_state()
    return model, train, valid, rng, reference_gradient(model, train, valid, rng)


def test_exact_second_order_gradient_is_the_derivative_of_the_unrolled_objective(setup):
    model, train, valid, rng, reference = setup
    ours = architect_gradient(model, config(), train, valid, rng)
    assert relative_error(ours, reference) < 1e-6


def test_finite_difference_product_matches_the_exact_one_with_dropout_active(setup):
    model, train, valid, rng, reference = setup
    exact = architect_gradient(model, config(), train, valid, rng)
    for eps, tol in ((1e-4, 1e-6), (1e-2, 1e-3)):  # 1e-2: the paper's epsilon
        fd = architect_gradient(model, config(hessian="finite_difference", fd_epsilon=eps), train, valid, rng)
        assert relative_error(fd, exact) < tol, eps
    assert relative_error(fd, reference) < 1e-3


def test_defect_a_fresh_dropout_masks_would_swamp_the_hessian_vector_product(setup):
    """The official code drew new masks for each finite-difference evaluation."""
    model, train, valid, rng, reference = setup
    seeds = itertools.count(100)

    def fresh_masks(forward, batch):
        torch.manual_seed(next(seeds))
        return window_loss(forward, batch)

    w_opt = torch.optim.SGD(model.weight_parameters(), lr=LR, weight_decay=WD)
    a_opt = torch.optim.Adam(model.arch_parameters())
    official = Architect(model, w_opt, a_opt, fresh_masks, hessian="finite_difference")
    fd_fresh = official.arch_gradient(train, valid)[0][0]
    fd_ours = architect_gradient(model, config(hessian="finite_difference"), train, valid, rng)
    assert relative_error(fd_ours, reference) < 1e-2
    assert relative_error(fd_fresh, reference) > 5.0  # mask noise divided by 2 eps (measured: ~30x)


def test_defect_b_the_virtual_step_moves_the_tied_decoder_too(setup):
    model, train, valid, rng, reference = setup
    architect = build_architect(model, config())
    torch.set_rng_state(rng)
    w_prime = architect.virtual_weights(train)
    assert "decoder.weight" not in w_prime  # tied: one tensor, updated once
    net = copy.deepcopy(model)
    torch.set_rng_state(rng)
    loss_by_hand(net, train).backward()
    with torch.no_grad():
        expected = net.encoder.weight - LR * (net.encoder.weight.grad + WD * net.encoder.weight)
    torch.testing.assert_close(w_prime["encoder.weight"], expected)
    # the validation loss the architect differentiates is that of a network whose decoder moved too
    torch.set_rng_state(rng)
    step = architect.arch_gradient(train, valid)[1]
    tied, _ = unrolled_objective(model, train, valid, rng)
    stale, _ = unrolled_objective(model, train, valid, rng, tied_update=False)
    torch.testing.assert_close(step.loss, tied)
    assert abs(float(stale - tied)) > 1e-3
    official = reference_gradient(model, train, valid, rng, tied_update=False)
    assert relative_error(official, reference) > 0.5


def test_defect_c_a_small_gradient_is_not_scaled_up_by_the_clip_coefficient(setup):
    model, train, valid, rng, reference = setup
    _, norm = unrolled_objective(model, train, valid, rng)
    clip = 10.0 * float(norm)  # clipping inactive: the official coefficient would be 10
    ours = architect_gradient(model, config(grad_clip=clip), train, valid, rng)
    assert relative_error(ours, reference) < 1e-6
    first_order = architect_gradient(model, config(order="first"), train, valid, rng)
    # the official step: dalpha = grad_alpha L_val(w') - xi * (clip / ||g||) * H v, here at coefficient 10
    direct = _direct_term(model, train, valid, rng)
    official = direct + 10.0 * (reference - direct)
    assert relative_error(official, reference) > 1.0
    assert relative_error(first_order, reference) > 0.5  # the implicit term is not negligible here


def test_an_active_clip_scales_the_virtual_step_and_its_implicit_term_alike(setup):
    model, train, valid, rng, _ = setup
    _, norm = unrolled_objective(model, train, valid, rng)
    coef = 0.25
    clipped = reference_gradient(model, train, valid, rng, coef=coef)
    ours = architect_gradient(model, config(grad_clip=coef * float(norm)), train, valid, rng)
    assert relative_error(ours, clipped) < 1e-5
    unclipped = architect_gradient(model, config(grad_clip=coef * float(norm), virtual_step_clip="none"),
                                   train, valid, rng)
    assert relative_error(unclipped, setup[4]) < 1e-6


def _direct_term(model: RNNSearchModel, train: LMBatch, valid: LMBatch, rng: torch.Tensor) -> torch.Tensor:
    """grad_alpha L_val(w', alpha) at fixed w' (the second order gradient without its implicit term)."""
    net = copy.deepcopy(model)
    torch.set_rng_state(rng)
    weights = net.weight_parameters()
    grads = torch.autograd.grad(loss_by_hand(net, train), weights)
    with torch.no_grad():
        for p, g in zip(weights, grads):
            p.sub_(LR * (g + WD * p))
    torch.set_rng_state(rng)
    return torch.autograd.grad(loss_by_hand(net, valid), net.alphas)[0]
