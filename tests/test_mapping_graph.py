"""Any model graph: residual adds, concatenations, reshapes, folded batch norms, grouped and
depthwise convs map with exact row sources, and the simulation of the mapped design (not the
model) equals PyTorch; what cannot be wired exactly is refused by name."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mapping import CrossbarSpec, DataflowError, UnmappableLayerError, map_model

ENCODINGS = ["differential", "offset", "unsigned"]


def randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so that folding shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    return model.eval()


def rel_err(net, model, x, device=None) -> float:
    with torch.no_grad():
        ref = model.eval()(x)
    return ((net.forward(x, device) - ref).abs().max() / ref.abs().max()).item()


class UserNet(nn.Module):
    """A residual add, a concatenation of two producers, folded and unfolded batch norms, a
    depthwise and a grouped conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)  # depthwise
        self.bn1 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 24, 1)
        self.branch = nn.Conv2d(16, 8, 1)
        self.bn2 = nn.BatchNorm2d(32)  # after a concatenation: periphery, not folded
        self.grp = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        h = F.relu(self.bn0(self.stem(x)))
        y = self.pw(F.relu6(self.bn1(self.dw(h))))
        z = self.bn2(torch.cat([y, self.branch(h)], dim=1))
        r = self.grp(z) + z
        return self.fc(torch.flatten(self.pool(F.relu(r)), 1))


def user_net():
    torch.manual_seed(0)
    return randomize_bn(UserNet())


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", [(64, 64), (8, 8), (16, 6)])
def test_user_network_forward_equals_pytorch(encoding, size):
    model = user_net()
    net = map_model(model, CrossbarSpec(*size, encoding), (3, 8, 8))
    x = torch.randn(3, 3, 8, 8)
    assert rel_err(net, model, x) <= 1e-4


