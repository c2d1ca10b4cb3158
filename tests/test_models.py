import pytest
import torch
from torch import nn

import models
from models.registry import UnknownModelError


def matrix_shapes(model):
    return [tuple(m.weight.reshape(m.weight.shape[0], -1).T.shape)
            for m in model.modules() if isinstance(m, nn.Linear | nn.Conv2d)]


def test_lenet_matrices_match_hardware_model():
    net = models.get("lenet")
    assert matrix_shapes(net) == [(25, 20), (500, 50), (800, 500), (500, 10)]
    assert sum(r * c for r, c in matrix_shapes(net)) == 430_500
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_convnet_matrices_match_hardware_model():
    net = models.get("convnet")
    assert matrix_shapes(net) == [(75, 32), (800, 32), (800, 64), (1024, 10)]
    assert sum(r * c for r, c in matrix_shapes(net)) == 89_440
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_within_channel_lrn_matches_caffe_formula():
    lrn = models.WithinChannelLRN(size=3, alpha=0.5, beta=0.75)
    x = torch.randn(1, 2, 5, 5)
    out = lrn(x)
    # centre pixel of channel 1: mean of the 3x3 window of squares
    win = x[0, 1, 1:4, 1:4]
    expect = x[0, 1, 2, 2] / (1 + 0.5 * (win**2).mean()) ** 0.75
    assert torch.allclose(out[0, 1, 2, 2], expect)
    # corner: zero padding counted in the divisor (9 cells, 4 of them real)
    corner = x[0, 0, :2, :2]
    expect = x[0, 0, 0, 0] / (1 + 0.5 * (corner**2).sum() / 9) ** 0.75
    assert torch.allclose(out[0, 0, 0, 0], expect)


def test_registry_returns_fresh_modules_and_lists_names():
    assert models.available() == ["convnet", "lenet"]
    a, b = models.get("lenet"), models.get("LeNet")
    assert a is not b and a.fc1.weight.data_ptr() != b.fc1.weight.data_ptr()


def test_register_user_model():
    models.register("tiny-mlp", lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
                    input_shape=(1, 8, 8), num_classes=10)
    try:
        assert "tiny-mlp" in models.available()
        assert models.get("tiny-mlp")(torch.zeros(1, 1, 8, 8)).shape == (1, 10)
        with pytest.raises(ValueError, match="already registered"):
            models.register("tiny-mlp", nn.Identity, input_shape=(1,), num_classes=1)
    finally:
        models.registry._REGISTRY.pop("tiny-mlp")


def test_unknown_model_names_the_available_ones():
    with pytest.raises(UnknownModelError, match="available: convnet, lenet"):
        models.get("resnet")
