"""The CNN search space: operations, the mixed op, the relaxed cell and the search network."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from darts.genotypes import derive_cnn
from darts.spaces.cnn.counting import count_parameters
from darts.spaces.cnn.operations import OPS, PRIMITIVES, DilConv, FactorizedReduce, Identity, SepConv, Zero
from darts.spaces.cnn.search_network import MixedOp, SearchNetwork


def test_primitives_are_the_papers_eight_in_the_official_order():
    assert PRIMITIVES == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                          "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
    assert set(PRIMITIVES) < set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_keeps_channels_and_strides_the_resolution(name, stride):
    torch.manual_seed(0)
    op = OPS[name](6, stride, False)
    y = op(torch.randn(2, 6, 8, 8))
    assert y.shape == (2, 6, 8 // stride, 8 // stride)


def test_conv_ops_are_relu_conv_bn_and_separable_convs_are_applied_twice():
    sep = OPS["sep_conv_3x3"](4, 1, True)
    assert isinstance(sep, SepConv)
    kinds = [type(m) for m in sep.op]
    assert kinds == [nn.ReLU, nn.Conv2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]
    assert [m.groups for m in sep.op if isinstance(m, nn.Conv2d)] == [4, 1, 4, 1]
    dil = OPS["dil_conv_5x5"](4, 1, True)
    assert isinstance(dil, DilConv) and dil.op[1].dilation == (2, 2) and dil.op[1].groups == 4
    assert isinstance(OPS["skip_connect"](4, 1, True), Identity)
    assert isinstance(OPS["skip_connect"](4, 2, True), FactorizedReduce)


def test_zero_is_zero_and_factorized_reduce_sees_both_pixel_phases():
    x = torch.randn(2, 4, 8, 8)
    assert torch.equal(Zero(2)(x), torch.zeros(2, 4, 4, 4))
    fr = FactorizedReduce(4, 4, affine=False)
    with torch.no_grad():
        fr.conv_1.weight.fill_(1.0)
        fr.conv_2.weight.fill_(1.0)
    fr.train()
    relu = x.clamp_min(0)
    expected = torch.cat([relu[:, :, ::2, ::2].sum(1, keepdim=True).expand(-1, 2, -1, -1),
                          relu[:, :, 1::2, 1::2].sum(1, keepdim=True).expand(-1, 2, -1, -1)], dim=1)
    torch.testing.assert_close(fr(x), F.batch_norm(expected, None, None, training=True))


def test_mixed_op_is_the_weighted_sum_of_all_eight_ops():
    torch.manual_seed(0)
    mixed = MixedOp(4, stride=2)
    assert len(mixed._ops) == 8
    for primitive, op in zip(PRIMITIVES, mixed._ops):
        if "pool" in primitive:  # pooling followed by a non-affine BatchNorm
            assert isinstance(op, nn.Sequential) and isinstance(op[1], nn.BatchNorm2d) and not op[1].affine
    assert not any(isinstance(m, nn.BatchNorm2d) and m.affine for m in mixed.modules())
    x = torch.randn(3, 4, 8, 8)
    weights = F.softmax(torch.randn(8), dim=0)
    expected = sum(w * op(x) for w, op in zip(weights, mixed._ops))
    torch.testing.assert_close(mixed(x, weights), expected)


@pytest.fixture(scope="module")
def tiny_search_net() -> SearchNetwork:
    torch.manual_seed(0)
    return SearchNetwork(C=4, num_classes=10, layers=5)


def test_search_network_has_14_edges_of_8_ops_per_cell_and_one_alpha_per_cell_type(tiny_search_net):
    net = tiny_search_net
    assert net.alphas_normal.shape == (14, 8) and net.alphas_reduce.shape == (14, 8)
    for cell in net.cells:
        assert len(cell._ops) == 14 and all(len(m._ops) == 8 for m in cell._ops)
    assert [p.data_ptr() for p in net.arch_parameters()] == [net.alphas_normal.data_ptr(),
                                                             net.alphas_reduce.data_ptr()]


@pytest.mark.parametrize("layers,reductions", [(8, [2, 5]), (6, [2, 4]), (3, [1, 2])])
def test_reductions_sit_at_one_and_two_thirds_with_stride_two_on_input_edges(layers, reductions):
    net = SearchNetwork(C=2, num_classes=10, layers=layers)
    assert [i for i, c in enumerate(net.cells) if c.reduction] == reductions
    for cell in net.cells:
        strides = [2 if isinstance(m._ops[3], FactorizedReduce) else 1 for m in cell._ops]
        inputs = [j for i in range(4) for j in range(2 + i)]
        assert strides == [2 if cell.reduction and j < 2 else 1 for j in inputs]


def test_channels_double_at_reductions_and_output_shape_for_32x32(tiny_search_net):
    net = tiny_search_net
    channels = [cell.preprocess1.op[1].out_channels for cell in net.cells]
    assert channels == [4, 8, 8, 16, 16]  # C, reduced at 5 // 3 = 1 and 10 // 3 = 3
    assert net.stem[0].out_channels == 12  # stem multiplier 3
    assert isinstance(net.cells[2].preprocess0, FactorizedReduce)  # its k-2 input has twice the resolution
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_search_network_at_paper_size_has_the_official_parameter_count():
    net = SearchNetwork(C=16, num_classes=10, layers=8)
    assert count_parameters(net) == 1_930_618
    assert sum(p.numel() for p in net.weight_parameters()) == 1_930_618
    assert sum(p.numel() for p in net.parameters()) == 1_930_618 + 2 * 14 * 8


def test_arch_and_weight_parameters_partition_the_parameters(tiny_search_net):
    net = tiny_search_net
    arch = {id(p) for p in net.arch_parameters()}
    weights = {id(p) for p in net.weight_parameters()}
    assert not arch & weights and arch | weights == {id(p) for p in net.parameters()}
    assert [n for n, _ in net.named_weight_parameters()] == [
        n for n, _ in net.named_parameters() if not n.startswith("alphas_")
    ]


def test_functional_call_with_other_alphas_equals_setting_them(tiny_search_net):
    torch.manual_seed(1)
    net = SearchNetwork(C=4, num_classes=10, layers=3, track_running_stats=False)
    x = torch.randn(4, 3, 16, 16)
    other = {"alphas_normal": torch.randn(14, 8), "alphas_reduce": torch.randn(14, 8)}
    y_functional = functional_call(net, other, (x,))
    assert not torch.allclose(y_functional, net(x))
    with torch.no_grad():
        net.alphas_normal.copy_(other["alphas_normal"])
        net.alphas_reduce.copy_(other["alphas_reduce"])
    torch.testing.assert_close(net(x), y_functional)


def test_alpha_initialisation():
    torch.manual_seed(0)
    assert torch.equal(SearchNetwork(2, 10, 3, alpha_init="zeros").alphas_normal, torch.zeros(14, 8))
    alphas = SearchNetwork(2, 10, 3, alpha_init="randn", alpha_init_scale=1e-3).alphas_reduce
    assert 0 < alphas.abs().max() < 1e-2 and alphas.std() > 1e-4


def test_genotype_derives_from_the_softmax_of_the_current_alphas(tiny_search_net):
    net = tiny_search_net
    expected = derive_cnn(F.softmax(net.alphas_normal, -1).detach(), F.softmax(net.alphas_reduce, -1).detach())
    assert net.genotype() == expected
    with torch.no_grad():
        net.alphas_normal.zero_()
        net.alphas_normal[:, PRIMITIVES.index("sep_conv_5x5")] = 1.0
    assert {op for op, _ in net.genotype().normal} == {"sep_conv_5x5"}


def test_batch_statistics_option_keeps_no_running_averages():
    torch.manual_seed(0)
    net = SearchNetwork(C=2, num_classes=10, layers=3, track_running_stats=False)
    assert not any("running" in k or "num_batches" in k for k in net.state_dict())
    x = torch.randn(4, 3, 16, 16)
    net.train()
    y_train = net(x)
    net.eval()
    torch.testing.assert_close(net(x), y_train)  # eval mode also normalises with the batch's statistics