def test_user_network_dataflow():
    model = user_net()
    net = map_model(model, CrossbarSpec(64, 64), (3, 8, 8))
    names = [m.name for m in net.matrices]
    assert names == ["stem", *[f"dw.g{i}" for i in range(16)], "pw", "branch",
                     *[f"grp.g{i}" for i in range(4)], "fc"]
    dw, grp = net.layers[1], net.layers[4]
    assert (dw.groups, dw.shape, dw.grids, dw.baseline_cells) == (16, (9, 16), [(1, 1)] * 16, 144)
    assert (grp.groups, grp.shape, grp.cells) == (4, (72, 32), 4 * 72 * 8)
    folded = {op.folded: op.path for op in net.capture.ops if op.folded}
    assert folded == {"bn0": "stem", "bn1": "dw"}  # bn2 follows a cat: a periphery op
    # folded: dw.g3's single column is the conv's filter 3 scaled by bn1
    bn = model.bn1
    scale = (bn.weight / (bn.running_var + bn.eps).sqrt()).detach().numpy()
    np.testing.assert_allclose(net.sources["dw.g3"].weights[:, 0],
                               model.dw.weight[3].detach().numpy().ravel() * scale[3], rtol=1e-6)
    src = net.sources
    assert src["pw"].inputs == tuple(f"dw.g{i}" for i in range(16))  # one per depthwise group
    np.testing.assert_array_equal(src["pw"].row_input, np.arange(16))
    np.testing.assert_array_equal(src["pw"].row_source, np.zeros(16))
    # the concatenation keeps each part's producer: grp.g3 reads channels 24..31 = branch 0..7
    assert src["grp.g2"].inputs == ("pw",) and src["grp.g3"].inputs == ("branch",)
    np.testing.assert_array_equal(src["grp.g2"].row_source, np.repeat(np.arange(16, 24), 9))
    np.testing.assert_array_equal(src["grp.g3"].row_source, np.repeat(np.arange(8), 9))
    # the sum is produced by the add's last weighted operand (grp); z arrives as operand buses
    assert src["fc"].inputs == tuple(f"grp.g{i}" for i in range(4))
    np.testing.assert_array_equal(src["fc"].row_source, np.arange(32) % 8)
    ops = sorted((n.src, n.dst, n.width) for n in net.nets if n.kind == "operand")
    assert ops == [("branch/A0", "grp.g3/A0", 8), ("pw/A0", "grp.g0/A0", 8),
                   ("pw/A0", "grp.g1/A0", 8), ("pw/A0", "grp.g2/A0", 8)]
    d = net.design
    units = {u.name for u in d.units}
    assert all(n.src in units and n.dst in units for n in d.nets)
    assert set(d.row_signals) == set(names)
    rs = d.row_signals["fc"]
    assert rs.producers == tuple(f"grp.g{i}/A0" for i in range(4))
    np.testing.assert_array_equal(rs.source, np.arange(32) // 8)
    dense = net.dense_baseline()
    assert grp.grids == [(2, 1)] * 4  # 72 rows: two row blocks of 64
    assert dense.n_crossbars == net.baseline.n_crossbars == 1 + 16 + 1 + 1 + 4 * 2 + 1
    assert [m.name for m in dense.matrices] == names
    assert sum(n.kind == "operand" for n in dense.nets) == 4


def test_user_network_places_and_routes():
    from mapping import place, route

    net = map_model(user_net(), CrossbarSpec(8, 8), (3, 8, 8))
    d = net.design
    rt = route(d, place(d))
    assert rt.wirelength > 0


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out += identity
        return self.relu(out)


class OptionA(nn.Module):
    """ResNet-20's parameter-free shortcut: subsample and pad the channels with zeros."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + short)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 16, 2))
        self.layer2 = OptionA(16, 32)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), nn.ReLU6(inplace=True),
            nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False), nn.BatchNorm2d(hid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class TinyMobileNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()),
            InvertedResidual(8, 8, 1, 2), InvertedResidual(8, 12, 2, 3),
            InvertedResidual(12, 12, 1, 3))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(12, 10))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("factory", [TinyResNet, TinyMobileNet])
def test_resnet_and_mobilenet_blocks(factory, encoding):
    torch.manual_seed(0)
    model = randomize_bn(factory())
    net = map_model(model, CrossbarSpec(16, 16, encoding), (3, 16, 16))
    x = torch.randn(2, 3, 16, 16)
    assert rel_err(net, model, x) <= 1e-4
    assert any(n.kind == "operand" for n in net.nets)
    units = {u.name for u in net.design.units}
    assert all(n.src in units and n.dst in units for n in net.nets)


def test_resnet_shortcut_wiring():
    torch.manual_seed(0)
    net = map_model(randomize_bn(TinyResNet()), CrossbarSpec(64, 64), (3, 16, 16))
    src = net.sources
    # block 0: identity shortcut; conv2 of block 0 is the add's last weighted operand
    assert src["layer1.0.conv1"].inputs == ("conv1",)
    assert src["layer1.1.conv1"].inputs == ("layer1.0.conv2",)
    # block 1's downsample runs after its conv2: the sum is computed by its output units
    assert src["layer2.conv1"].inputs == ("layer1.1.downsample.0",)
    # option A: channels 0..7 and 24..31 of the shortcut are zero padding, so only the
    # channels 8..23 of block 1's output travel to layer2.conv2's units
    op = [n for n in net.nets if n.kind == "operand" and n.dst.startswith("layer2.conv2")]
    assert [(n.src, n.width) for n in op] == [("layer1.1.downsample.0/A0", 16)]
    assert src["fc"].inputs == ("layer2.conv2",)


class Shuffle(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 32, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        y = self.conv1(x)
        b, c, h, w = y.size()
        y = y.view(b, 4, c // 4, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)
        return self.conv2(y)


class ChannelsLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 8, 3), nn.Linear(3 * 3 * 8, 5)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).permute(0, 2, 3, 1).flatten(1))


class ViewAfterConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 8, 3), nn.Linear(8 * 3 * 3, 5)

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.view(y.size(0), -1))


class SpatialLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 8, 3), nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(self.conv(x))  # a Linear along the width axis


class FunctionalLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(2, 4, 3), nn.Linear(36, 5)

    def forward(self, x):
        return F.linear(self.conv(x).flatten(1), self.fc.weight)


def test_channel_shuffle_rows_follow_the_shuffle():
    torch.manual_seed(0)
    model = Shuffle()
    net = map_model(model, CrossbarSpec(8, 8), (2, 4, 4))
    # channel j of the shuffled tensor is conv1's channel (j % 4) * 8 + j // 4
    j = np.arange(32)
    np.testing.assert_array_equal(net.sources["conv2"].row_source, (j % 4) * 8 + j // 4)
    assert rel_err(net, model, torch.randn(2, 2, 4, 4)) <= 1e-4


def test_channels_last_flatten():
    torch.manual_seed(0)
    model = ChannelsLast()
    net = map_model(model, CrossbarSpec(16, 16), (2, 5, 5))
    np.testing.assert_array_equal(net.sources["fc"].row_source, np.arange(72) % 8)
    assert rel_err(net, model, torch.randn(3, 2, 5, 5)) <= 1e-4


def test_view_after_conv():
    torch.manual_seed(0)
    model = ViewAfterConv()
    net = map_model(model, CrossbarSpec(16, 16), (2, 5, 5))
    np.testing.assert_array_equal(net.sources["fc"].row_source, np.arange(72) // 9)
    assert rel_err(net, model, torch.randn(3, 2, 5, 5)) <= 1e-4


def test_functional_linear_weight_is_mapped_not_dropped():
    torch.manual_seed(0)
    model = FunctionalLinear()
    net = map_model(model, CrossbarSpec(16, 16), (2, 5, 5))
    assert [m.name for m in net.matrices] == ["conv", "fc"]
    assert net.layers[1].n_crossbars == 3 * 1  # 36 rows x 5 columns on 16 x 8 tiles
    assert rel_err(net, model, torch.randn(3, 2, 5, 5)) <= 1e-4  # no bias: F.linear got none


def test_simulation_reads_the_row_sources():
    """A wrong row source (what the nets are built from) shows in the simulated output."""
    torch.manual_seed(0)
    model = Shuffle()
    net = map_model(model, CrossbarSpec(8, 8), (2, 4, 4))
    x = torch.randn(2, 2, 4, 4)
    assert rel_err(net, model, x) <= 1e-4
    rs = net.sources["conv2"].row_source
    rs[[0, 1]] = rs[[1, 0]]  # rows 0 and 1 wired to each other's producer column
    assert rel_err(net, model, x) <= 1e-4  # the cached simulator was built before
    assert (net.simulator()(x) - model(x)).abs().max() > 1e-3
    rs[0] = 31 + 8  # a column conv1 does not have
    with pytest.raises(DataflowError, match="row source names column"):
        net.simulator()


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        h = self.fc(x)
        if h.sum() > 0:  # data-dependent control flow
            return h
        return -h


class WithGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.block, self.head = Gate(), nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.block(x))


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):  # (B, T, 8)
        return torch.softmax(self.q(x) @ self.k(x).transpose(1, 2), dim=-1)


class WeightMisuse(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return x @ self.fc.weight.t()


class Encoder(nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.proj, self.mix = nn.Linear(8, 8), layer

    def forward(self, x):
        return self.mix(self.proj(x))


class InPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 2)

    def forward(self, x):
        h = self.a(x)
        s = h.add_(self.b(h))  # h changes for c too
        return self.c(h) + s


class BatchFold(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x.view(-1, 4)).view(x.shape[0], -1)  # halves of a sample as a batch


@pytest.mark.parametrize("model,shape,exc,match", [
    (SpatialLinear(), (2, 5, 5), DataflowError,
     r"cannot wire layer 'fc' \(Linear\): its input feature 0 reads signals of 'conv' column 0, "
     r"'conv' column 1"),
    (WithGate(), (8,), DataflowError, r"cannot capture the dataflow of 'block' \(Gate\)"),
    (Attention(), (4, 8), UnmappableLayerError,
     r"'<root>' \(Attention\): operation 'matmul' on a signal"),
    (WeightMisuse(), (8,), UnmappableLayerError,
     r"the weight of layer 'fc' \(Linear\) is used by 't'"),
    (Encoder(nn.MultiheadAttention(8, 2)), (4, 8), UnmappableLayerError,
     r"'mix' \(MultiheadAttention\)"),
    (Encoder(nn.LSTM(8, 8)), (4, 8), UnmappableLayerError, r"'mix' \(LSTM\)"),
    (nn.Sequential(nn.Conv2d(2, 4, 3), nn.ConvTranspose2d(4, 2, 3)), (2, 6, 6),
     UnmappableLayerError, r"'1' \(ConvTranspose2d\)"),
    (InPlace(), (8,), DataflowError, r"'<root>' \(InPlace\): in-place 'add_' changes a value"),
    (BatchFold(), (8,), DataflowError, r"'fc' \(Linear\): 'fc' reads a tensor whose first "
                                       r"dimension is no longer the batch"),
])
def test_refused_by_name(model, shape, exc, match):
    with pytest.raises(exc, match=match):
        map_model(model, CrossbarSpec(), shape)


def test_linear_over_tokens_and_softmax_head():
    """A Linear evaluated per token reads the same producer column at every token; a softmax
    over the classes is done by the output unit of the last column, fed the others."""

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(6, 40), nn.Linear(40, 3)

        def forward(self, x):  # (B, T, 6)
            return torch.log_softmax(self.b(torch.relu(self.a(x))).mean(1), dim=-1)

    torch.manual_seed(0)
    model = Tokens()
    net = map_model(model, CrossbarSpec(16, 4), (5, 6))  # lcols 2: b's classes on 2 units
    assert rel_err(net, model, torch.randn(3, 5, 6)) <= 1e-4
    op = sorted((n.src, n.dst, n.width) for n in net.nets if n.kind == "operand")
    assert op == [("b/A0", "b/A1", 2)]  # log_softmax: classes 0, 1 sent to class 2's unit


def test_reports_and_netlist_of_a_graph(tmp_path):
    import json

    import jsonschema

    import netlists
    from mapping import to_dict, write_reports
    from netlists import read_json, write_json

    net = map_model(user_net(), CrossbarSpec(16, 16), (3, 8, 8))
    d = to_dict(net)
    assert d["nets"]["operand_nets"] == 4 and d["layers"][1]["groups"] == 16
    assert sum(la["input_wires"] + la["output_wires"] + la["operand_wires"]
               for la in d["layers"]) == net.total_wires
    write_reports(net, tmp_path / "rep")
    path = write_json(net, tmp_path / "chip.json")
    schema = json.loads(netlists.SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator(schema).validate(json.loads(path.read_text()))
    back = read_json(path)
    assert [(n.src, n.dst, n.width, n.kind) for n in back.nets] == [
        (n.src, n.dst, n.width, n.kind) for n in net.design.nets]


class SqueezeExcite(nn.Module):
    """A per-channel gate broadcast over the pixels: the product is computed by the gate's
    output units, which receive the feature map as operand buses."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.fc1, self.fc2, self.out = nn.Linear(16, 4), nn.Linear(4, 16), nn.Conv2d(16, 5, 1)

    def forward(self, x):
        y = F.relu(self.conv(x))
        w = torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3))))))
        return self.out(y * w.view(w.size(0), -1, 1, 1)).amax((2, 3))


