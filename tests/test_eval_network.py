"""Evaluation networks: official state-dict layout, counts, drop path, auxiliary head, weight loading."""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from darts.cli import main
from darts.errors import DartsError
from darts.genotypes import PUBLISHED, CNNGenotype
from darts.spaces.cnn.counting import count_mult_adds, count_parameters, network_info
from darts.spaces.cnn.eval_network import Cell, NetworkCIFAR, NetworkImageNet, drop_path
from darts.spaces.cnn.weights import load_official_state_dict

KEYS = Path(__file__).resolve().parents[2] / "shared" / "paper" / "official_state_dict_keys"
V1, V2 = PUBLISHED["cnn"]["DARTS_V1"], PUBLISHED["cnn"]["DARTS_V2"]


def official_layout(name: str) -> list[tuple[str, tuple[int, ...]]]:
    """(key, shape) rows of the official network's state dict, in order."""
    rows = []
    for line in (KEYS / name).read_text().splitlines()[1:]:
        key, shape = line.split("\t")
        rows.append((key, tuple(int(d) for d in shape.strip("()").split(",") if d.strip())))
    return rows


@pytest.fixture(scope="module")
def cifar_v2() -> NetworkCIFAR:
    torch.manual_seed(0)
    return NetworkCIFAR(36, 10, 20, True, V2)


@pytest.fixture(scope="module")
def imagenet_v2() -> NetworkImageNet:
    torch.manual_seed(0)
    return NetworkImageNet(48, 1000, 14, True, V2)


@pytest.mark.parametrize("fixture,table", [
    ("cifar_v2", "cifar10_DARTS_V2.tsv"), ("imagenet_v2", "imagenet_DARTS_V2.tsv"),
])
def test_state_dict_keys_and_shapes_equal_the_official_lists_in_order(fixture, table, request):
    model = request.getfixturevalue(fixture)
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == official_layout(table)


def test_parameter_counts_equal_the_official_networks(cifar_v2, imagenet_v2):
    assert count_parameters(cifar_v2) == 3_349_342
    assert count_parameters(NetworkCIFAR(36, 10, 20, True, V1)) == 3_169_414
    assert count_parameters(imagenet_v2) == 4_718_752
    assert count_parameters(NetworkImageNet(48, 1000, 14, True, V1)) == 4_510_432
    with_tower = count_parameters(cifar_v2, exclude_auxiliary=False)
    assert with_tower - count_parameters(cifar_v2) == sum(p.numel() for p in cifar_v2.auxiliary_head.parameters())


def test_mult_adds_equal_hand_arithmetic_on_a_small_network():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),                        # 8x8x8 out
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),    # depthwise, 4x4 out
        nn.Conv2d(8, 6, 3, padding=2, dilation=2, groups=2, bias=False),  # grouped, dilated, 4x4 out
        nn.Conv2d(6, 4, (1, 3), stride=(1, 2), padding=(0, 1)),           # 4x2 out
        nn.Flatten(),
        nn.Linear(4 * 4 * 2, 5),
    )
    expected = (8 * 8 * 8 * 3 * 9) + (8 * 4 * 4 * 1 * 9) + (6 * 4 * 4 * 4 * 9) + (4 * 4 * 2 * 6 * 3) + 32 * 5
    assert count_mult_adds(net, (3, 8, 8)) == expected


@pytest.mark.parametrize("network,size", [(NetworkCIFAR, 32), (NetworkImageNet, 64)])
def test_mult_adds_equal_torchs_flop_counter_on_small_evaluation_networks(network, size):
    torch.manual_seed(0)
    model = network(8, 10, 5, True, V2).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    assert count_mult_adds(model, (3, size, size)) * 2 == counter.get_total_flops()
    assert not model.training


