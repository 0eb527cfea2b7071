"""The recurrent search space (darts/spaces/rnn) against independent, loop-by-loop computations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from darts.genotypes import PUBLISHED, RNN_PRIMITIVES, RNNGenotype
from darts.spaces.rnn.cell import num_edges
from darts.spaces.rnn.counting import count_parameters, describe_rnn
from darts.spaces.rnn.dropout import embedding_dropout, locked_dropout
from darts.spaces.rnn.model import Dropouts, RNNSearchModel, build_eval_model

NO_DROPOUT = Dropouts(0.0, 0.0, 0.0, 0.0, 0.0)
ACT = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}


def highway(s: torch.Tensor, ch: torch.Tensor, act) -> torch.Tensor:
    c, h = ch.chunk(2, dim=-1)
    return s + torch.sigmoid(c) * (act(h) - s)


def reference_eval_cell(x, h, w0, ws, genotype: RNNGenotype):
    """The DARTS cell written out directly: one node at a time, one time step at a time."""
    outputs = []
    for t in range(x.size(0)):
        states = [highway(h, torch.cat([x[t], h], dim=-1) @ w0, torch.tanh)]
        for i, (op, pred) in enumerate(genotype.recurrent):
            states.append(highway(states[pred], states[pred] @ ws[i], ACT[op]))
        h = sum(states[k] for k in genotype.concat) / len(genotype.concat)
        outputs.append(h)
    return torch.stack(outputs), h


def batch_norm(s: torch.Tensor) -> torch.Tensor:
    mean, var = s.mean(0), s.var(0, unbiased=False)
    return (s - mean) / torch.sqrt(var + 1e-5)


def reference_search_cell(x, h, w0, ws, probs, steps):
    """The relaxed cell: every (predecessor, op) pair of a node, weighted, then BatchNorm."""
    outputs = []
    for t in range(x.size(0)):
        states = [batch_norm(highway(h, torch.cat([x[t], h], dim=-1) @ w0, torch.tanh))]
        row = 0
        for i in range(steps):
            node = torch.zeros_like(h)
            for j in range(i + 1):
                for k, op in enumerate(RNN_PRIMITIVES):
                    if op != "none":
                        node = node + probs[row, k] * highway(states[j], states[j] @ ws[i], ACT[op])
                row += 1
            states.append(batch_norm(node))
        h = sum(states[1:]) / steps
        outputs.append(h)
    return torch.stack(outputs), h


def test_evaluation_cell_is_the_gated_highway_dag_averaged():
    torch.manual_seed(0)
    genotype = RNNGenotype((("relu", 0), ("tanh", 1), ("sigmoid", 0), ("identity", 2), ("relu", 4)), (1, 3, 4, 5))
    model = build_eval_model(11, 6, 6, genotype, NO_DROPOUT).double().eval()
    cell = model.cell
    for w in [cell._W0, *cell._Ws]:  # larger than the init so the nonlinearities matter
        torch.nn.init.normal_(w, std=0.5)
    x, h = torch.randn(4, 3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    states, last = cell(x, h)
    expected, expected_last = reference_eval_cell(x, h, cell._W0, list(cell._Ws), genotype)
    assert states.shape == (4, 3, 6) and last.shape == (3, 6)
    torch.testing.assert_close(states, expected)
    torch.testing.assert_close(last, expected_last)


def test_search_cell_mixes_every_edge_and_op_with_batchnorm():
    torch.manual_seed(0)
    steps = 3
    model = RNNSearchModel(11, 5, 5, NO_DROPOUT, steps=steps, alpha_init_scale=1.0).double().train()
    cell = model.cell
    for w in [cell._W0, *cell._Ws]:
        torch.nn.init.normal_(w, std=0.5)
    x, h = torch.randn(3, 4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    probs = F.softmax(model.alphas, dim=-1)
    states, last = cell(x, h, probs)
    expected, _ = reference_search_cell(x, h, cell._W0, list(cell._Ws), probs, steps)
    torch.testing.assert_close(states, expected)
    assert model.alphas.shape == (num_edges(steps), len(RNN_PRIMITIVES)) == (6, 5)


def test_language_model_shapes_and_tied_decoder():
    model = RNNSearchModel(13, 4, 4, Dropouts())
    tokens = torch.randint(0, 13, (7, 2))
    out = model(tokens, model.init_hidden(2))
    assert out.logits.shape == (7, 2, 13) and out.hidden.shape == (2, 4)
    assert out.states.shape == out.dropped.shape == (7, 2, 4)
    assert model.decoder.weight is model.encoder.weight
    names = {n for n, _ in model.named_parameters()}
    assert {"encoder.weight", "rnns.0._W0", "rnns.0._Ws.7", "decoder.bias", "alphas"} <= names
    assert model.arch_parameters() == [model.alphas]
    assert all(p is not model.alphas for p in model.weight_parameters())
    assert len(model.weight_parameters()) + 1 == len(list(model.parameters()))


def test_search_model_derives_its_genotype_from_softmax_alphas():
    model = RNNSearchModel(13, 4, 4, Dropouts())
    alphas = torch.zeros(36, 5)
    chosen = [("relu", 0), ("tanh", 1), ("identity", 0), ("sigmoid", 3), ("relu", 2), ("tanh", 5),
              ("identity", 6), ("sigmoid", 7)]
    row = 0
    for node, (op, pred) in enumerate(chosen):
        for j in range(node + 1):
            alphas[row + j, RNN_PRIMITIVES.index(op) if j == pred else 0] = 2.0 if j == pred else 1.0
        row += node + 1
    alphas[0, 0] = 9.0  # a dominant `none` on node 1's only edge does not stop its best real op
    alphas[0, RNN_PRIMITIVES.index("relu")] = 0.5
    with torch.no_grad():
        model.alphas.copy_(alphas)
    assert model.genotype() == RNNGenotype(tuple(chosen), tuple(range(1, 9)))


def test_locked_dropout_shares_one_mask_over_time():
    torch.manual_seed(0)
    x = torch.ones(6, 50, 8)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:1].expand_as(y))
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 0 < (y == 0).float().mean() < 1
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_embedding_dropout_drops_whole_words_everywhere_they_occur():
    torch.manual_seed(0)
    weight = torch.randn(40, 3)
    tokens = torch.arange(40).repeat(5).view(10, 20)
    emb = embedding_dropout(weight, tokens, 0.5, training=True)
    dropped = (emb == 0).all(-1)
    for word in range(40):
        rows = emb[tokens == word]
        assert dropped[tokens == word].all() or dropped[tokens == word].logical_not().all()
        if not dropped[tokens == word].any():
            torch.testing.assert_close(rows, weight[word].expand_as(rows) * 2.0)
    assert 0 < dropped.float().mean() < 1


@pytest.mark.parametrize("dataset,vocab,emsize,expected", [
    ("ptb", 10_000, 850, 22_960_000),
    ("wikitext2", 33_278, 700, 33_127_878),
])
def test_evaluation_parameter_counts_equal_the_official_networks(dataset, vocab, emsize, expected):
    info = describe_rnn(PUBLISHED["rnn"]["DARTS_V2"], vocab, emsize, emsize)
    assert info["params"] == expected
    # per token: W0, the eight node maps and the tied decoder, computed here by hand
    assert info["mult_adds"] == 2 * emsize * 2 * emsize + 8 * emsize * 2 * emsize + emsize * vocab


def test_search_model_parameter_count_at_paper_size():
    with torch.device("meta"):
        model = RNNSearchModel(10_000, 300, 300, Dropouts())
    assert count_parameters(model.weight_parameters()) == 4_810_000
    assert count_parameters(model.parameters()) == 4_810_000 + 36 * 5


def test_enas_cell_with_eleven_nodes_builds_and_runs():
    enas = PUBLISHED["rnn"]["ENAS"]
    model = build_eval_model(9, 4, 4, enas, Dropouts())
    out = model(torch.randint(0, 9, (3, 2)), model.init_hidden(2))
    assert out.logits.shape == (3, 2, 9)
    assert len(model.cell._Ws) == len(enas.recurrent) == 11


# The official DARTS language model (rnn/model.py) initialises the embedding, the tied decoder and
# every cell matrix (W0, W_1..W_8) uniformly in [-INITRANGE, INITRANGE] with INITRANGE = 0.04, the
# decoder bias at zero, and (rnn/model_search.py) the alphas as 1e-3 * N(0, 1). Stated here from that
# description, not read from the code under test.
OFFICIAL_INITRANGE = 0.04
OFFICIAL_ALPHA_SCALE = 1e-3


def _assert_uniform(name: str, w: torch.Tensor, r: float) -> None:
    """w looks like n independent draws of U(-r, r): bounded by r, reaching past 0.9 r (a miss has
    probability 0.9^n < 1e-9 for n >= 200), mean and variance within 6 standard errors of 0 and r^2/3
    (the sample variance of U(-r, r) has relative standard error sqrt(0.8 / n))."""
    w = w.detach().double().flatten()
    n = w.numel()
    assert n >= 200, name
    assert w.abs().max() <= r, (name, w.abs().max().item(), r)
    assert w.abs().max() > 0.9 * r, (name, w.abs().max().item(), r)
    assert abs(w.mean().item()) < 6 * (r / 3 ** 0.5) / n ** 0.5, (name, w.mean().item())
    assert abs(w.var().item() / (r * r / 3) - 1) < 6 * (0.8 / n) ** 0.5, (name, w.var().item(), r * r / 3)


@pytest.mark.parametrize("kind", ["search", "evaluation"])
def test_every_initialised_tensor_has_the_official_range(kind):
    torch.manual_seed(0)
    vocab, size = 600, 40
    if kind == "search":
        model = RNNSearchModel(vocab, size, size, Dropouts())
    else:
        model = build_eval_model(vocab, size, size, PUBLISHED["rnn"]["DARTS_V2"], Dropouts())
    params = dict(model.named_parameters())
    cell = [f"rnns.0._Ws.{i}" for i in range(8)]
    expected = {"encoder.weight", "rnns.0._W0", *cell, "decoder.bias"} | ({"alphas"} if kind == "search" else set())
    assert set(params) == expected  # a new tensor must be added here with its official range
    assert model.decoder.weight is model.encoder.weight  # tied: the decoder weight is the embedding
    for name in ["encoder.weight", "rnns.0._W0", *cell]:
        _assert_uniform(name, params[name], OFFICIAL_INITRANGE)
    assert params["rnns.0._W0"].shape == (2 * size, 2 * size)
    assert torch.equal(params["decoder.bias"], torch.zeros(vocab))
    if kind == "search":
        a = params["alphas"].detach().double().flatten()  # 180 draws of 1e-3 N(0, 1)
        assert a.abs().max() < 6 * OFFICIAL_ALPHA_SCALE
        # sample std of 180 normals: relative standard error 1/sqrt(2 * 180) ~ 0.053; 6 of them
        assert abs(a.std().item() / OFFICIAL_ALPHA_SCALE - 1) < 6 / (2 * a.numel()) ** 0.5
