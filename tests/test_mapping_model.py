"""map_model: exact crossbar counts, low-rank pairs, dataflow, nets, design, errors, reports."""

import csv
import io
import json
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import models
from mapping import (
    CrossbarSpec,
    DataflowError,
    UnmappableLayerError,
    format_table,
    map_model,
    to_csv,
    write_reports,
)

LENET = (1, 28, 28)


class LowRankLinear(nn.Module):
    def __init__(self, n, m, k):
        super().__init__()
        self.U, self.V = nn.Linear(n, k, bias=False), nn.Linear(k, m)

    def forward(self, x):
        return self.V(self.U(x))


class LowRankConv(nn.Module):
    def __init__(self, c, f, kernel, k, **kw):
        super().__init__()
        self.U, self.V = nn.Conv2d(c, k, kernel, bias=False, **kw), nn.Conv2d(k, f, 1)

    def forward(self, x):
        return self.V(self.U(x))


def low_rank_lenet():
    torch.manual_seed(0)
    m = models.get("lenet")
    m.conv2 = LowRankConv(20, 50, 5, 7)  # 500x7 + 7x50
    m.fc1 = LowRankLinear(800, 500, 30)  # 800x30 + 30x500
    return m


@pytest.mark.parametrize("encoding,per_layer", [
    ("differential", [1, 16, 208, 8]),  # lcols 32: 1x1, 8x2, 13x16, 8x1
    ("unsigned", [1, 8, 104, 8]),  # lcols 64: 1x1, 8x1, 13x8, 8x1
    ("offset", [1, 8, 104, 8]),  # lcols 63: 1x1, 8x1, 13x8, 8x1
])
def test_lenet_dense_counts(encoding, per_layer):
    net = map_model(models.get("lenet"), CrossbarSpec(64, 64, encoding), LENET)
    assert [la.name for la in net.layers] == ["conv1", "conv2", "fc1", "fc2"]
    assert [la.shape for la in net.layers] == [(25, 20), (500, 50), (800, 500), (500, 10)]
    assert [la.n_crossbars for la in net.layers] == per_layer
    assert net.n_crossbars == sum(per_layer) == net.baseline.n_crossbars
    assert net.cells == 430_500 == net.baseline.cells
    assert net.cell_area_ratio == 1.0 and net.crossbar_area_ratio == 1.0
    assert net.area_um2 == pytest.approx(sum(per_layer) * net.spec.crossbar_area_um2)


def test_convnet_and_non_square_counts():
    net = map_model(models.get("convnet"), CrossbarSpec(64, 64), (3, 32, 32))
    assert [la.grids[0] for la in net.layers] == [(2, 1), (13, 1), (13, 2), (16, 1)]
    assert net.n_crossbars == 57 and net.cells == 89_440
    net = map_model(models.get("lenet"), CrossbarSpec(32, 128), LENET)  # lcols 64
    assert [la.grids[0] for la in net.layers] == [(1, 1), (16, 1), (25, 8), (16, 1)]
    assert net.n_crossbars == 1 + 16 + 200 + 16


def test_low_rank_and_sparse():
    m = low_rank_lenet()
    with torch.no_grad():
        m.fc1.V.weight[:, :] = 0  # whole V deleted except ...
        m.fc1.V.weight[:40, 3] = 1.0  # ... one input row feeding columns 0..39 (2 blocks)
        m.fc2.weight[:, 64:128] = 0  # fc2 rows 64..127 = row block 1: tile (1, 0) gone
    net = map_model(m, CrossbarSpec(64, 64), LENET)
    conv2, fc1, fc2 = net.layers[1:]
    assert (conv2.rank, conv2.shape, [mm.name for mm in conv2.matrices]) == (7, (500, 50),
                                                                             ["conv2.U", "conv2.V"])
    assert conv2.grids == [(8, 1), (1, 2)] and conv2.n_crossbars == 10
    assert conv2.cells == 500 * 7 + 7 * 50 and conv2.baseline_cells == 25_000
    assert fc1.grids == [(13, 1), (1, 16)] and fc1.n_crossbars == 13 + 2
    assert fc1.cells == 800 * 30 + 30 * 64 and fc1.baseline_crossbars == 208
    assert fc2.n_crossbars == 7 and fc2.cells == 500 * 10 - 64 * 10
    assert net.baseline.n_crossbars == 233 and net.baseline.cells == 430_500
    cells = 500 + 3850 + 24_000 + 1920 + 4360
    assert net.cells == cells and net.cell_area_ratio == cells / 430_500
    assert net.n_crossbars == 1 + 10 + 15 + 7 and net.crossbar_area_ratio == 33 / 233
    # V's single live row 3 comes from U's output unit A0: one input wire into each V tile
    v_in = [n for n in net.nets if n.matrix == "fc1.V" and n.kind == "input"]
    assert [(n.src, n.dst, n.width) for n in v_in] == [("fc1.U/A0", "fc1.V/T0_0", 1),
                                                        ("fc1.U/A0", "fc1.V/T0_1", 1)]