class DenseConcat(nn.Module):
    """Concatenation with the network input, pooling, upsampling, layer norm, softmax."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(7, 4, 3, padding=1)
        self.ln, self.fc = nn.LayerNorm(44), nn.Linear(44, 3)

    def forward(self, x):
        x = torch.cat([x, self.c1(x)], 1)
        x = torch.cat([x, self.c2(x)], 1)
        x = F.interpolate(F.avg_pool2d(x, 4), scale_factor=2.0, mode="nearest")
        x = F.adaptive_max_pool2d(x, (2, 2)).flatten(1)
        return torch.softmax(self.fc(self.ln(x)), dim=1)


class Norms(nn.Module):
    """Group norm, cross-channel LRN, reflect padding, PReLU, a transposed flatten."""

    def __init__(self):
        super().__init__()
        self.c, self.gn, self.lrn = nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.LocalResponseNorm(3)
        self.c2 = nn.Conv2d(8, 4, 3, padding=1, padding_mode="reflect")
        self.p, self.fc = nn.PReLU(4), nn.Linear(4 * 6 * 6, 2)

    def forward(self, x):
        x = self.p(self.c2(self.lrn(self.gn(self.c(x)))))
        return self.fc(x.transpose(2, 3).reshape(x.shape[0], -1))


class Chunks(nn.Module):
    """chunk, a cat of a conv and a pass-through, cropping, zero padding, BatchNorm1d."""

    def __init__(self):
        super().__init__()
        self.c, self.a = nn.Conv2d(3, 8, 1), nn.Conv2d(4, 4, 3, padding=1)
        self.fc, self.bn = nn.Linear(8, 2), nn.BatchNorm1d(2)

    def forward(self, x):
        p, q = self.c(x).chunk(2, dim=1)
        y = F.pad(torch.cat([self.a(p), q], 1)[:, :, 1:-1, 1:-1], (1, 1, 1, 1))
        return self.bn(self.fc(y.mean((2, 3))))


@pytest.mark.parametrize("spec", [CrossbarSpec(8, 8), CrossbarSpec(64, 64, "offset")])
@pytest.mark.parametrize("factory", [SqueezeExcite, DenseConcat, Norms, Chunks])
def test_periphery_operations(factory, spec):
    torch.manual_seed(0)
    model = randomize_bn(factory())
    net = map_model(model, spec, (3, 8, 8))
    assert rel_err(net, model, torch.randn(3, 3, 8, 8)) <= 1e-4
    d = net.design
    units = {u.name for u in d.units}
    assert all(n.src in units and n.dst in units and n.src != n.dst for n in d.nets)


def test_concatenation_with_the_input():
    net = map_model(DenseConcat(), CrossbarSpec(64, 64), (3, 8, 8))
    c2 = net.sources["c2"]
    assert c2.inputs == (None, "c1")
    np.testing.assert_array_equal(c2.row_input, np.repeat([0] * 3 + [1] * 4, 9))
    np.testing.assert_array_equal(c2.row_source, np.repeat([0, 0, 0, 0, 1, 2, 3], 9))
    assert net.design.row_signals["c2"].producers == ("IN", "c1/A0")


def test_training_flags_are_left_as_they_were():
    model = user_net().train()
    model.bn2.eval()  # e.g. a frozen batch norm
    map_model(model, CrossbarSpec(), (3, 8, 8))
    assert model.training and model.bn0.training and not model.bn2.training