def test_mult_adds_of_the_paper_networks(cifar_v2):
    """Counted, not typed in: about 528M (CIFAR-10) and 530M (ImageNet) for DARTS_V2."""
    cifar = count_mult_adds(cifar_v2, (3, 32, 32))
    assert 520e6 < cifar < 535e6
    info = network_info("imagenet", V2, layers=14, channels=48)
    assert info["params"] == 4_718_752 and 525e6 < info["mult_adds"] < 535e6


def test_forward_returns_auxiliary_logits_only_when_training_with_the_tower():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    model = NetworkCIFAR(4, 10, 5, True, V2)
    logits, aux = model(x)
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    model.eval()
    assert model(x)[1] is None
    logits, aux = NetworkCIFAR(4, 10, 5, False, V2)(x)
    assert aux is None and logits.shape == (2, 10)
    model = NetworkImageNet(8, 7, 5, True, V2)
    logits, aux = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 7) and aux.shape == (2, 7)


def test_drop_path_zeroes_whole_samples_and_rescales_survivors():
    torch.manual_seed(0)
    x = torch.randn(4000, 2, 3, 3)
    y = drop_path(x, 0.3)
    kept = (y != 0).flatten(1).any(1)
    torch.testing.assert_close(y[kept], x[kept] / 0.7)
    assert torch.all(y[~kept] == 0)
    assert abs(kept.float().mean().item() - 0.7) < 0.03


