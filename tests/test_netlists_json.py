"""JSON netlist: lossless round trip, schema validation, placement/routes, clear errors."""

import dataclasses
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import netlists
from mapping.design import Design, Net, Unit
from netlists import NetlistError, read_json, read_netlist, write_json
from netlists.synthetic import chain_design

SCHEMA = json.loads(netlists.SCHEMA_PATH.read_text())


def validate(path: Path) -> dict:
    doc = json.loads(Path(path).read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    return doc


def small_design(encoding="differential", dtype=np.float32, seed=0) -> Design:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(20, 12)).astype(dtype)
    w1[3] = 0  # a removed input wire
    w1[:, 5] = 0  # a removed output wire
    w2 = rng.normal(size=(12, 6)).astype(dtype)
    w2[:8, :] = 0  # a whole tile row removed -> tiles not built
    return chain_design({"fc1": w1, "fc2": w2}, 8, 8, encoding)


def assert_same(a: Design, b: Design) -> None:
    assert a.units == b.units
    assert a.nets == b.nets
    assert (a.crossbar_rows, a.crossbar_cols, a.encoding) == (b.crossbar_rows, b.crossbar_cols,
                                                               b.encoding)
    assert a.tile_weights.keys() == b.tile_weights.keys()
    for k, w in a.tile_weights.items():
        assert b.tile_weights[k].dtype == w.dtype
        assert b.tile_weights[k].shape == w.shape
        assert np.array_equal(b.tile_weights[k].view(np.uint8), np.asarray(w).view(np.uint8)), k
    assert a.row_signals.keys() == b.row_signals.keys()
    for m, rs in a.row_signals.items():
        assert b.row_signals[m].producers == rs.producers, m
        assert np.array_equal(b.row_signals[m].source, rs.source), m
        assert np.array_equal(b.row_signals[m].live, rs.live), m
        assert b.row_signals[m].live.dtype == np.bool_


def test_schema_is_valid_and_not_vacuous(tmp_path):
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    doc = validate(write_json(small_design(), tmp_path / "d.json"))
    for break_it in (lambda d: d.update(schema_version=1),
                     lambda d: d["nets"][0].pop("width"),
                     lambda d: d["nets"][0].update(width=0),
                     lambda d: d["units"][1].update(kind="crossbar"),
                     lambda d: d["units"][1]["weights"].pop("data"),
                     lambda d: d["crossbar"].update(encoding="signed"),
                     lambda d: d["crossbar"].update(rows=4097),
                     lambda d: d["nets"][0].update(width=True),
                     lambda d: d["nets"][0].update(kind="bus"),
                     lambda d: d["units"][1]["weights"].update(dtype="<f99999"),
                     lambda d: d.update(weights_file={"path": "../x.npz", "sha256": "0" * 64}),
                     lambda d: d["row_signals"][0].update(live=[[1]]),
                     lambda d: d.pop("row_signals")):
        bad = json.loads(json.dumps(doc))
        break_it(bad)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(SCHEMA).validate(bad)


@pytest.mark.parametrize("encoding", ["differential", "offset", "unsigned"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.bool_,
                                   np.dtype(">f8")])
@pytest.mark.parametrize("weights", ["inline", "npz"])
def test_round_trip_exact(tmp_path, encoding, dtype, weights):
    d = small_design(encoding, dtype)
    if np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize == 8:  # long reprs, subnormal
        d.tile_weights["fc1/T0_0"][0, :3] = [1 / 3, 5e-324, np.nextafter(1.0, 2.0)]
    path = write_json(d, tmp_path / "d.json", weights=weights)
    doc = validate(path)
    assert doc["schema_version"] == 2
    assert (doc["weights_file"] is None) == (weights == "inline")
    assert [r["storage"] for r in doc["row_signals"]] == [weights] * 2
    assert_same(d, read_json(path))


