"""Energy, latency and throughput (hardware-model.md section 7, mapping/energy.py) and the
technology presets it reads."""

import ast
import dataclasses
import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from common.errors import ConfigError
from mapping.energy import COMPONENTS, MatrixLoad, energy, estimate, loads, loads_from_design
from mapping.network import map_model
from mapping.spec import PRESETS, CrossbarSpec, Technology, presets

ROOT = Path(__file__).resolve().parents[1]

# round figures, each a different power of two, so that every sum below is exact in floats
TECH = Technology(bits_per_signal=4, dac_bits=2, cell_read_energy_pj=1.0, dac_energy_pj=2.0,
                  input_register_energy_pj=4.0, col_periphery_energy_pj=8.0, adc_energy_pj=16.0,
                  shift_add_energy_pj=32.0, output_register_energy_pj=64.0,
                  adder_energy_pj=128.0, accumulate_energy_pj=256.0,
                  activation_energy_pj=512.0, pool_energy_pj=1024.0, read_time_ns=100.0,
                  adc_conversion_time_ns=0.5, cols_per_adc=4)


def _load(evaluations=1, rows=(3, 7), cols=(2, 4), out_cols=5, last=True):
    return MatrixLoad("m", "m", evaluations, out_cols, last, np.array(rows), np.array(cols))


def test_energy_follows_the_documented_counts_exactly():
    spec = CrossbarSpec(16, 16, "differential", TECH)  # 2 reads per evaluation; 4 ADCs
    row = estimate([_load(evaluations=3)], spec).matrices[0]
    s, e = 2, 3
    r, p, c = np.array([3, 7]), np.array([4, 8]), np.array([2, 4])  # p = 2c (differential)
    want = {"array": e * s * (r * p).sum() * 1.0, "dac": e * s * r.sum() * 2.0,
            "input_register": e * s * r.sum() * 4.0, "sample_hold": e * s * p.sum() * 8.0,
            "adc": e * s * p.sum() * 16.0, "shift_add": e * s * p.sum() * 32.0,
            "output_register": e * s * p.sum() * 64.0, "adder": e * c.sum() * 128.0,
            "output_units": e * 5 * (256.0 + 512.0 + 1024.0), "interconnect": 0.0}
    assert row["energy_pj"] == want
    assert row["total_pj"] == sum(want.values())
    # conversions per ADC: the busiest tile's 8 bit lines on 16 / 4 = 4 ADCs -> 2
    assert row["latency_ns"] == e * s * (100.0 + 0.5 * 2)


def test_energy_and_latency_scale_exactly_with_evaluations():
    spec = CrossbarSpec(16, 16, "differential", TECH)
    one = estimate([_load(evaluations=1)], spec)
    many = estimate([_load(evaluations=36)], spec)
    for k in COMPONENTS:
        assert many.components_pj[k] == 36 * one.components_pj[k]
    assert many.latency_ns == 36 * one.latency_ns
    assert many.throughput_ips == pytest.approx(one.throughput_ips / 36, rel=1e-12)


@pytest.mark.parametrize("encoding, phys", [("differential", [4, 8]), ("unsigned", [2, 4]),
                                            ("offset", [3, 5])])
def test_physical_columns_of_each_encoding(encoding, phys):
    row = estimate([_load()], CrossbarSpec(16, 16, encoding, TECH)).matrices[0]
    assert row["energy_pj"]["adc"] == 2 * sum(phys) * 16.0
    assert row["energy_pj"]["array"] == 2 * (3 * phys[0] + 7 * phys[1]) * 1.0


def test_the_last_matrix_of_a_layer_pays_activation_and_pooling():
    spec = CrossbarSpec(16, 16, "differential", TECH)
    u = estimate([_load(last=False)], spec).matrices[0]["energy_pj"]["output_units"]
    assert u == 5 * 256.0


def test_conv_evaluations_are_output_pixels_and_linear_ones_one():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 3 * 3, 5))
    net = map_model(model, CrossbarSpec(16, 16), (3, 8, 8))
    assert [m.evaluations for m in loads(net)] == [36, 1]  # 6 x 6 output pixels
    assert [m.evaluations for m in loads(net.dense_baseline())] == [36, 1]


def test_deleting_rows_of_a_tile_lowers_array_and_dac_energy_by_the_documented_amount():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10))
    spec = CrossbarSpec(16, 16)  # differential: 8 logical columns per tile
    before = energy(map_model(model, spec, (40,)), dense=False)
    with torch.no_grad():
        model[0].weight[0:8, 0:5] = 0  # inputs 0..4 of tile (0, 0): 5 live rows fewer
    net = map_model(model, spec, (40,))
    assert net.matrices[0].row_counts[0, 0] == 11 and net.matrices[0].col_counts[0, 0] == 8
    after = energy(net, dense=False)
    t, s, p = spec.tech, spec.tech.reads_per_evaluation, 2 * 8
    drop = {k: before.components_pj[k] - after.components_pj[k] for k in COMPONENTS}
    assert drop["array"] == pytest.approx(s * 5 * p * t.cell_read_energy_pj, rel=1e-12)
    assert drop["dac"] == pytest.approx(s * 5 * t.dac_energy_pj, rel=1e-12)
    assert drop["input_register"] == pytest.approx(s * 5 * t.input_register_energy_pj, rel=1e-12)
    assert all(drop[k] == 0 for k in ("adc", "sample_hold", "adder", "output_units"))


