"""Genotypes: derivation (Sect. 2.4), JSON and official-string round trips, published cells, random cells."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from darts.cli import main
from darts.errors import DartsError
from darts.genotypes import (
    CNN_PRIMITIVES,
    PUBLISHED,
    RNN_PRIMITIVES,
    CNNGenotype,
    RNNGenotype,
    derive_cnn,
    derive_rnn,
    genotype_from_json,
    load_genotype,
    parse_official,
    random_genotype,
)

PAPER_GENOTYPES = Path(__file__).resolve().parents[2] / "shared" / "paper" / "genotypes.json"
P = {name: i for i, name in enumerate(CNN_PRIMITIVES)}


def _row(weights: dict[str, float], primitives=CNN_PRIMITIVES) -> list[float]:
    """A softmax row: the named ops get the given weights, the rest share what is left equally."""
    rest = [p for p in primitives if p not in weights]
    fill = (1.0 - sum(weights.values())) / len(rest)
    return [weights.get(p, fill) for p in primitives]


def _uniform_cell() -> list[list[float]]:
    return [_row({}) for _ in range(14)]


def test_derive_cnn_keeps_the_two_strongest_edges_with_their_best_op():
    normal = _uniform_cell()
    # node 2 (edges 0, 1): both kept; node 3 (edges 2..4): edges 4 and 2 are strongest.
    normal[0] = _row({"sep_conv_3x3": 0.5})
    normal[1] = _row({"max_pool_3x3": 0.6})
    normal[2] = _row({"dil_conv_5x5": 0.3})
    normal[3] = _row({"avg_pool_3x3": 0.2})
    normal[4] = _row({"skip_connect": 0.4})
    # node 4 (edges 5..8): a dominant `none` does not count; edge 5's best other op (0.09) loses to edge 7's 0.2.
    normal[5] = _row({"none": 0.9, "sep_conv_5x5": 0.09})
    normal[6] = _row({"sep_conv_3x3": 0.25})
    normal[7] = _row({"dil_conv_3x3": 0.2})
    normal[8] = _row({"none": 0.05})
    # node 5 (edges 9..13): `none` dominates every edge; strength is still the best non-none weight.
    for e, (op, w) in zip(range(9, 14), [("max_pool_3x3", 0.05), ("sep_conv_5x5", 0.08), ("skip_connect", 0.02),
                                          ("avg_pool_3x3", 0.07), ("dil_conv_3x3", 0.03)]):
        normal[e] = _row({"none": 0.9, op: w})
    genotype = derive_cnn(np.array(normal), _uniform_cell())
    assert genotype.normal == (
        ("max_pool_3x3", 1), ("sep_conv_3x3", 0),
        ("skip_connect", 2), ("dil_conv_5x5", 0),
        ("sep_conv_3x3", 1), ("dil_conv_3x3", 2),
        ("sep_conv_5x5", 1), ("avg_pool_3x3", 3),
    )
    assert genotype.normal_concat == (2, 3, 4, 5)


def test_derive_cnn_ties_go_to_the_earlier_op_and_the_lower_input():
    # All weights equal: every op ties (-> the first non-none primitive), every edge ties (-> inputs 0, 1).
    genotype = derive_cnn(_uniform_cell(), _uniform_cell())
    expected = tuple(("max_pool_3x3", j) for _ in range(4) for j in (0, 1))
    assert genotype.normal == expected and genotype.reduce == expected
    # Two ops tie for the best on an edge: the earlier in PRIMITIVES wins.
    cell = _uniform_cell()
    cell[0] = _row({"dil_conv_5x5": 0.4, "sep_conv_3x3": 0.4})
    assert derive_cnn(cell, cell).normal[0] == ("sep_conv_3x3", 0)
    # Two later edges tie for node 4's strongest: the lower input is listed (and kept) first.
    cell = _uniform_cell()
    cell[7] = _row({"sep_conv_5x5": 0.5})
    cell[8] = _row({"avg_pool_3x3": 0.5})
    assert derive_cnn(cell, cell).normal[4:6] == (("sep_conv_5x5", 2), ("avg_pool_3x3", 3))


def test_derive_rejects_raw_alphas_and_wrong_shapes():
    with pytest.raises(ValueError, match="softmax"):
        derive_cnn(np.random.default_rng(0).normal(size=(14, 8)), _uniform_cell())
    with pytest.raises(ValueError, match="14 x 8"):
        derive_cnn(_uniform_cell()[:13], _uniform_cell())


def test_derive_rnn_keeps_one_edge_per_node():
    rows = [_row({}, RNN_PRIMITIVES) for _ in range(36)]
    rows[0] = _row({"none": 0.97, "relu": 0.01}, RNN_PRIMITIVES)  # node 1 has one choice whatever none says
    rows[1 + 1] = _row({"sigmoid": 0.7}, RNN_PRIMITIVES)          # node 2: input 1
    rows[3 + 0] = _row({"none": 0.9, "identity": 0.06}, RNN_PRIMITIVES)  # node 3, input 0: strength 0.06
    rows[3 + 2] = _row({"tanh": 0.4}, RNN_PRIMITIVES)             # node 3, input 2: 0.4 beats 0.06 and 0.2
    genotype = derive_rnn(np.array(rows))
    assert genotype.recurrent[:3] == (("relu", 0), ("sigmoid", 1), ("tanh", 2))
    # untouched nodes: uniform rows -> the first non-none op, the lowest input
    assert genotype.recurrent[3:] == tuple(("tanh", 0) for _ in range(5))
    assert genotype.concat == tuple(range(1, 9))


def test_shared_genotypes_json_matches_the_published_cells():
    data = json.loads(PAPER_GENOTYPES.read_text())
    for space, cls in (("cnn", CNNGenotype), ("rnn", RNNGenotype)):
        for name, entry in data[space]["genotypes"].items():
            genotype = cls.from_json(entry)  # the {"op": .., "input": ..} form, with extra keys
            assert PUBLISHED[space][name] == genotype
        assert PUBLISHED[space]["DARTS"] is PUBLISHED[space]["DARTS_V2"]
    assert PUBLISHED["cnn"]["DARTS_V2"].normal[-1] == ("dil_conv_3x3", 2)
    assert PUBLISHED["rnn"]["ENAS"].concat == (2, 5, 6, 9, 10, 11)


@pytest.mark.parametrize("space,name", [(s, n) for s in ("cnn", "rnn") for n in PUBLISHED[s]])
def test_published_cells_load_by_name_and_round_trip(space, name, tmp_path):
    genotype = load_genotype(name, space)
    assert genotype == PUBLISHED[space][name] and genotype.space == space
    assert genotype_from_json(json.loads(json.dumps(genotype.to_json()))) == genotype
    assert parse_official(genotype.to_official_string()) == genotype
    path = tmp_path / "genotype.json"
    genotype.save(path, name=name, source="test")
    assert json.loads(path.read_text())["name"] == name
    assert load_genotype(path, space) == genotype


def test_official_string_forms():
    text = ("DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
            "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
            "('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), "
            "('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), "
            "('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))")
    assert parse_official(text) == PUBLISHED["cnn"]["DARTS_V2"]
    assert CNNGenotype.parse_official(text) == PUBLISHED["cnn"]["DARTS_V2"]
    assert "normal_concat=range(2, 6)" in PUBLISHED["cnn"]["DARTS_V2"].to_official_string()
    enas = "Genotype(recurrent=[('tanh', 0)], concat=[1])"
    assert RNNGenotype.parse_official(enas) == RNNGenotype((("tanh", 0),), (1,))
    assert "concat=[2, 5, 6, 9, 10, 11]" in PUBLISHED["rnn"]["ENAS"].to_official_string()
    with pytest.raises(DartsError):
        CNNGenotype.parse_official(enas)


@pytest.mark.parametrize("text", [
    "Genotype(normal=__import__('os').system('true'), normal_concat=[2], reduce=[], reduce_concat=[2])",
    "Genotype(recurrent=[('tanh', 0)], concat=list(range(1, 2)))",
    "Genotype(recurrent=[('tanh', 0)], concat=[1], extra=1)",
    "NotAGenotype(recurrent=[('tanh', 0)], concat=[1])",
    "Genotype(recurrent=[('tanh', 0)]",
])
def test_official_strings_are_parsed_not_evaluated(text):
    with pytest.raises(DartsError):
        parse_official(text)


@pytest.mark.parametrize("data,match", [
    ({"normal": [["sep_conv_3x3", 2], ["sep_conv_3x3", 1]], "normal_concat": [2], "reduce": [["skip_connect", 0],
      ["skip_connect", 1]], "reduce_concat": [2]}, "input must be in 0..1"),
    ({"normal": [["conv_9x9", 0], ["sep_conv_3x3", 1]], "normal_concat": [2], "reduce": [["skip_connect", 0],
      ["skip_connect", 1]], "reduce_concat": [2]}, "unknown op"),
    ({"normal": [["sep_conv_3x3", 0]], "normal_concat": [2], "reduce": [["skip_connect", 0]],
      "reduce_concat": [2]}, "multiple of 2"),
    ({"recurrent": [["tanh", 0]], "concat": [1, 2]}, "outside"),
    ({"recurrent": [{"op": "tanh"}], "concat": [1]}, "bad entry"),
    ({"normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1]]}, "missing"),
    ({"name": "x"}, "no 'normal'"),
])
def test_invalid_genotypes_are_rejected_with_the_reason(data, match):
    with pytest.raises(DartsError, match=match):
        genotype_from_json(data)


def test_load_genotype_errors_name_the_problem(tmp_path):
    with pytest.raises(DartsError, match="not a published cnn genotype"):
        load_genotype("DARTS_V3", "cnn")
    with pytest.raises(DartsError, match="published RNN cell"):
        load_genotype("ENAS", "cnn")
    path = tmp_path / "rnn.json"
    PUBLISHED["rnn"]["DARTS"].save(path)
    with pytest.raises(DartsError, match="RNN genotype; a CNN one is needed"):
        load_genotype(path, "cnn")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DartsError, match="not valid JSON"):
        load_genotype(bad, "cnn")
    official = tmp_path / "genotype.txt"
    official.write_text(PUBLISHED["cnn"]["NASNet"].to_official_string() + "\n")
    assert load_genotype(official, "cnn") == PUBLISHED["cnn"]["NASNet"]
    assert load_genotype("DARTS", None).space == "cnn" and load_genotype("ENAS", None).space == "rnn"


def test_random_genotypes_are_valid_and_reproducible():
    for space in ("cnn", "rnn"):
        a = random_genotype(space, random.Random(7))
        assert a == random_genotype(space, random.Random(7)) != random_genotype(space, random.Random(8))
        assert genotype_from_json(a.to_json()) == a
    cnn = random_genotype("cnn", random.Random(0))
    assert all(cnn.normal[2 * n][1] != cnn.normal[2 * n + 1][1] for n in range(4))  # distinct inputs
    assert "none" not in {op for op, _ in cnn.normal + cnn.reduce}


def _frequencies(samples: list, key) -> Counter:
    return Counter(key(s) for s in samples)


def _assert_uniform(counts: Counter, categories: int, n: int) -> None:
    assert len(counts) == categories
    expected = n / categories
    sigma = (expected * (1 - 1 / categories)) ** 0.5
    assert all(abs(c - expected) < 5 * sigma for c in counts.values()), counts


def test_random_sampling_is_uniform_and_matches_deriving_from_random_alphas():
    """Node 5 of a CNN cell picks an unordered pair of 5 inputs (10 pairs) and ops among 7; the official
    baseline (derive from i.i.d. normal alphas) has the same distribution."""
    n = 3000
    rng = random.Random(0)
    ours = [random_genotype("cnn", rng).normal for _ in range(n)]
    gen = np.random.default_rng(0)

    def official_baseline():
        logits = gen.normal(size=(14, 8))
        weights = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return derive_cnn(weights, weights).normal

    theirs = [official_baseline() for _ in range(n)]
    for samples in (ours, theirs):
        _assert_uniform(_frequencies(samples, lambda g: frozenset((g[6][1], g[7][1]))), 10, n)
        _assert_uniform(_frequencies(samples, lambda g: g[6][0]), 7, n)
    rnn = [random_genotype("rnn", rng).recurrent for _ in range(n)]
    _assert_uniform(_frequencies(rnn, lambda g: g[7][1]), 8, n)  # node 8 chooses among states 0..7
    _assert_uniform(_frequencies(rnn, lambda g: g[7][0]), 4, n)


def test_genotype_command_converts_both_ways_and_samples(tmp_path, capsys):
    official = PUBLISHED["cnn"]["DARTS_V1"].to_official_string()
    out = tmp_path / "g.json"
    assert main(["genotype", "convert", official, "--out", str(out)]) == 0
    assert load_genotype(out, "cnn") == PUBLISHED["cnn"]["DARTS_V1"]
    capsys.readouterr()
    assert main(["genotype", "convert", str(out)]) == 0
    assert capsys.readouterr().out.strip() == official
    assert main(["genotype", "show", "ENAS"]) == 0
    shown = capsys.readouterr().out
    assert "node 11 = highway relu(node 8)" in shown and "concat=[2, 5, 6, 9, 10, 11]" in shown
    sample = tmp_path / "random.json"
    assert main(["genotype", "random", "--space", "rnn", "--seed", "3", "--out", str(sample)]) == 0
    assert load_genotype(sample, "rnn") == random_genotype("rnn", random.Random(3))
    assert main(["genotype", "show", "no_such_cell"]) == 1
