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
