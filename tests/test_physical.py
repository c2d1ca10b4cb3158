"""map -> route -> export through their files: each stage reads what the previous one wrote,
the netlists carry the layout that was routed, and bad options are clear errors."""

import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import models
import netlists
from group_scissor.cli import app
from mapping import CrossbarSpec, PlaceConfig, RouteConfig, map_model
from netlists import read_netlist
from netlists.verilog import design_connectivity, verilog_connectivity

SCHEMA = json.loads(netlists.SCHEMA_PATH.read_text())
FAST = ["--place-method", "fast", "--route-method", "negotiated"]


def run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r


@pytest.fixture(scope="module")
def pruned_lenet(tmp_path_factory) -> tuple[Path, dict]:
    """A real LeNet checkpoint with fc1's inputs 0..399 deleted and fc1 low-rank (rank 30)."""
    from models.lowrank import to_low_rank

    torch.manual_seed(0)
    model = models.get("lenet")
    with torch.no_grad():
        model.fc1.weight[:, :400] = 0
    to_low_rank(model, ["fc1"], rank=30)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    torch.save(model.state_dict(), path)
    return path, model


def test_stages_chain_through_their_files(tmp_path, pruned_lenet):
    ckpt, model = pruned_lenet
    m, r, e = tmp_path / "map", tmp_path / "route", tmp_path / "export"
    res = run("map", "--model", "lenet", "--checkpoint", ckpt, "--out", m)
    assert res.exit_code == 0, res.output
    assert {"design.json", "design.weights.npz", "dense.json", "mapping.json",
            "metrics.json"} <= {p.name for p in m.iterdir()}
    want = map_model(model, CrossbarSpec(64, 64), (1, 28, 28)).design
    got = read_netlist(m / "design.json").design
    assert got.units == want.units and got.nets == want.nets
    for k, w in want.tile_weights.items():
        assert np.array_equal(got.tile_weights[k], w)
    assert json.loads((m / "mapping.json").read_text())["layers"][2]["rank"] == 30

    res = run("route", "--design", m, "--out", r, *FAST)
    assert res.exit_code == 0, res.output
    routing = json.loads((r / "routing.json").read_text())
    assert routing["overflow"] == 0 and routing["routing_area_ratio"] < 1
    # the same model mapped by route itself gives the same routing
    res = run("route", "--model", "lenet", "--checkpoint", ckpt, "--out", tmp_path / "r2", *FAST)
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "r2" / "routing.json").read_text())
    assert {k: v for k, v in again.items() if k != "seconds"} == {
        k: v for k, v in routing.items() if k != "seconds"}

    res = run("export", "--design", m, "--routed", r, "--out", e)
    assert res.exit_code == 0, res.output
    chip, routed = read_netlist(e / "chip.json"), read_netlist(r / "routed.json")
    jsonschema.Draft202012Validator(SCHEMA).validate(json.loads((e / "chip.json").read_text()))
    assert chip.sites == routed.sites and chip.sites and chip.routes == routed.routes
    assert len(chip.routes) == len(chip.design.nets)
    for k, w in want.tile_weights.items():
        assert np.array_equal(chip.design.tile_weights[k], w)
    assert verilog_connectivity(e / "chip.v") == design_connectivity(want)
    spice = (e / "chip.sp").read_text()
    tiles = re.findall(r"^\* @tile xb\d+ (\S+) rows=(\d+) bitlines=(\d+)$", spice, re.M)
    assert [t[0] for t in tiles] == [u.name for u in want.units if u.kind == "tile"]


def test_export_of_fewer_formats_leaves_no_older_netlist(tmp_path):
    out = tmp_path / "e"
    assert run("export", "--out", out).exit_code == 0
    assert {"chip.json", "chip.sp", "chip.v"} <= {p.name for p in out.iterdir()}
    res = run("export", "--formats", "verilog", "--crossbar", "32x128", "--encoding", "offset",
              "--out", out)
    assert res.exit_code == 0, res.output
    assert not (out / "chip.json").exists() and not (out / "chip.sp").exists()
    assert "crossbars 32x128 (offset)" in (out / "chip.v").read_text()


def test_a_layout_of_another_design_is_refused(tmp_path):
    assert run("route", "--out", tmp_path / "r", *FAST).exit_code == 0
    res = run("export", "--crossbar", "32x32", "--routed", tmp_path / "r", "--out", tmp_path / "e")
    assert res.exit_code == 2 and "layout of another design" in res.output


@pytest.mark.parametrize("args, needle", [
    (["export", "--formats", "pdf"], "unknown netlist format"),
    (["export", "--encoding", "signed"], "encoding must be one of"),
    (["map", "--crossbar", "64by64"], "bad crossbar size"),
    (["map", "--model", "resnet9000"], "unknown model"),
    (["route", "--design", "nowhere.json"], "no design file"),
    (["route", "--route-gcell-um", "5"], "No such option"),
    (["route", "--set", "route.gcell_um=5"], "tech file"),
    (["route", "--design", "x", "--checkpoint", "y"], "not both"),
])
def test_bad_options_are_clear_errors(tmp_path, args, needle):
    res = run(*args, "--out", tmp_path / "o")
    assert res.exit_code == 2 and needle in res.output, res.output
    assert "Traceback" not in res.output


