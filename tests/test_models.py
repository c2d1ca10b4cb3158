import operator

import pytest
import torch
from torch import nn

import models
from models.lowrank import to_low_rank
from models.registry import UnknownModelError

# name: (parameters, classes, residual adds); VGG-16 and the ResNet-18/50 / MobileNetV2 counts are
# torchvision's, vgg16_cifar is kuangliu/pytorch-cifar's VGG('VGG16'), resnet20 is the paper's
# 269,722 (option A) + 2,752 for the two option-B projections (1x1 conv + BN: 16x32 + 64, 32x64 + 128).
REFERENCE = {
    "vgg16": (138_357_544, 1000, 0),
    "vgg16_cifar": (14_728_266, 10, 0),
    "resnet20": (269_722 + 2_752, 10, 9),
    "resnet18": (11_689_512, 1000, 8),
    "resnet50": (25_557_032, 1000, 16),
    "mobilenet_v2": (3_504_872, 1000, 10),
}
ALL = ["convnet", "lenet", "mobilenet_v2", "resnet18", "resnet20", "resnet50", "vgg16", "vgg16_cifar"]


def weighted(model, depthwise=True):
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)
            or (isinstance(m, nn.Conv2d) and (depthwise or m.groups == 1))]


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
    assert models.available() == ALL
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
    with pytest.raises(UnknownModelError, match="available: " + ", ".join(ALL)):
        models.get("resnet")


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_network_counts_forward_and_fx_trace(name):
    params, classes, adds = REFERENCE[name]
    info = models.info(name)
    assert info.num_classes == classes
    assert info.default_dataset == ("cifar10" if info.input_shape == (3, 32, 32) else None)
    torch.manual_seed(0)
    net = models.get(name).eval()
    assert sum(p.numel() for p in net.parameters()) == params
    traced = torch.fx.symbolic_trace(net)
    assert sum(n.target is operator.add for n in traced.graph.nodes) == adds  # out + identity
    x = torch.randn(1, *info.input_shape)
    with torch.no_grad():
        out = net(x)
        assert out.shape == (1, classes)
        assert torch.equal(traced(x), out)
    # factorized by default: every Linear / Conv2d (groups=1) but the last classifier
    assert list(info.low_rank_layers) == weighted(net, depthwise=False)[:-1]


def test_vgg16_is_configuration_d():
    net = models.get("vgg16_cifar")
    assert len(weighted(net)) == 14 and sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 13
    assert matrix_shapes(net)[0] == (27, 64) and matrix_shapes(net)[-1] == (512, 10)
    assert [c for _, c in matrix_shapes(net)[:13]] == [64, 64, 128, 128] + [256] * 3 + [512] * 6
    with torch.device("meta"):  # the ImageNet net: shapes only, no 550 MB of weights
        big = models.get("vgg16")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in big.modules())
    assert matrix_shapes(big)[13:] == [(25088, 4096), (4096, 4096), (4096, 1000)]
    assert matrix_shapes(big)[:13] == matrix_shapes(net)[:13]


def test_resnet_shortcuts_are_1x1_projections_where_the_shape_changes():
    net = models.get("resnet20")
    shortcuts = {n: m for n, m in net.named_modules() if n.endswith("downsample")}
    assert list(shortcuts) == ["layer2.0.downsample", "layer3.0.downsample"]
    for m in shortcuts.values():
        assert isinstance(m[0], nn.Conv2d) and m[0].kernel_size == (1, 1) and m[0].stride == (2, 2)
        assert isinstance(m[1], nn.BatchNorm2d)
    with torch.device("meta"):
        r50 = models.get("resnet50")
    assert [n for n, _ in r50.named_modules() if n.endswith("downsample")] == [
        f"layer{s}.0.downsample" for s in (1, 2, 3, 4)]
    assert r50.layer2[0].conv2.stride == (2, 2) and r50.layer2[0].conv1.stride == (1, 1)  # v1.5


def test_mobilenet_v2_depthwise_convs_and_relu6():
    with torch.device("meta"):
        net = models.get("mobilenet_v2")
    dw = [m for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(dw) == 17 and all(m.groups == m.in_channels == m.out_channels for m in dw)
    assert not any(type(m) is nn.ReLU for m in net.modules())
    assert net.conv2.out_channels == 1280 and net.dropout.p == 0.2


@pytest.mark.parametrize("name", ["vgg16_cifar", "resnet20", "mobilenet_v2"])
def test_init_is_deterministic_and_default_layers_factorize(name):
    torch.manual_seed(3)
    a = models.get(name).eval()
    torch.manual_seed(3)
    b = models.get(name).eval()
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    x = torch.randn(2, *models.info(name).input_shape)
    with torch.no_grad():
        dense = a(x)
        to_low_rank(b, models.info(name).low_rank_layers)  # full rank: the same function
        assert torch.allclose(b(x), dense, atol=1e-4, rtol=1e-4)
