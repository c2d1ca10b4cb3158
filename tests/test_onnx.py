"""ONNX input: a file exported from a network maps to the same design as the network, and the
converted module and the mapped chip both compute what onnxruntime computes."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

import models
from mapping import CrossbarSpec, map_model
from models.onnx_import import OnnxImportError, load_onnx
from tests.test_mapping_graph import user_net

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def export(model: nn.Module, shape, path, dynamic_batch=False, opset=17) -> str:
    x = torch.randn(1, *shape)
    kw = {"dynamic_axes": {"x": {0: "n"}}} if dynamic_batch else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=False, opset_version=opset,
                          input_names=["x"], **kw)
    return str(path)


def run_ort(path, x: torch.Tensor) -> torch.Tensor:
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    outs = [s.run(None, {s.get_inputs()[0].name: x[i:i + 1].numpy()})[0] for i in range(len(x))]
    return torch.from_numpy(np.concatenate(outs))


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def user_onnx(tmp_path_factory):
    return export(user_net(), (3, 8, 8), tmp_path_factory.mktemp("onnx") / "user.onnx")


def test_user_network_same_mapping_as_the_module(user_onnx):
    model = user_net()
    net = load_onnx(user_onnx)
    assert (net.input_shape, net.num_classes) == ((3, 8, 8), 10)
    assert net.weighted == ["stem", "dw", "pw", "branch", "grp", "fc"]
    x = torch.randn(5, 3, 8, 8)
    ref = run_ort(user_onnx, x)
    with torch.no_grad():
        assert rel(net.module(x), ref) <= 1e-5
    spec = CrossbarSpec(16, 6)
    a, b = map_model(model, spec, (3, 8, 8)), map_model(net.module, spec, (3, 8, 8))
    assert [m.name for m in a.matrices] == [m.name for m in b.matrices]
    for name, m in a.sources.items():
        o = b.sources[name]
        assert m.inputs == o.inputs
        np.testing.assert_array_equal(m.row_input, o.row_input)
        np.testing.assert_array_equal(m.row_source, o.row_source)
        np.testing.assert_allclose(o.weights, m.weights, rtol=1e-5, atol=1e-6)
    nets = sorted((n.kind, n.src, n.dst, n.width) for n in a.nets)
    assert nets == sorted((n.kind, n.src, n.dst, n.width) for n in b.nets)
    assert (a.n_crossbars, a.cells) == (b.n_crossbars, b.cells)
    assert rel(b.forward(x), ref) <= 1e-4  # the mapped chip against onnxruntime
    assert rel(a.forward(x), ref) <= 1e-4


@pytest.mark.parametrize("name", ["lenet", "convnet", "resnet20"])
def test_reference_networks(name, tmp_path):
    torch.manual_seed(0)
    model = models.get(name).eval()
    shape = models.info(name).input_shape
    path = export(model, shape, tmp_path / f"{name}.onnx", dynamic_batch=name == "lenet")
    net = load_onnx(path)
    x = torch.randn(3, *shape)
    ref = run_ort(path, x)
    with torch.no_grad():
        assert rel(net.module(x), model(x)) <= 1e-5
    mapped = map_model(net.module, CrossbarSpec(64, 64), shape)
    assert rel(mapped.forward(x), ref) <= 1e-4
    assert [m.name for m in mapped.matrices] == [
        m.name for m in map_model(model, CrossbarSpec(64, 64), shape).matrices]


def test_registry_and_fingerprint(user_onnx, tmp_path):
    info = models.info(user_onnx)
    assert (info.input_shape, info.num_classes, info.default_dataset) == ((3, 8, 8), 10, None)
    assert info.low_rank_layers == ("stem", "pw", "branch")  # groups = 1, the last stays dense
    a, b = models.get(user_onnx), models.get(user_onnx)
    assert a is not b and a.stem.weight is not b.stem.weight  # a fresh module every call
    ident = models.identity(user_onnx)
    assert ident.startswith("onnx:") and models.identity("lenet") == "lenet"
    lenet = export(models.get("lenet"), (1, 28, 28), tmp_path / "lenet.onnx")
    assert models.info(lenet).default_dataset == "mnist"
    assert models.identity(lenet) != ident


class Unmappable(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind, self.fc = kind, nn.Linear(16, 16)

    def forward(self, x):
        h = self.fc(x.flatten(1))
        if self.kind == "attention":
            return h.unsqueeze(2) @ h.unsqueeze(1)  # a product of two signals
        return nn.functional.interpolate(h.view(-1, 1, 4, 4), scale_factor=2.0)  # Resize


@pytest.mark.parametrize("kind, match", [("attention", r"MatMul of two signals"),
                                         ("resize", r"\(Resize\): operator Resize has no")])
def test_unmappable_nodes_are_named(kind, match, tmp_path):
    path = export(Unmappable(kind), (1, 4, 4), tmp_path / "u.onnx")
    with pytest.raises(OnnxImportError, match=match):
        load_onnx(path)


def test_bad_files(tmp_path):
    with pytest.raises(OnnxImportError, match="does not exist"):
        load_onnx(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01not a protobuf\xff" * 10)
    with pytest.raises(OnnxImportError, match="not a readable ONNX model|empty graph"):
        load_onnx(bad)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_reader_never_crashes_on_garbage(data, tmp_path):
    p = tmp_path / "fuzz.onnx"
    p.write_bytes(data)
    with pytest.raises(OnnxImportError):
        load_onnx(p)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=1, max_value=10**9), flip=st.integers(0, 255))
def test_reader_on_damaged_files(cut, flip, user_onnx):
    """A truncated or bit-flipped export: either a clear OnnxImportError or a network that
    still computes (never another exception)."""
    raw = bytearray(open(user_onnx, "rb").read())
    raw = raw[: cut % len(raw)]
    if raw:
        raw[flip % len(raw)] ^= 0x5A
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(bytes(raw))
        f.flush()
        try:
            net = load_onnx(f.name)
        except OnnxImportError:
            return
        with torch.no_grad():
            net.module(torch.zeros(1, *net.input_shape))


def test_cli_map_takes_onnx(user_onnx, tmp_path):
    from typer.testing import CliRunner

    from group_scissor.cli import app

    r = CliRunner().invoke(app, ["map", "--onnx", user_onnx, "--crossbar", "16x6",
                                 "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    import json

    mapping = json.loads((tmp_path / "m" / "mapping.json").read_text())
    direct = map_model(user_net(), CrossbarSpec(16, 6), (3, 8, 8))
    assert mapping["n_crossbars"] == direct.n_crossbars
    r = CliRunner().invoke(app, ["map", "--onnx", "net.pt", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--onnx takes a .onnx file" in r.output
    r = CliRunner().invoke(app, ["map", "--onnx", str(tmp_path / "no.onnx"),
                                 "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "does not exist" in r.output


# ---- hand-built graphs: operator semantics and hostile files (found by review) ----------------

def graph(tmp_path, nodes, x_shape, inits=(), opset=17, out="y", elem=None, name="g.onnx"):
    """A one-input ONNX model of ``nodes`` (onnx.helper), saved; returns its path."""
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if elem is None else elem
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", elem, list(x_shape))],
        [helper.make_tensor_value_info(out, elem, None)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / name
    onnx.save(m, str(path))
    return str(path)


def same_as_ort(path, x, rtol=1e-5):
    net = load_onnx(path)
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ref = s.run(None, {"x": x.numpy()})[0]
    with torch.no_grad():
        got = net.module(x.float())
    assert tuple(got.shape) == ref.shape
    np.testing.assert_allclose(got.numpy(), ref, rtol=rtol, atol=1e-6)
    return net


class ViewNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.size(0), -1))  # Shape -> Gather -> Concat -> Reshape


def test_dynamic_batch_view_reshape(tmp_path):
    torch.manual_seed(0)
    model = ViewNet().eval()
    path = export(model, (1, 8, 8), tmp_path / "v.onnx", dynamic_batch=True)
    ops = {n.op_type for n in onnx.load(path).graph.node}
    assert {"Shape", "Gather", "Reshape"} <= ops  # the pattern the review found crashing
    net = same_as_ort(path, torch.randn(1, 1, 8, 8))
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        assert rel(net.module(x), model(x)) <= 1e-5  # any batch size
    assert rel(map_model(net.module, CrossbarSpec(16, 16), (1, 8, 8)).forward(x), model(x)) <= 1e-4


def test_many_constant_operands_keep_their_own_values(tmp_path):
    from onnx import helper

    nodes, parts = [], []
    for i in range(8):  # each Gather's indices: a temporary tensor made during conversion
        nodes.append(helper.make_node("Gather", ["x", f"i{i}"], [f"g{i}"], axis=1))
        parts.append(f"g{i}")
    nodes.append(helper.make_node("Concat", parts, ["y"], axis=1))
    inits = {f"i{i}": np.array([i, i + 3], dtype=np.int64) for i in range(8)}
    same_as_ort(graph(tmp_path, nodes, (1, 11), inits), torch.arange(11.0).view(1, 11))


@pytest.mark.parametrize("node_name, weight", [("1x1", "w"), ("fc", "class.weight"),
                                               ("/training/fc/Gemm", "training.weight"),
                                               ("_onnx_const0", "graph.weight")])
def test_odd_names_still_convert(tmp_path, node_name, weight):
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["x", weight, "b"], ["h"], name=node_name, transB=1),
             helper.make_node("Add", ["h", "c"], ["y"])]
    inits = {weight: rng.normal(size=(3, 4)).astype(np.float32),
             "b": rng.normal(size=3).astype(np.float32), "c": np.ones((1, 3), np.float32)}
    net = same_as_ort(graph(tmp_path, nodes, (1, 4), inits), torch.randn(1, 4))
    assert len(net.weighted) == 1


def test_pad_on_features_and_cast_of_a_comparison(tmp_path):
    from onnx import TensorProto, helper

    pads = np.array([0, 2, 0, 3], dtype=np.int64)
    nodes = [helper.make_node("Pad", ["x", "p"], ["y"], mode="constant")]
    same_as_ort(graph(tmp_path, nodes, (1, 10), {"p": pads}), torch.randn(1, 10))
    nodes = [helper.make_node("Greater", ["x", "z"], ["g"]),
             helper.make_node("Cast", ["g"], ["gf"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["gf", "gf"], ["y"])]
    same_as_ort(graph(tmp_path, nodes, (1, 4), {"z": np.zeros(1, np.float32)}, name="c.onnx"),
                torch.tensor([[1.0, -1.0, 2.0, -2.0]]))


def test_reduce_without_axes_noop_and_float64_constants(tmp_path):
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["x", "ax"], ["m"], noop_with_empty_axes=1),
             helper.make_node("Mul", ["m", "k"], ["y"])]
    inits = {"ax": np.zeros(0, dtype=np.int64), "k": np.full((1, 3), 2.0)}  # float64
    path = graph(tmp_path, nodes, (1, 3), inits, opset=18, elem=TensorProto.DOUBLE)
    same_as_ort(path, torch.randn(1, 3, dtype=torch.float64))


@pytest.mark.parametrize("case, match", [
    ("lrn", "even size"), ("shared", "weight sharing"), ("gap3d", "only 4-D"),
    ("qconv", "QLinearConv has no crossbar"), ("concat0", "batch dimension")])
def test_refused_with_a_reason(tmp_path, case, match):
    from onnx import helper

    w = np.ones((4, 4), np.float32)
    nodes, shape, inits = {
        "lrn": ([helper.make_node("LRN", ["x"], ["y"], size=2)], (1, 4, 3, 3), {}),
        "shared": ([helper.make_node("MatMul", ["x", "w"], ["h"]),
                    helper.make_node("MatMul", ["h", "w"], ["y"])], (1, 4), {"w": w}),
        "gap3d": ([helper.make_node("GlobalAveragePool", ["x"], ["y"])], (1, 4, 5), {}),
        "qconv": ([helper.make_node("QLinearConv", ["x", "s", "z", "w", "s", "z", "s", "z"],
                                    ["y"])], (1, 4, 3, 3), {}),
        "concat0": ([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], (1, 4), {}),
    }[case]
    with pytest.raises(OnnxImportError, match=match):
        load_onnx(graph(tmp_path, nodes, shape, inits))


def test_external_data_is_part_of_the_identity(tmp_path):
    from onnx import helper

    w = np.arange(16, dtype=np.float32).reshape(4, 4)
    path = graph(tmp_path, [helper.make_node("MatMul", ["x", "w"], ["y"])], (1, 4), {"w": w})
    m = onnx.load(path)
    onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="w.bin", size_threshold=0)
    before = models.identity(path)
    x = torch.ones(1, 4)
    with torch.no_grad():
        np.testing.assert_allclose(models.get(path)(x).numpy(), x.numpy() @ w)
    raw = bytearray((tmp_path / "w.bin").read_bytes())
    raw[:4] = np.float32(100.0).tobytes()  # w[0, 0] = 100
    (tmp_path / "w.bin").write_bytes(bytes(raw))
    assert models.identity(path) != before
    with torch.no_grad():
        assert float(models.get(path)(x)[0, 0]) == pytest.approx(100.0 + 4 + 8 + 12)