def test_a_dense_model_costs_what_its_dense_baseline_costs():
    import models

    torch.manual_seed(0)
    net = map_model(models.get("lenet"), CrossbarSpec(64, 64), (1, 28, 28))
    rep = energy(net)
    assert rep.components_pj == rep.dense.components_pj
    assert rep.latency_ns == rep.dense.latency_ns
    assert rep.throughput_ips == rep.dense.throughput_ips
    assert rep.to_dict()["ratio_to_dense"] == {"energy": 1.0, "latency": 1.0, "throughput": 1.0}
    assert [x["evaluations"] for x in rep.layers] == [576, 64, 1, 1]


def test_routed_interconnect_and_wire_delay_and_the_design_path_agree():
    from mapping.placement import PlaceConfig, place
    from mapping.routing import RouteConfig, route

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10))
    spec = CrossbarSpec(16, 16)
    net = map_model(model, spec, (40,))
    d = net.design
    rt = route(d, place(d, PlaceConfig(method="fast")), RouteConfig.for_spec(spec))
    rep = energy(net, rt, dense=False)
    t = spec.tech
    evals = {m: 1 for m in ("0", "2")}
    want = sum(evals[m] * w * n * rt.config.gcell_um * t.wire_cap_ff_per_um * t.supply_v ** 2
               * t.activity_factor * t.bits_per_signal / 1e3
               for m, w, n in zip(rt.layers, rt.widths, rt.lengths, strict=True))
    assert rep.interconnect_pj == pytest.approx(want, rel=1e-12) and want > 0
    unrouted = energy(net, dense=False)
    assert rep.energy_pj - rep.interconnect_pj == pytest.approx(unrouted.energy_pj, rel=1e-12)
    hop: dict = {}  # (matrix, kind) -> longest routed net, producer to tile, in um
    for i, n in enumerate(d.nets):
        um = (len(rt.net_path(i)) - 1) * rt.config.gcell_um
        hop[n.matrix, n.kind] = max(hop.get((n.matrix, n.kind), 0.0), um)
    elmore = sum(0.5 * t.wire_res_ohm_per_um * t.wire_cap_ff_per_um * L ** 2 * 1e-6
                 for L in hop.values())
    assert len(hop) == 4 and rep.wire_ns == pytest.approx(elmore, rel=1e-12) and elmore > 0
    again = estimate(loads_from_design(d, rep.to_dict()["matrices"]), spec, rt, d)
    assert again.to_dict() == rep.to_dict()


def test_technology_fields_all_have_a_docstring_and_units():
    tree = ast.parse((ROOT / "mapping" / "spec.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Technology")
    body = cls.body
    documented = {a.target.id for a, b in zip(body, body[1:], strict=False)
                  if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr)
                  and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str)}
    names = {f.name for f in dataclasses.fields(Technology)}
    assert documented == names
    units = ("_um2", "_um", "_pj", "_ns", "_ff_per_um", "_ohm_per_um", "_v")
    counts = {"cols_per_adc", "routing_layers", "bits_per_signal", "dac_bits", "activity_factor"}
    assert {n for n in names if not n.endswith(units)} == counts


def test_presets_load_by_name_and_are_complete():
    assert {"illustrative", "isaac_32nm"} <= set(presets())
    assert Technology.preset("illustrative") == Technology()  # the defaults are this file
    fields = {f.name for f in dataclasses.fields(Technology)}
    for name in presets():
        table = tomllib.loads((PRESETS / f"{name}.toml").read_text())
        assert set(table) == fields, name  # every figure stated, none inherited silently
        assert Technology.load(name) == Technology.preset(name)
    assert Technology.load(PRESETS / "isaac_32nm.toml") == Technology.preset("isaac_32nm")
    with pytest.raises(ConfigError, match="no technology preset named 'isaac'"):
        Technology.preset("isaac")
    with pytest.raises(ConfigError, match="activity_factor is a probability"):
        Technology(activity_factor=2.0)


def test_the_compile_settings_take_a_preset_name():
    from group_scissor.config import CompileConfig

    cfg = CompileConfig.load(None, ["tech=isaac_32nm", "crossbar=128x128"])
    assert cfg.spec().tech == Technology.preset("isaac_32nm")
    with pytest.raises(ConfigError, match="no technology preset"):
        CompileConfig.load(None, ["tech=nonesuch"])