def test_dataflow_lenet():
    net = map_model(models.get("lenet"), CrossbarSpec(64, 64), LENET)
    src = net.sources
    assert src["conv1"].producer is None and src["conv2"].producer == "conv1"
    np.testing.assert_array_equal(src["conv2"].row_source, np.arange(500) // 25)
    np.testing.assert_array_equal(src["fc1"].row_source, np.arange(800) // 16)  # Flatten (50,4,4)
    np.testing.assert_array_equal(src["fc2"].row_source, np.arange(500))
    nets = {(n.src, n.dst): n.width for n in net.nets}
    assert nets[("IN", "conv1/T0_0")] == 25 and nets[("conv1/T0_0", "conv1/A0")] == 20
    assert nets[("conv1/A0", "conv2/T7_1")] == 500 - 448 and nets[("conv2/T7_1", "conv2/A1")] == 18
    # fc1 rows 0..511 are channels 0..31 = conv2/A0, rows 512..799 channels 32..49 = conv2/A1
    assert nets[("conv2/A0", "fc1/T7_3")] == 64 and ("conv2/A1", "fc1/T7_3") not in nets
    assert nets[("conv2/A1", "fc1/T8_0")] == 64 and nets[("conv2/A1", "fc1/T12_15")] == 32
    # fc2 rows 448..499: fc1 columns 448..479 (A14) and 480..499 (A15)
    assert nets[("fc1/A14", "fc2/T7_0")] == 32 and nets[("fc1/A15", "fc2/T7_0")] == 20
    assert len(net.nets) == sum(n.kind == "output" for n in net.nets) + 1 + 16 + 208 + 16


def test_design_contract():
    m = low_rank_lenet()
    net = map_model(m, CrossbarSpec(32, 32, "offset"), LENET)
    d = net.design
    names = [u.name for u in d.units]
    assert len(names) == len(set(names)) and names[0] == "IN"
    assert all(n.src in names and n.dst in names for n in d.nets)
    tiles = [u for u in d.units if u.kind == "tile"]
    assert len(tiles) == net.n_crossbars == len(d.tile_weights)
    for u in tiles:
        mm = next(x for x in net.matrices if x.name == u.matrix)
        np.testing.assert_array_equal(d.tile_weights[u.name], mm.tile(*u.block))
        assert u.name == f"{u.matrix}/T{u.block[0]}_{u.block[1]}"
    outs = {u.name for u in d.units if u.kind == "output"}
    assert outs == {n.dst for n in d.nets if n.kind == "output"}
    assert d.total_wires == net.total_wires and (d.crossbar_rows, d.crossbar_cols) == (32, 32)
    assert d.encoding == "offset"
    dense = net.dense_baseline()
    assert dense.n_crossbars == net.baseline.n_crossbars and dense.design.tile_weights == {}
    assert len(dense.nets) == net.baseline.n_nets and dense.total_wires == net.baseline.total_wires


def reference_nets(weights, spec):
    """Loop definition of section 3 for a chain of Linear layers."""
    r, c, out = spec.rows, spec.lcols, Counter()
    for k, W in enumerate(weights):
        name = f"{k * 2}"
        for a in range(-(-W.shape[0] // r)):
            for b in range(-(-W.shape[1] // c)):
                t = W[a * r:(a + 1) * r, b * c:(b + 1) * c]
                if not t.any():
                    continue
                tile = f"{name}/T{a}_{b}"
                for i, row in enumerate(t):
                    if row.any():
                        g = a * r + i
                        out[("IN" if k == 0 else f"{(k - 1) * 2}/A{g // c}", tile)] += 1
                out[(tile, f"{name}/A{b}")] = int(t.any(axis=0).sum())
    return dict(out)


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 70), min_size=2, max_size=4), seed=st.integers(0, 2**31),
       rows=st.integers(1, 24), cols=st.integers(2, 24),
       encoding=st.sampled_from(["differential", "offset", "unsigned"]),
       p=st.floats(0, 0.9))
def test_property_net_widths(sizes, seed, rows, cols, encoding, p):
    rng = np.random.default_rng(seed)
    layers = []
    for n, m in zip(sizes[:-1], sizes[1:], strict=True):
        lin = nn.Linear(n, m)
        w = rng.standard_normal((m, n)) * (rng.random((m, n)) > p)
        w[:, rng.random(n) < p] = 0  # deleted input rows
        lin.weight.data = torch.tensor(w, dtype=torch.float32)
        layers += [lin, nn.ReLU()]
    spec = CrossbarSpec(rows, cols, encoding)
    net = map_model(nn.Sequential(*layers), spec, (sizes[0],))
    got = {(n.src, n.dst): n.width for n in net.nets}
    ref = reference_nets([la.weight.detach().numpy().T for la in layers[::2]], spec)
    assert got == ref
    assert all(n.width >= 1 for n in net.nets)
    units = {u.name for u in net.design.units}
    assert all(n.src in units and n.dst in units for n in net.nets)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gain = nn.Parameter(torch.ones(4))


@pytest.mark.parametrize("model,match", [
    (nn.Sequential(nn.Linear(4, 4), nn.ConvTranspose2d(4, 4, 3)), r"'1' \(ConvTranspose2d\)"),
    (nn.Sequential(nn.LSTM(4, 4)), r"'0' \(LSTM\)"),
    (nn.Sequential(nn.Embedding(10, 4)), r"'0' \(Embedding\)"),
    (nn.Sequential(nn.MultiheadAttention(4, 2)), r"'0' \(MultiheadAttention\)"),
    (nn.Sequential(nn.Conv1d(4, 4, 3)), r"'0' \(Conv1d\)"),
    (Scaled(), r"'<root>' \(Scaled\) holds parameters \['gain'\]"),
    (nn.Sequential(nn.ReLU()), "no Linear or Conv2d"),
])
def test_unmappable(model, match):
    with pytest.raises(UnmappableLayerError, match=match):
        map_model(model, CrossbarSpec(), (4, 8, 8))


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)

    def forward(self, x):
        return self.a(self.a(x))


class Unflatten(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.conv = nn.Linear(8, 16), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        return self.conv(self.fc(x).view(-1, 4, 2, 2))


@pytest.mark.parametrize("model,shape,match", [
    (Shared(), (8,), "called more than once"),
    (Unflatten(), (8,), r"cannot wire layer 'conv' \(Conv2d\): its input channel 0 reads "
                        r"signals of 'fc' column 0, 'fc' column 1"),
    (models.get("lenet"), (1, 20, 20), "dry run .* failed"),
])
def test_dataflow_that_cannot_be_wired(model, shape, match):
    with pytest.raises(DataflowError, match=match):
        map_model(model, CrossbarSpec(), shape)


def test_input_through_view_and_unused_layer():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.head = nn.Linear(12, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(x.view(x.shape[0], -1) * 2)

    with pytest.warns(UserWarning, match=r"\['head'\] are not used"):
        net = map_model(M(), CrossbarSpec(), (3, 4))
    assert [la.name for la in net.layers] == ["fc"] and net.sources["fc"].producer is None


@pytest.mark.parametrize("shape,exc", [(None, ValueError), ((0, 28), ValueError),
                                       ("abc", TypeError)])
def test_bad_input_shape(shape, exc):
    with pytest.raises(exc, match="input_shape"):
        map_model(models.get("lenet"), CrossbarSpec(), shape)


def test_reports(tmp_path):
    net = map_model(low_rank_lenet(), CrossbarSpec(64, 64), LENET)
    d = net.to_dict()
    for key in ("n_crossbars", "cells", "cell_area_ratio", "crossbar_area_ratio", "area_um2",
                "layers", "nets", "baseline"):
        assert key in d
    assert d["layers"][1]["grid"] == [[8, 1], [1, 2]] and d["layers"][1]["rank"] == 7
    assert d["nets"]["count"] == len(net.nets) and d["nets"]["total_wires"] == net.total_wires
    assert d["baseline"]["n_crossbars"] == 233
    assert sum(la["input_wires"] + la["output_wires"] for la in d["layers"]) == net.total_wires
    rows = list(csv.DictReader(io.StringIO(to_csv(net))))
    assert [r["name"] for r in rows] == ["conv1", "conv2", "fc1", "fc2"] and rows[2]["rank"] == "30"
    assert "total" in format_table(net) and "crossbar_area_ratio" in format_table(net)
    paths = write_reports(net, tmp_path / "out", {"model": "lenet"})
    assert json.loads(paths["json"].read_text())["model"] == "lenet"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "mapping.csv", "mapping.json", "mapping.txt"]


def test_a_design_too_large_for_seconds_warns_and_says_what_to_do(monkeypatch):
    import mapping.network

    model = nn.Sequential(nn.Linear(16, 16))
    monkeypatch.setattr(mapping.network, "LARGE_DESIGN_TILES", 3)
    with pytest.warns(UserWarning, match=r"4 crossbar tiles of 8x16.*use a larger one"):
        map_model(model, CrossbarSpec(8, 16), (16,))
