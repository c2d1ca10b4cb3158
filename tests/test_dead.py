"""Dead signals across matrices are deleted exactly: the output never moves."""

import pytest
import torch
from torch import nn

from group_scissor.dead import delete_dead_signals
from models.lowrank import LowRankLinear


def mlp(act: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), act, nn.Linear(5, 4))


def test_a_neuron_nobody_reads_loses_its_column():
    m = mlp(nn.ReLU())
    with torch.no_grad():
        m[2].weight[:, 2] = 0  # fc2 row 2 (input 2) deleted
    x = torch.randn(16, 6)
    before = m(x)
    rep = delete_dead_signals(m, (6,))
    assert rep == {"0": {"columns": 1, "rows": 0}}
    assert torch.all(m[0].weight[2] == 0) and torch.all(m[0].weight_mask[2] == 0)
    assert m[0].weight_mask.sum() == 4 * 6  # only neuron 2's weights masked
    assert torch.allclose(m(x), before)


def test_rows_behind_a_zero_factor_column_go_too():
    torch.manual_seed(0)
    pair = LowRankLinear(8, 6, rank=4)
    m = nn.Sequential(pair)
    with torch.no_grad():
        pair.U.weight[1] = 0  # U column 1 (rank component 1) deleted; U has no bias
    x = torch.randn(16, 8)
    before = m(x)
    rep = delete_dead_signals(m, (8,))
    assert rep == {"0.V": {"columns": 0, "rows": 1}}
    assert torch.all(pair.V.weight[:, 1] == 0) and torch.all(pair.V.weight_mask[:, 1] == 0)
    assert torch.allclose(m(x), before)


def test_a_layer_that_maps_zero_elsewhere_keeps_everything():
    m = mlp(nn.Sigmoid())  # sigmoid(0) = 0.5: a zero column still sends a signal
    with torch.no_grad():
        m[0].weight[3] = 0
        m[0].bias[3] = 0
    w2 = m[2].weight.clone()
    with pytest.warns(UserWarning, match="nothing was deleted"):
        assert delete_dead_signals(m, (6,)) == {}
    assert torch.equal(m[2].weight, w2) and not hasattr(m[2], "weight_mask")


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(6, 5), nn.Linear(5, 5), nn.Linear(5, 4)

    def forward(self, x):
        h = torch.relu(self.a(x))
        return self.c(self.b(h) + h)  # the sum is computed in b's output units


def test_a_residual_sum_is_neither_dead_nor_silent():
    import warnings

    torch.manual_seed(0)
    m = Residual()
    with torch.no_grad():
        m.b.weight[1] = 0  # b's column 1 computes 0, but the sum there still adds h_1
        m.b.bias[1] = 0
        m.c.weight[:, 3] = 0  # nobody reads the sum's element 3
    x = torch.randn(16, 6)
    before = m(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no restore: the analysis sees the add
        rep = delete_dead_signals(m, (6,))
    assert rep == {"b": {"columns": 1, "rows": 0}}
    assert torch.all(m.b.weight[3] == 0) and torch.any(m.c.weight[:, 1] != 0)
    assert torch.allclose(m(x), before, atol=1e-6)


class Depthwise(nn.Module):
    """conv1 1->8, depthwise 8 (groups 8: eight 9 x 1 matrices dw.g<i>), grouped 1x1 8->4
    (groups 2: two 4 x 2 matrices pw.g<i>), fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 4, 1, groups=2)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.dw(x))
        return self.fc(torch.relu(self.pw(x)).flatten(1))


def test_dead_signals_through_depthwise_and_grouped_convs():
    torch.manual_seed(0)
    m = Depthwise()
    with torch.no_grad():
        m.dw.weight[3] = 0  # channel 3: constant 0 (no bias) -> row 3 of pw.g0 goes, and
        m.dw.bias[3] = 0  # conv1's column 3, which only dw.g3 read
        m.dw.weight[5] = 0  # channel 5 keeps its bias: a signal, its pw.g1 row stays
        m.pw.weight[:2, 2] = 0  # pw.g0 (the only reader) drops dw channel 2 -> dw.g2's
        # column, then conv1's column 2
        m.conv1.weight[6] = 0  # conv1 channel 6 silent -> dw.g6's 9 rows
        m.conv1.bias[6] = 0
    x = torch.randn(16, 1, 6, 6)
    before = m(x)
    rep = delete_dead_signals(m, (1, 6, 6))
    assert rep == {"conv1": {"columns": 3, "rows": 0},  # 2, 3 and 5 (dw.g5 reads nothing)
                   "dw.g2": {"columns": 1, "rows": 0}, "dw.g6": {"columns": 0, "rows": 9},
                   "pw.g0": {"columns": 0, "rows": 1}}
    assert torch.allclose(m(x), before, atol=1e-6)
    assert m.conv1.weight_mask.flatten(1).sum(1).tolist() == [9, 9, 0, 0, 9, 0, 9, 9]
    # masks in the group's slice of the grouped weights only
    assert m.dw.weight_mask.flatten(1).sum(1).tolist() == [9, 9, 0, 9, 9, 9, 0, 9]
    pw = m.pw.weight_mask[:, :, 0, 0]  # (4 filters, 4 channels of their group)
    assert pw.tolist() == [[1, 1, 1, 0], [1, 1, 1, 0], [1] * 4, [1] * 4]


def test_a_silent_channel_deletes_rows_of_the_grouped_conv_that_reads_it():
    torch.manual_seed(1)
    m = Depthwise()
    with torch.no_grad():
        m.dw.weight[6] = 0  # dw channel 6 = channel 2 of pw's group 1
        m.dw.bias[6] = 0
    rep = delete_dead_signals(m, (1, 6, 6))
    assert rep == {"conv1": {"columns": 1, "rows": 0}, "pw.g1": {"columns": 0, "rows": 1}}
    assert m.pw.weight_mask[:, :, 0, 0].tolist() == [[1] * 4, [1] * 4, [1, 1, 0, 1], [1, 1, 0, 1]]