def test_route_stage_reads_a_design_file_and_writes_reports_with_the_dense_ratio(tmp_path):
    import json

    import torch
    from torch import nn

    from group_scissor.physical import route_stage, technology
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec
    from netlists import write_json as write_netlist

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10))
    with torch.no_grad():
        model[0].weight[:, :20] = 0  # inputs 0..19 deleted: a row block of tiles disappears
    mapped = map_model(model, CrossbarSpec(16, 16), (40,))
    tech = technology(mapped.spec)
    write_netlist(mapped, tmp_path / "m" / "design.json", technology=tech)
    write_netlist(mapped.dense_baseline().design, tmp_path / "m" / "dense.json", weights="none",
                  technology=tech)
    rep = route_stage(tmp_path / "m", tmp_path, PlaceConfig(method="fast"),
                      {"method": "negotiated"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "congestion.png", "dense_congestion.png", "dense_floorplan.png", "floorplan.png", "m",
        "metrics.json", "placement.json", "routed.json", "routes.json", "routing.json"]
    disk = json.loads((tmp_path / "routing.json").read_text())
    assert disk["wirelength"] == rep["wirelength"] and disk["overflow"] == 0
    assert disk["routing_area_ratio"] == pytest.approx(
        rep["routing_area_um2"] / rep["dense"]["routing_area_um2"])
    assert 0 < disk["routing_area_ratio"] < 1
    assert len(json.loads((tmp_path / "routes.json").read_text())["nets"]) == len(
        mapped.design.nets)
    # the routable area: the die (its site grid x one crossbar's area) beside the crossbars
    r = disk["routable"]
    assert r["routable"] and not r["trees"] and r["steps"][0]["overflow"] == 0
    w, h = r["grid_sites"]
    assert r["die_area_um2"] == pytest.approx(w * h * mapped.spec.crossbar_area_um2)
    assert r["crossbar_area_um2"] == pytest.approx(mapped.area_um2)
    assert r["dense"]["crossbar_area_um2"] == pytest.approx(mapped.baseline.area_um2)


def test_a_design_without_its_dense_baseline_routes_without_a_ratio(tmp_path):
    assert run("map", "--crossbar", "32x32", "--out", tmp_path / "m").exit_code == 0
    (tmp_path / "m" / "dense.json").unlink()
    res = run("route", "--design", tmp_path / "m" / "design.json", "--out", tmp_path / "r", *FAST)
    assert res.exit_code == 0 and "no dense.json" in res.output, res.output
    assert json.loads((tmp_path / "r" / "routing.json").read_text())["routing_area_ratio"] is None
    assert not (tmp_path / "r" / "dense_floorplan.png").exists()


@pytest.fixture
def tiny_mlp(tmp_path):
    """A registered 40-24-10 MLP (inputs 0..19 of its first layer deleted) and its checkpoint."""
    from torch import nn

    from models import registry

    def factory():
        return nn.Sequential(nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 10))

    models.register("tiny-slice-mlp", factory, input_shape=(40,), num_classes=10, overwrite=True)
    torch.manual_seed(0)
    model = factory()
    with torch.no_grad():
        model[0].weight[:, :20] = 0  # a row block of tiles disappears
    path = tmp_path / "tiny.pt"
    torch.save(model.state_dict(), path)
    yield "tiny-slice-mlp", path, model
    registry._REGISTRY.pop("tiny-slice-mlp", None)