def _cell_pair(genotype: CNNGenotype) -> tuple[Cell, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return Cell(genotype, 4, 4, 4, reduction=False, reduction_prev=False), torch.randn(64, 4, 6, 6), torch.randn(
        64, 4, 6, 6)


def test_identity_edges_are_never_dropped_and_drop_path_is_off_in_eval():
    skips = CNNGenotype(tuple(("skip_connect", j) for _ in range(4) for j in (0, 1)), (2, 3, 4, 5),
                        tuple(("skip_connect", j) for _ in range(4) for j in (0, 1)), (2, 3, 4, 5))
    cell, s0, s1 = _cell_pair(skips)
    cell.train()
    with torch.no_grad():
        torch.testing.assert_close(cell(s0, s1, 0.9), cell(s0, s1, 0.0), rtol=0, atol=0)
    pools = CNNGenotype(tuple(("max_pool_3x3", j) for _ in range(4) for j in (0, 1)), (2, 3, 4, 5),
                        tuple(("max_pool_3x3", j) for _ in range(4) for j in (0, 1)), (2, 3, 4, 5))
    cell, s0, s1 = _cell_pair(pools)
    cell.eval()
    with torch.no_grad():
        torch.testing.assert_close(cell(s0, s1, 0.9), cell(s0, s1, 0.0), rtol=0, atol=0)


def test_other_edges_are_dropped_per_sample_in_training():
    pools = CNNGenotype(tuple(("max_pool_3x3", j) for _ in range(4) for j in (0, 1)), (2, 3, 4, 5),
                        tuple(("max_pool_3x3", j) for _ in range(4) for j in (0, 1)), (2, 3, 4, 5))
    cell, s0, s1 = _cell_pair(pools)
    cell.train()
    with torch.no_grad():
        a = nn.functional.max_pool2d(cell.preprocess0(s0), 3, 1, 1)
        b = nn.functional.max_pool2d(cell.preprocess1(s1), 3, 1, 1)
        node2 = cell(s0, s1, 0.5)[:, :4]
    outcomes = [torch.zeros_like(a), a / 0.5, b / 0.5, (a + b) / 0.5]
    which = [min(range(4), key=lambda k: (node2[i] - outcomes[k][i]).abs().max().item()) for i in range(64)]
    for i, k in enumerate(which):
        torch.testing.assert_close(node2[i], outcomes[k][i])
    assert set(which) == {0, 1, 2, 3}  # every combination of the two paths occurs in 64 samples


def _random_state(layout: list[tuple[str, tuple[int, ...]]], prefix: str = "") -> OrderedDict:
    generator = torch.Generator().manual_seed(0)
    return OrderedDict(
        (prefix + key, torch.randint(0, 5, shape, generator=generator) if key.endswith("num_batches_tracked")
         else torch.randn(shape, generator=generator)) for key, shape in layout
    )


@pytest.mark.parametrize("prefix", ["", "module."])
def test_a_state_dict_in_the_official_layout_loads_strictly(prefix, cifar_v2, imagenet_v2, tmp_path):
    for model, table in ((cifar_v2, "cifar10_DARTS_V2.tsv"), (imagenet_v2, "imagenet_DARTS_V2.tsv")):
        state = _random_state(official_layout(table), prefix)
        load_official_state_dict(model, state)
        key = "classifier.weight"
        assert torch.equal(model.state_dict()[key], state[prefix + key])


def test_legacy_checkpoints_load_from_files(tmp_path):
    """PyTorch 0.3 files: legacy serialisation, no num_batches_tracked, maybe a DataParallel prefix or a
    {"state_dict": ...} wrapper."""
    torch.manual_seed(0)
    source, target = NetworkCIFAR(4, 10, 5, True, V2), NetworkCIFAR(4, 10, 5, True, V2)
    legacy = OrderedDict((f"module.{k}", v) for k, v in source.state_dict().items()
                         if not k.endswith("num_batches_tracked"))
    path = tmp_path / "weights.pt"
    torch.save(legacy, path, _use_new_zipfile_serialization=False)
    load_official_state_dict(target, path)
    for key, value in source.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(target.state_dict()[key], value), key
    wrapped = tmp_path / "model.pth.tar"
    torch.save({"epoch": 250, "state_dict": source.state_dict(), "best_acc_top1": 0.7}, wrapped)
    load_official_state_dict(NetworkCIFAR(4, 10, 5, True, V2), wrapped)


def test_wrong_state_dicts_are_rejected_naming_the_first_bad_key(tmp_path):
    model = NetworkCIFAR(4, 10, 5, True, V2)
    good = model.state_dict()
    renamed = OrderedDict((k.replace("cells.2._ops.2.op.1", "cells.2._ops.2.op.9"), v) for k, v in good.items())
    with pytest.raises(DartsError, match=r"missing key 'cells\.2\._ops\.2\.op\.1\.weight'"):
        load_official_state_dict(model, renamed)
    reshaped = OrderedDict(good)
    reshaped["cells.1.preprocess1.op.1.weight"] = torch.zeros(3, 3, 1, 1)
    with pytest.raises(DartsError, match=r"'cells\.1\.preprocess1\.op\.1\.weight' has shape \(3, 3, 1, 1\)"):
        load_official_state_dict(model, reshaped)
    with pytest.raises(DartsError, match="unexpected key 'extra.weight'"):
        load_official_state_dict(model, OrderedDict(good, **{"extra.weight": torch.zeros(1)}))
    with pytest.raises(DartsError, match="missing key"):  # V1 weights are not V2 weights
        load_official_state_dict(model, NetworkCIFAR(4, 10, 5, True, V1).state_dict())
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DartsError, match="junk.pt: not a loadable weights file"):
        load_official_state_dict(model, junk)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": nn.Linear(2, 2)}, unsafe)
    with pytest.raises(DartsError, match="refused by safe loading.*torch.nn.modules.linear.Linear"):
        load_official_state_dict(model, unsafe)


def test_info_command_prints_counts_as_json(capsys):
    assert main(["info", "--genotype", "DARTS_V2", "--dataset", "cifar10", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 3_349_342 and isinstance(info["mult_adds"], int)
    assert (info["layers"], info["channels"], info["resolution"]) == (20, 36, 32)
    assert main(["info", "--genotype", "DARTS_V1", "--dataset", "cifar10", "--layers", "8", "--channels", "16"]) == 0
    out = capsys.readouterr().out
    expected = count_parameters(NetworkCIFAR(16, 10, 8, True, V1))
    assert f"{expected:,}" in out and "layers 8, channels 16" in out
    assert main(["info", "--genotype", "ENAS", "--dataset", "imagenet"]) == 1
