"""Functional simulation: crossbar-by-crossbar output == PyTorch; seeded device effects."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import models
from mapping import CrossbarSimulator, CrossbarSpec, DeviceModel, map_matrix, map_model
from mapping.devices import program

ENCODINGS = ["differential", "offset", "unsigned"]


from tests.test_mapping_model import LowRankConv, LowRankLinear  # noqa: E402  (user-style pairs)


class SparseLowRank(nn.Module):
    """Low-rank convs (stride, dilation, reflect and 'same' padding) and linears, with
    whole row/column groups deleted, batch norm and dropout in between."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 12, 3, stride=2, padding=1, padding_mode="reflect")
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = LowRankConv(12, 40, 3, 6, dilation=2, padding="same")
        self.conv3 = nn.Conv2d(40, 16, (3, 2), stride=(1, 2), bias=False)
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.fc1 = LowRankLinear(144, 70, 9)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(70, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.conv3(torch.relu(self.conv2(x)))))
        return self.fc2(self.drop(torch.relu(self.fc1(x.flatten(1)))))


def sparse_low_rank():
    torch.manual_seed(1)
    m = SparseLowRank()
    with torch.no_grad():
        m.bn1.running_mean.uniform_(-1, 1)
        m.bn1.running_var.uniform_(0.5, 2)
        m.conv2.U.weight[:, 3:7] = 0  # input channels 3..6 of conv2 deleted
        m.conv3.weight[4:9] = 0  # output filters 4..8 deleted
        m.fc1.U.weight[:, 20:90] = 0  # input rows 20..89 deleted
        m.fc2.weight[:, :40] = 0
    return m.eval()


def max_err(model, shape, spec, device=None, batch=4):
    net = map_model(model, spec, shape)
    x = torch.randn(batch, *shape)
    with torch.no_grad():
        ref = model.eval()(x)
    return (net.forward(x, device) - ref).abs().max().item(), net, x


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("name", ["lenet", "convnet"])
def test_reference_models_exact(name, encoding):
    torch.manual_seed(0)
    model = models.get(name)
    err, net, _ = max_err(model, models.info(name).input_shape, CrossbarSpec(64, 64, encoding))
    assert err <= 1e-4


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", [(16, 16), (32, 128), (7, 3)])
def test_low_rank_sparse_exact(encoding, size):
    torch.manual_seed(0)
    model = sparse_low_rank()
    spec = CrossbarSpec(*size, encoding)
    err, net, x = max_err(model, (3, 16, 16), spec)
    assert err <= 1e-4
    assert net.layers[1].rank == 6 and net.cells < net.baseline.cells
    assert net.n_crossbars <= net.baseline.n_crossbars
    sim = net.simulator()  # built tiles only: one programmed tile per crossbar
    assert list(sim.banks) == [m.name for m in net.matrices]
    assert sum(b.g.shape[0] for b in sim.banks.values()) == net.n_crossbars


def test_simulation_uses_the_mapped_tiles():
    torch.manual_seed(0)
    model = models.get("lenet")
    net = map_model(model, CrossbarSpec(), (1, 28, 28))
    x = torch.randn(2, 1, 28, 28)
    before = net.forward(x)
    with torch.no_grad():
        model.fc1.weight.mul_(3)  # the mapping is a snapshot of the weights
    assert torch.equal(net.forward(x), before)
    assert (before - models.get("lenet").eval()(x)).abs().max() > 1e-3  # different weights


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), m=st.integers(1, 60), rows=st.integers(1, 20),
       cols=st.integers(2, 20), encoding=st.sampled_from(ENCODINGS),
       p=st.floats(0, 0.95), seed=st.integers(0, 2**31))
def test_property_tile_matmul(n, m, rows, cols, encoding, p, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, m)) * (rng.random((n, m)) > p)
    x = rng.standard_normal((5, n))
    bank = program(map_matrix(W, CrossbarSpec(rows, cols, encoding)), encoding)
    np.testing.assert_allclose(bank.matmul(torch.tensor(x)).numpy(), x @ W, atol=1e-10)
    if encoding != "unsigned":
        assert (bank.g >= 0).all()  # physical conductances are non-negative


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_device_effects_seeded(encoding):
    torch.manual_seed(0)
    model = models.get("lenet")
    net = map_model(model, CrossbarSpec(64, 64, encoding), (1, 28, 28))
    x = torch.randn(8, 1, 28, 28)
    exact = model.eval()(x)
    dev = DeviceModel(levels=16, variation_sigma=0.1, seed=3)
    y1, y2 = net.forward(x, dev), net.forward(x, DeviceModel(levels=16, variation_sigma=0.1, seed=3))
    sim = CrossbarSimulator(net, dev)
    assert torch.equal(y1, y2) and torch.equal(sim(x), y1)
    assert not torch.equal(net.forward(x, DeviceModel(variation_sigma=0.1, seed=4)),
                           net.forward(x, DeviceModel(variation_sigma=0.1, seed=3)))
    assert (y1 - exact).abs().max() > 1e-4  # the effects do something

    def err(device):
        return (net.forward(x, device) - exact).abs().max().item()

    errs = [err(DeviceModel(levels=L)) for L in (4, 64, 2**20)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-4  # large L approaches exact
    assert err(DeviceModel(variation_sigma=0.2, variation="gaussian")) > 1e-3
    assert err(DeviceModel()) <= 1e-4  # an ideal device is exact


@pytest.mark.parametrize("kwargs,match", [
    ({"levels": 1}, "levels must be an int >= 2"), ({"levels": 3.5}, "levels"),
    ({"variation_sigma": -0.1}, "variation_sigma"), ({"variation": "uniform"}, "variation must"),
])
def test_device_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeviceModel(**kwargs)


def test_single_layer_model_and_large_batch():
    torch.manual_seed(0)
    lin = nn.Linear(10, 3)
    net = map_model(lin, CrossbarSpec(4, 4), (10,))
    assert net.layers[0].name == "linear"
    x = torch.randn(3, 10)
    assert (net.forward(x) - lin(x)).abs().max() <= 1e-5
    conv = nn.Conv2d(2, 3, 3)
    net = map_model(conv, CrossbarSpec(8, 8), (2, 10, 10))
    bank = net.simulator().banks["conv2d"]
    x = torch.randn(2, 18)
    assert torch.allclose(bank.matmul(x, chunk=5), bank.matmul(x), atol=1e-12)  # chunking