def test_file_layout(tmp_path):
    d = small_design()
    doc = validate(write_json(d, tmp_path / "d.json"))
    assert doc["crossbar"] == {"rows": 8, "cols": 8, "encoding": "differential", "logical_cols": 4}
    assert doc["technology"]["g_min_siemens"] == 1e-6
    assert doc["units"][1]["weights"]["dtype"] == "<f4"
    tech = {"cell_area_um2": np.float64(0.0041), "levels": np.int64(16), "v": np.ones(2)}
    doc = validate(write_json(d, tmp_path / "t.json", technology=tech))
    assert doc["technology"] == {"cell_area_um2": 0.0041, "levels": 16, "v": [1.0, 1.0]}
    assert [u["name"] for u in doc["units"]] == [u.name for u in d.units]
    assert [n["id"] for n in doc["nets"]] == list(range(len(d.nets)))
    assert sum(n["width"] for n in doc["nets"]) == d.total_wires
    # one unit / net per line: the file is written line by line
    lines = (tmp_path / "d.json").read_text().splitlines()
    assert len(lines) == 8 + len(d.units) + 2 + len(d.nets) + 2 + len(d.row_signals) + 2
    assert doc["row_signals"][1] == {
        "matrix": "fc2", "producers": ["fc1/A0", "fc1/A1", "fc1/A2"], "rows": 12, "blocks": 2,
        "storage": "inline", "source": [0] * 4 + [1] * 4 + [2] * 4,
        "live": [[False, False]] * 8 + [[True, True]] * 4}


def test_auto_switches_to_npz_for_large_designs(tmp_path):
    rng = np.random.default_rng(1)
    big = chain_design({"fc": rng.normal(size=(300, 300)).astype(np.float32)}, 64, 64)
    path = write_json(big, tmp_path / "big.json")
    doc = validate(path)
    assert doc["weights_file"]["path"] == "big.weights.npz"
    assert (tmp_path / "big.weights.npz").is_file()
    assert path.stat().st_size < 100_000  # the weights are not inline
    assert_same(big, read_json(path))
    small = tmp_path / "small.json"
    write_json(small_design(), small)
    assert not (tmp_path / "small.weights.npz").exists()


def test_weights_none_and_designs_without_weights(tmp_path):
    d = small_design()
    path = write_json(d, tmp_path / "d.json", weights="none")
    validate(path)
    back = read_json(path)
    assert back.units == d.units and back.nets == d.nets and back.tile_weights == {}
    assert_same(dataclasses.replace(d, tile_weights={}), back)  # row signals kept
    path2 = write_json(back, tmp_path / "d2.json")
    assert read_json(path2).tile_weights == {}
    # weights='npz' without weights: the npz holds the row signals alone
    path3 = write_json(back, tmp_path / "d3.json", weights="npz")
    assert_same(back, read_json(path3))