def test_isaac_preset_reproduces_the_table_the_benchmark_prints():
    from benchmarks.energy import IMA_ROWS, TILE_ROWS, isaac_rows

    rows = {r["component"]: r for r in isaac_rows()}
    for name, _, power_mw, area_mm2 in IMA_ROWS:  # per component of one IMA: exact
        assert rows[name]["ours_mw"] == pytest.approx(power_mw, rel=1e-9), name
        assert rows[name]["ours_mm2"] == pytest.approx(area_mm2, rel=1e-9), name
    # the table's totals are rounded to 3 digits
    assert rows["12 IMAs"]["ours_mw"] == pytest.approx(289.0, rel=2e-3)
    assert rows["12 IMAs"]["ours_mm2"] == pytest.approx(0.157, rel=3e-3)
    for name in ("Sigmoid", "MaxPool", "S+A + OR (tile)"):
        assert rows[name]["ours_mw"] == pytest.approx(rows[name]["paper_mw"], rel=1e-9)
    # the tile total less what this model does not have (eDRAM, its bus, the router's share)
    missing = sum(p for n, _, p, _ in TILE_ROWS if n.startswith(("eDRAM", "Router")))
    assert rows["Tile total"]["ours_mw"] == pytest.approx(330.0 - missing, rel=2e-3)


def test_map_and_route_stages_write_energy_and_the_report_shows_it(tmp_path):
    from group_scissor.physical import map_stage, route_stage
    from group_scissor.report import report_markdown
    from mapping.placement import PlaceConfig
    from mapping.spec import CrossbarSpec as Spec

    spec = Spec(64, 64, tech=Technology.preset("isaac_32nm"))
    m = map_stage("lenet", None, spec, tmp_path / "4-map")
    assert m["energy"]["routed"] is False and m["energy"]["energy_ratio"] == 1.0
    r = route_stage(tmp_path / "4-map", tmp_path / "5-route", PlaceConfig(method="fast"),
                    {"method": "negotiated"})
    mapped = json.loads((tmp_path / "4-map" / "energy.json").read_text())
    routed = json.loads((tmp_path / "5-route" / "energy.json").read_text())
    assert routed["routed"] and r["energy"]["interconnect_share"] > 0
    assert routed["energy_pj"] - routed["interconnect_pj"] == pytest.approx(mapped["energy_pj"])
    assert routed["reads_per_evaluation"] == 16  # the design file carried the preset's figures
    rep = {"accuracy": {"baseline": 0.9, "rank_clipped": 0.9, "final": 0.9},
           "paper": None, "rank_clipped": {"cell_area_ratio": 1, "crossbar_area_ratio": 1,
                                           "wire_ratio": 1},
           "model": "lenet", "dataset": "mnist", "crossbar": spec.to_dict(), "layers": [],
           "cell_area_ratio": 1, "crossbar_area_ratio": 1, "routing_area_ratio": 1,
           "wire_ratio": 1, "area_um2": 1, "routing_area_um2": 1, "wirelength": 1,
           "signal_bound": 1, "congestion": {"max": 1, "mean": 1, "overflow": 0},
           "stage_seconds": {}, "energy": routed}
    md = report_markdown(rep, tmp_path)
    assert "## Energy and latency" in md and "| **total** |" in md and "| conv1 | 576 |" in md


def test_energy_benchmark_takes_the_shipped_checkpoints_when_listed(monkeypatch):
    from benchmarks import energy as bench
    from models import pretrained

    listed = ["lenet:dense", "lenet:group-scissor"]
    monkeypatch.setattr(pretrained, "available", lambda: listed)
    assert bench.shipped("convnet") is None  # not shipped: random weights, and the row says so
    assert bench.row_name("convnet") == "convnet-energy-random-init-svd0.3+random-deletion-64x64"
    listed += ["convnet:dense", "convnet:group-scissor"]
    monkeypatch.setattr(pretrained, "entry", lambda n: {"config": {"crossbar": "32x32 offset"}})
    assert bench.shipped("convnet") == {"dense": "convnet:dense",
                                        "compressed": "convnet:group-scissor"}
    assert bench.shipped_spec("convnet:group-scissor") == CrossbarSpec(32, 32, "offset")
    assert bench.row_name("convnet") == "convnet-energy-shipped-dense+group-scissor-32x32"


def test_energy_benchmark_routes_the_shipped_lenet_as_the_route_stage():
    from benchmarks import energy as bench
    from models import pretrained

    if not {"lenet:dense", "lenet:group-scissor"} <= set(pretrained.available()):
        pytest.skip("the LeNet checkpoints are not shipped")
    config, m = bench.small("lenet")
    assert config["checkpoints"]["compressed"]["name"] == "lenet:group-scissor"
    assert m["dense_checkpoint_is_the_baseline"]  # a trained dense net maps to every tile
    assert m["overflow"] == m["dense_overflow"] == 0
    assert m["routing"]["compressed"]["die_area_um2"] < m["routing"]["dense"]["die_area_um2"]
    e = m["energy"]
    assert e["routed"] and e["dense"]["routed"] and 0 < e["interconnect_share"] < 1
    assert e["ratio_to_dense"]["energy"] < 1
    assert m["tiles"] == {"compressed": 36, "dense": 233}  # the manifest's group_deletion row