def test_sliced_weights_flow_through_map_route_and_export(tmp_path, tiny_mlp):
    """weight_bits=8, cell_bits=2: 4 crossbars per tile from the map stage's design file to
    the route stage's sites and energy and the export's counts (issue 19)."""
    from group_scissor.physical import export_stage, map_stage, route_stage, spec_of
    from mapping.energy import energy

    name, ckpt, model = tiny_mlp
    plain, sliced = CrossbarSpec(16, 16), CrossbarSpec(16, 16, weight_bits=8, cell_bits=2)
    assert sliced.slices == 4
    mp = map_stage(name, ckpt, plain, tmp_path / "m1")
    ms = map_stage(name, ckpt, sliced, tmp_path / "m4")
    assert ms["n_crossbars"] == 4 * mp["n_crossbars"] and ms["slices"] == 4
    mapping = json.loads((tmp_path / "m4" / "mapping.json").read_text())
    assert mapping["slices"] == 4 and mapping["n_crossbars"] == ms["n_crossbars"]
    assert mapping["baseline"]["n_crossbars"] == 4 * json.loads(
        (tmp_path / "m1" / "mapping.json").read_text())["baseline"]["n_crossbars"]
    assert "in 4 slices of 2-bit cells" in (tmp_path / "m4" / "mapping.txt").read_text()
    for f in ("design.json", "dense.json"):
        doc = json.loads((tmp_path / "m4" / f).read_text())
        assert {k: doc["crossbar"][k] for k in ("weight_bits", "cell_bits", "slices")} == {
            "weight_bits": 8, "cell_bits": 2, "slices": 4}, f
    net = read_netlist(tmp_path / "m4" / "design.json")
    assert spec_of(net) == sliced and spec_of(net).slices == 4
    assert net.design.n_crossbars == ms["n_crossbars"]

    place = PlaceConfig(method="fast")
    r1 = route_stage(tmp_path / "m1", tmp_path / "r1", place, {"method": "negotiated"})
    r4 = route_stage(tmp_path / "m4", tmp_path / "r4", place, {"method": "negotiated"})
    assert r4["slices"] == 4 and r1["slices"] == 1
    # the same nets (the slices of a tile share its buses) on sites 4 crossbars big: the
    # routing grid has the sliced spec's gcells per site, and the wires are longer
    assert read_netlist(tmp_path / "m4" / "design.json").design.nets == read_netlist(
        tmp_path / "m1" / "design.json").design.nets
    grid = json.loads((tmp_path / "r4" / "routed.json").read_text())["layout"]
    assert grid["gcells_per_site"] == RouteConfig.for_spec(sliced).gcells_per_site > (
        RouteConfig.for_spec(plain).gcells_per_site)
    assert r4["wirelength"] > r1["wirelength"] and r4["overflow"] == 0
    assert r4["routable"]["site_area_um2"] == pytest.approx(4 * sliced.crossbar_area_um2)
    assert r4["routable"]["crossbar_area_um2"] == pytest.approx(ms["area_um2"])
    assert ms["area_um2"] == pytest.approx(ms["n_crossbars"] * sliced.crossbar_area_um2)
    # energy.json of the route stage: the slices counted, as mapping.energy counts them
    e4 = json.loads((tmp_path / "r4" / "energy.json").read_text())
    e1 = json.loads((tmp_path / "r1" / "energy.json").read_text())
    mem = energy(map_model(model, sliced, (40,))).to_dict()
    assert e4["slices"] == mem["slices"] == 4 and e4["crossbar"] == str(sliced)
    for k, v in mem["energy_pj_by_component"].items():
        if k != "interconnect":
            assert e4["energy_pj_by_component"][k] == pytest.approx(v), k
            assert e4["dense"]["energy_pj_by_component"][k] == pytest.approx(
                mem["dense"]["energy_pj_by_component"][k]), k
    for k in ("array", "dac", "adc", "shift_add"):  # tile parts: 4x; the tree adder: once
        assert e4["energy_pj_by_component"][k] == pytest.approx(
            4 * e1["energy_pj_by_component"][k])
    assert e4["energy_pj_by_component"]["adder"] == pytest.approx(
        e1["energy_pj_by_component"]["adder"])
    assert e4["interconnect_pj"] > e1["interconnect_pj"] > 0  # longer wires, same buses
    assert read_netlist(tmp_path / "r4" / "routed.json").design.slices == 4

    ex = export_stage(tmp_path / "m4", tmp_path / "e4", ("json", "spice", "verilog"),
                      tmp_path / "r4")
    assert ex["crossbars"] == ms["n_crossbars"] == 4 * ex["tiles"] and ex["slices"] == 4
    assert ex["files"] == {"json": "chip.json", "spice": "chip.sp", "verilog": "chip.v"}
    assert read_netlist(tmp_path / "e4" / "chip.json").design.cell_bits == 2
    spice = (tmp_path / "e4" / "chip.sp").read_text()  # every slice a crossbar subcircuit
    assert "* @slices 4 shifts 1 4 16 64" in spice
    assert spice.count("* @tile ") == ex["tiles"] and spice.count(".subckt ") == ex["crossbars"]


def test_map_route_export_commands_take_the_weight_precision(tmp_path):
    m, r = tmp_path / "m", tmp_path / "r"
    res = run("map", "--crossbar", "32x32", "--weight-bits", "8", "--cell-bits", "3", "--out", m)
    assert res.exit_code == 0, res.output
    assert "in 3 slices of 3-bit cells" in res.output
    assert read_netlist(m / "design.json").design.slices == 3
    res = run("route", "--design", m, "--out", r, *FAST)
    assert res.exit_code == 0, res.output
    assert json.loads((r / "routing.json").read_text())["slices"] == 3
    res = run("route", "--crossbar", "32x32", "--set", "weight_bits=8", "--set", "cell_bits=3",
              "--out", tmp_path / "r2", *FAST)  # maps first, with the same settings
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r2" / "energy.json").read_text())["slices"] == 3
    res = run("map", "--cell-bits", "2", "--out", tmp_path / "bad")
    assert res.exit_code == 2 and "set weight_bits too" in res.output, res.output