def test_placement_and_routes_round_trip(tmp_path):
    d = small_design()
    sites = {u.name: (i % 4, i // 4) for i, u in enumerate(d.units)}
    routes = {0: [(0, 0), (1, 0), (1, 1)],  # a path of gcells
              (d.nets[1].src, d.nets[1].dst): [((0, 0), (0, 1)), ((0, 1), (1, 1))],  # edges
              d.nets[2]: np.array([[2, 2], [2, 3]])}

    slots = {u.name: i % 2 for i, u in enumerate(d.units)}

    class Placement:  # duck-typed like mapping.placement.Placement
        positions, slots = sites, {u.name: i % 2 for i, u in enumerate(d.units)}

    path = write_json(d, tmp_path / "d.json", placement=Placement(), routing=routes)
    doc = validate(path)
    assert doc["units"][1]["site"] == [1, 0] and doc["units"][1]["slot"] == 1
    assert doc["nets"][0]["route"] == [[0, 0], [1, 0], [1, 1]]
    assert doc["nets"][1]["route"] == [[[0, 0], [0, 1]], [[0, 1], [1, 1]]]
    assert "route" not in doc["nets"][3]
    nl = read_netlist(path)
    assert nl.sites == sites and nl.slots == slots
    assert nl.routes == {0: [(0, 0), (1, 0), (1, 1)], 1: [((0, 0), (0, 1)), ((0, 1), (1, 1))],
                         2: [(2, 2), (2, 3)]}
    # a read-back netlist re-exports with its own placement and routes
    path2 = write_json(nl, tmp_path / "d2.json")
    assert json.loads(path2.read_text())["units"] == doc["units"]
    assert json.loads(path2.read_text())["nets"] == doc["nets"]


def test_accepts_mapped_network_like_objects(tmp_path):
    class Mapped:
        design = small_design()

    assert_same(Mapped.design, read_json(write_json(Mapped(), tmp_path / "m.json")))
    with pytest.raises(TypeError, match="Design"):
        write_json({"units": []}, tmp_path / "x.json")


def test_clear_errors(tmp_path):
    d = small_design()
    with pytest.raises(NetlistError, match="weights="):
        write_json(d, tmp_path / "a.json", weights="zip")
    with pytest.raises(NetlistError, match="not in the design"):
        write_json(d, tmp_path / "a.json", placement={"nope": (0, 0)})
    with pytest.raises(NetlistError, match=r"\(x, y\)"):
        write_json(d, tmp_path / "a.json", placement={"IN": (0, 0, 1)})
    with pytest.raises(NetlistError, match="route key"):
        write_json(d, tmp_path / "a.json", routing={999: [(0, 0)]})
    nan = small_design(dtype=np.float64)
    nan.tile_weights["fc1/T0_0"][0, 0] = np.nan
    for mode in ("inline", "npz"):
        with pytest.raises(NetlistError, match="NaN"):
            write_json(nan, tmp_path / "a.json", weights=mode)
    assert not list(tmp_path.iterdir())  # nothing half-written
    wide = Design([Unit("IN", "input"), Unit("m/T0_0", "tile", "m", (0, 0))],
                  [Net("IN", "m/T0_0", 1, "m", "input")], 8, 8, "differential",
                  {"m/T0_0": np.ones((8, 5))})
    with pytest.raises(NetlistError, match=r"at most \(8, 4\)"):
        write_json(wide, tmp_path / "w.json")
    with pytest.raises(NetlistError, match="without whitespace"):
        write_json(Design([Unit("my input", "input")], [], 8, 8), tmp_path / "w.json")
    dangling = Design([Unit("IN", "input")], [Net("IN", "x", 1, "m", "input")], 8, 8)
    with pytest.raises(NetlistError, match="unknown unit 'x'"):
        write_json(dangling, tmp_path / "w.json")


def test_read_errors(tmp_path):
    path = write_json(small_design(), tmp_path / "d.json", weights="npz")
    doc = json.loads(path.read_text())
    (tmp_path / "v1.json").write_text(json.dumps({**doc, "schema_version": 1}))
    with pytest.raises(NetlistError, match="schema_version 1; .*export the design again"):
        read_json(tmp_path / "v1.json")
    (tmp_path / "v3.json").write_text(json.dumps({**doc, "schema_version": 3}))
    with pytest.raises(NetlistError, match="schema_version 3; .*upgrade group-scissor"):
        read_json(tmp_path / "v3.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(NetlistError, match="not a group-scissor netlist"):
        read_json(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text(path.read_text()[:200])
    with pytest.raises(NetlistError, match="cannot read"):
        read_json(tmp_path / "broken.json")
    for i, broken in enumerate((5, [1])):  # a unit that is not an object
        (tmp_path / f"unit{i}.json").write_text(json.dumps({**doc, "units": [broken]}))
        with pytest.raises(NetlistError, match="does not follow netlist schema"):
            read_json(tmp_path / f"unit{i}.json")
    del doc["nets"][0]["src"]
    (tmp_path / "nosrc.json").write_text(json.dumps(doc))
    with pytest.raises(NetlistError, match="does not follow netlist schema"):
        read_json(tmp_path / "nosrc.json")
    np.savez(tmp_path / "d.weights.npz", t1=np.zeros(3))  # overwritten weights file
    with pytest.raises(NetlistError, match="SHA-256"):
        read_json(path)
    (tmp_path / "d.weights.npz").unlink()
    with pytest.raises(NetlistError, match="does not exist"):
        read_json(path)


def test_failed_write_keeps_the_old_files(tmp_path, monkeypatch):
    path = write_json(small_design(), tmp_path / "d.json", weights="npz")
    before = path.read_bytes(), (tmp_path / "d.weights.npz").read_bytes()
    with pytest.raises(NetlistError, match="technology"):
        write_json(small_design(seed=1), path, weights="npz", technology={"bad": object()})
    import netlists.json_io

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(netlists.json_io, "_weights_entry", fail)  # after the npz is written
    with pytest.raises(OSError, match="disk full"):
        write_json(small_design(seed=1), path, weights="npz")
    monkeypatch.undo()
    assert (path.read_bytes(), (tmp_path / "d.weights.npz").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json", "d.weights.npz"]
    read_json(path)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), k=st.integers(1, 30), m=st.integers(1, 12),
       rows=st.sampled_from([4, 8, 16]), cols=st.sampled_from([2, 4, 9]),
       encoding=st.sampled_from(["differential", "offset", "unsigned"]),
       density=st.floats(0.05, 1.0), seed=st.integers(0, 2**31 - 1),
       weights=st.sampled_from(["inline", "npz"]))
def test_round_trip_property(tmp_path, n, k, m, rows, cols, encoding, density, seed, weights):
    rng = np.random.default_rng(seed)
    mats = {f"l{i}": (rng.normal(size=s) * (rng.random(s) < density)).astype(np.float32)
            for i, s in enumerate([(n, k), (k, m)])}
    d = chain_design(mats, rows, cols, encoding)
    path = write_json(d, tmp_path / "p.json", weights=weights)
    validate(path)
    assert_same(d, read_json(path))


def test_real_placement_and_routing(tmp_path):
    placement = pytest.importorskip("mapping.placement", reason="placer not available")
    routing = pytest.importorskip("mapping.routing", reason="router not available")
    d = small_design()
    pl = placement.place(d, placement.PlaceConfig(method="fast"))
    rt = routing.route(d, pl, routing.RouteConfig(method="negotiated", net_model="two-pin"))
    path = write_json(d, tmp_path / "pr.json", placement=pl, routing=rt)
    doc = validate(path)
    assert doc["layout"]["grid_sites"] == list(pl.grid_sites)
    assert doc["layout"]["grid_gcells"] == list(rt.grid_gcells)
    nl = read_netlist(path)
    assert nl.sites == pl.positions and nl.slots == pl.slots
    assert sorted(nl.routes) == list(range(len(d.nets)))
    for i, r in nl.routes.items():
        steps = np.abs(np.diff(np.array(r), axis=0)).sum(axis=1)
        assert np.all(steps == 1)  # a 4-connected gcell path
        assert r[0] == tuple(rt.pins[i, 0]) and r[-1] == tuple(rt.pins[i, 1])
    wirelength = sum(n.width * (len(nl.routes[i]) - 1) for i, n in enumerate(d.nets))
    assert wirelength == rt.wirelength
    # re-exported from the read-back netlist: identical file body
    again = write_json(nl, tmp_path / "again.json")
    assert again.read_text() == path.read_text()
    # multi-pin nets: each net's route is its branch of the tree, from producer to tile
    tree = routing.route(d, pl, routing.RouteConfig(method="negotiated"))
    nl = read_netlist(write_json(d, tmp_path / "tree.json", placement=pl, routing=tree))
    for i in range(len(d.nets)):
        assert [tuple(g) for g in tree.net_path(i).tolist()] == list(nl.routes[i])
