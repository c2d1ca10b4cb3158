"""JSON netlist: lossless round trip, schema validation, placement/routes, clear errors."""

import dataclasses
import json
import os
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
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
    assert (a.weight_bits, a.cell_bits, a.slices) == (b.weight_bits, b.cell_bits, b.slices)
    assert a.tile_weights.keys() == b.tile_weights.keys()
    for k, w in a.tile_weights.items():
        assert b.tile_weights[k].dtype == w.dtype
        assert b.tile_weights[k].shape == w.shape
        bits = [np.ascontiguousarray(x).view(np.uint8) for x in (b.tile_weights[k], w)]
        assert np.array_equal(*bits), k
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


def test_code_and_schema_agree():
    from mapping.spec import MAX_SIDE
    from netlists import _common, json_io, json_schema

    defs = SCHEMA["$defs"]
    assert SCHEMA["properties"]["schema_version"]["const"] == json_io.SCHEMA_VERSION
    assert tuple(defs["weights"]["properties"]["dtype"]["enum"]) == _common.WEIGHT_DTYPES
    assert defs["side"]["maximum"] == MAX_SIDE and defs["index"]["maximum"] == _common.MAX_INDEX
    assert defs["name"]["maxLength"] == _common.MAX_NAME
    assert SCHEMA["properties"]["crossbar"]["properties"]["encoding"]["enum"] == list(
        _common.ENCODINGS)
    assert defs["net"]["properties"]["kind"]["enum"] == list(_common.NET_KINDS)
    assert defs["key"]["pattern"] == f"^{json_schema.ARRAY_KEY.pattern}$"
    npz = SCHEMA["properties"]["weights_file"]["properties"]["path"]["pattern"]
    assert npz == "^" + json_io.NPZ_NAME.pattern.replace("\\x00-\\x1f", "\\u0000-\\u001f") + "$"


@pytest.mark.parametrize("encoding", ["differential", "offset", "unsigned"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, np.int32, np.bool_,
                                   np.dtype(">f8")])
@pytest.mark.parametrize("weights", ["inline", "npz"])
def test_round_trip_exact(tmp_path, encoding, dtype, weights):
    d = small_design(encoding, dtype)
    if np.dtype(dtype).kind == "f" and np.dtype(dtype).itemsize == 8:  # long reprs, subnormal
        w = d.tile_weights["fc1/T0_0"] = d.tile_weights["fc1/T0_0"].copy()  # views are read-only
        w[0, :3] = [1 / 3, 5e-324, np.nextafter(1.0, 2.0)]
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
    w = nan.tile_weights["fc1/T0_0"] = nan.tile_weights["fc1/T0_0"].copy()
    w[0, 0] = np.nan
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


BITS = st.one_of(st.none(), st.tuples(st.integers(2, 32), st.one_of(st.none(),
                                                                     st.integers(1, 32))))
"""(weight_bits, cell_bits) of a design, or None: analog weights."""


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 40), k=st.integers(1, 30), m=st.integers(1, 12),
       rows=st.sampled_from([4, 8, 16]), cols=st.sampled_from([2, 4, 9]),
       encoding=st.sampled_from(["differential", "offset", "unsigned"]),
       density=st.floats(0.05, 1.0), seed=st.integers(0, 2**31 - 1),
       weights=st.sampled_from(["inline", "npz"]), bits=BITS)
def test_round_trip_property(tmp_path, n, k, m, rows, cols, encoding, density, seed, weights,
                             bits):
    rng = np.random.default_rng(seed)
    mats = {f"l{i}": (rng.normal(size=s) * (rng.random(s) < density)).astype(np.float32)
            for i, s in enumerate([(n, k), (k, m)])}
    wb, cb = bits or (None, None)
    d = chain_design(mats, rows, cols, encoding, weight_bits=wb, cell_bits=cb)
    path = write_json(d, tmp_path / "p.json", weights=weights)
    doc = validate(path)
    assert doc["crossbar"].get("weight_bits") == wb and doc["crossbar"].get("cell_bits") == cb
    assert_same(d, read_json(path))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bits=BITS, weights=st.sampled_from(["inline", "npz", "none"]))
def test_weight_precision_round_trips_to_the_same_slices(tmp_path, bits, weights):
    """weight_bits / cell_bits survive write -> read (and a second write: routed.json and
    chip.json are written from a read design), giving the spec the same slices."""
    from group_scissor.physical import spec_of
    from mapping.spec import CrossbarSpec

    wb, cb = bits or (None, None)
    d = dataclasses.replace(small_design(), weight_bits=wb, cell_bits=cb)
    want = CrossbarSpec(8, 8, weight_bits=wb, cell_bits=cb)
    first = read_netlist(write_json(d, tmp_path / "a.json", weights=weights))
    second = read_netlist(write_json(first, tmp_path / "b.json", weights=weights))
    for back in (first, second):
        assert (back.design.weight_bits, back.design.cell_bits) == (wb, cb)
        assert back.design.slices == want.slices == spec_of(back).slices
        assert back.design.n_crossbars == want.slices * sum(u.kind == "tile" for u in d.units)
    doc = validate(tmp_path / "a.json")
    assert doc["crossbar"].get("slices") == (want.slices if cb is not None else None)


def test_files_without_weight_precision_read_as_analog(tmp_path):
    """A file written before weight_bits/cell_bits existed (schema 2 without them) reads as
    analog weights; an unsliced design writes the same crossbar object as then."""
    path = write_json(small_design(), tmp_path / "d.json")
    doc = validate(path)
    assert set(doc["crossbar"]) == {"rows", "cols", "encoding", "logical_cols"}
    back = read_json(path)
    assert (back.weight_bits, back.cell_bits, back.slices) == (None, None, 1)
    quantized = write_json(dataclasses.replace(small_design(), weight_bits=6), tmp_path / "q.json")
    assert validate(quantized)["crossbar"]["weight_bits"] == 6
    assert "cell_bits" not in validate(quantized)["crossbar"]
    assert read_json(quantized).slices == 1


@pytest.mark.parametrize("edit, match", [
    (lambda x: x.update(cell_bits=2), "weight_bits"),  # cell_bits alone
    (lambda x: x.update(weight_bits=1), "less than the minimum"),
    (lambda x: x.update(weight_bits=8, cell_bits=0), "less than the minimum"),
    (lambda x: x.update(weight_bits=8, cell_bits=2, slices=3), "slices is 3"),
    (lambda x: x.update(weight_bits=8, slices=1), "cell_bits"),  # slices without cell_bits
    (lambda x: x.update(weight_bits=8.0), "not of type"),
])
def test_bad_weight_precision_is_refused(tmp_path, edit, match):
    path = write_json(small_design(), tmp_path / "d.json")
    doc = json.loads(path.read_text())
    edit(doc["crossbar"])
    path.write_text(json.dumps(doc))
    with pytest.raises(NetlistError, match=match):
        read_json(path)


@pytest.mark.parametrize("bits, match", [
    ((None, 2), "set design.weight_bits too"), ((1, None), "must be >= 2"), ((8, 0), "1..32"),
    ((8, True), "1..32")])
def test_writer_refuses_bad_weight_precision(tmp_path, bits, match):
    d = dataclasses.replace(small_design(), weight_bits=bits[0], cell_bits=bits[1])
    with pytest.raises(NetlistError, match=match):
        write_json(d, tmp_path / "d.json")
    assert not (tmp_path / "d.json").exists()


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


# ------------------------------------------------------------ the mapped design as flow artifact

@pytest.fixture(scope="module")
def lenet_designs() -> dict[str, Design]:
    """LeNet mapped dense, compressed (rows of a row block split between column blocks, so the
    router's tree widths depend on row_signals) and with a low-rank fc1."""
    torch = pytest.importorskip("torch")
    import mapping
    import models
    import models.lowrank

    spec = mapping.CrossbarSpec(64, 64, "differential")
    torch.manual_seed(0)
    dense = models.get("lenet")
    compressed = models.get("lenet")
    with torch.no_grad():
        col = torch.arange(800) % 64
        compressed.fc1.weight[0:32, col >= 32] = 0  # column block 0: rows 0..31 of each block
        compressed.fc1.weight[32:64, col < 32] = 0  # column block 1: rows 32..63
        compressed.conv2.weight[:25, :10] = 0
    lowrank = models.lowrank.to_low_rank(models.get("lenet"), ["fc1"], rank=8)
    return {name: mapping.map_model(m, spec, (1, 28, 28)).design
            for name, m in (("dense", dense), ("compressed", compressed), ("lowrank", lowrank))}


@pytest.mark.parametrize("name, weights", [("dense", "auto"), ("compressed", "npz"),
                                           ("compressed", "none"), ("lowrank", "inline")])
def test_mapped_lenet_round_trip_routes_identically(tmp_path, lenet_designs, name, weights):
    import warnings

    import mapping

    d = lenet_designs[name]
    assert d.row_signals and d.tile_weights
    path = write_json(d, tmp_path / "lenet.json", weights=weights)
    doc = validate(path)
    want = "inline" if weights in ("inline", "none") else "npz"
    assert {r["storage"] for r in doc["row_signals"]} == {want}
    back = read_json(path)
    assert_same(d if weights != "none" else dataclasses.replace(d, tile_weights={}), back)
    pl = mapping.place(d, mapping.PlaceConfig(method="fast"))
    cfg = mapping.RouteConfig(method="negotiated")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "design has no row_signals" fallback
        a, b = mapping.route(d, pl, cfg), mapping.route(back, pl, cfg)
    assert (a.wirelength, a.overflow, a.lower_bound, a.signal_bound) == (
        b.wirelength, b.overflow, b.lower_bound, b.signal_bound)
    assert mapping.place(back, mapping.PlaceConfig(method="fast")).positions == pl.positions
    if name == "compressed":  # the file's row signals matter: without them the trees differ
        with pytest.warns(UserWarning, match="no row_signals"):
            c = mapping.route(dataclasses.replace(back, row_signals={}), pl, cfg)
        assert c.wirelength != a.wirelength


def test_row_signals_must_agree_with_the_nets(tmp_path):
    d = small_design()
    rs = d.row_signals["fc1"]
    live = rs.live.copy()
    live[0, 0] = not live[0, 0]
    for bad, match in (
            (dataclasses.replace(rs, live=live), "disagrees with the input nets"),
            (dataclasses.replace(rs, source=rs.source + 1), r"source indices must be in 0\.\.0"),
            (dataclasses.replace(rs, live=rs.live[:5]), r"\(N,\) int array and live an \(N, B\)"),
            (dataclasses.replace(rs, producers=("X",)), "not one of row_signals"),
            (dataclasses.replace(rs, live=rs.live.astype(int)), "bool")):
        broken = dataclasses.replace(d, row_signals={**d.row_signals, "fc1": bad})
        with pytest.raises(NetlistError, match=match):
            write_json(broken, tmp_path / "x.json")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------ the reader refuses bad files

def _bad_file(tmp_path, edit, weights="inline", text_edit=None) -> Path:
    path = write_json(small_design(), tmp_path / "d.json", weights=weights)
    doc = json.loads(path.read_text())
    if edit is not None:
        edit(doc)
    text = json.dumps(doc)
    if text_edit is not None:
        text = text_edit(text)
    path.write_text(text)
    return path


def _width(value):
    return lambda d: d["nets"][0].update(width=value)


@pytest.mark.parametrize("edit, text_edit, match", [
    (lambda d: d["crossbar"].update(rows=1e308), None, r"\$\.crossbar\.rows: 1e\+308 is not of"),
    (lambda d: d["crossbar"].update(rows=10**300), None, r"\$\.crossbar\.rows: .* greater than"),
    (lambda d: d["crossbar"].update(cols=0), None, r"\$\.crossbar\.cols: 0 is less than"),
    (lambda d: d["crossbar"].update(logical_cols=3), None, "logical_cols is 3"),
    (_width(True), None, r"\$\.nets\[0\]\.width: True is not of type 'integer'"),
    (_width(2.5), None, r"\$\.nets\[0\]\.width: 2\.5 is not of type 'integer'"),
    (_width(2.0), None, r"\$\.nets\[0\]\.width: 2\.0 is not of type 'integer'"),
    (_width(1e308), None, r"\$\.nets\[0\]\.width"),
    (_width("@INF@"), lambda t: t.replace('"@INF@"', "Infinity"), "Infinity is not a number"),
    (_width("@INF@"), lambda t: t.replace('"@INF@"', "1e999"), "1e999 overflows a float"),
    (_width(9), None, r"net 0 \(IN -> fc1/T0_0\): width 9 exceeds the crossbar's 8 rows"),
    (lambda d: d["nets"][-1].update(width=5), None, "width 5 exceeds the crossbar's 4 logical"),
    (_width(4097), None, r"\$\.nets\[0\]\.width: 4097 is greater than the maximum of 4096"),
    (lambda d: d["nets"][0].update(kind="bus"), None, r"\$\.nets\[0\]\.kind: 'bus' is not one of"),
    (lambda d: d["nets"][0].update(kind="output"), None, "from a unit of kind 'input' to one of kind 'tile'"),
    (lambda d: d["nets"][0].update(dst="nope"), None, "names unknown unit 'nope'"),
    (lambda d: d["nets"][0].update(id=7), None, "net ids must equal their positions"),
    (lambda d: d["nets"][0].update(foo=1), None, r"\$\.nets\[0\]: Additional properties"),
    (lambda d: d["units"][1]["weights"]["data"][0].__setitem__(0, "@NAN@"),
     lambda t: t.replace('"@NAN@"', "NaN"), "NaN is not a number"),
    (lambda d: d["units"][1]["weights"]["data"][0].__setitem__(0, 1e300), None,
     r"beyond the range of dtype <f4"),
    (lambda d: d["units"][1]["weights"]["data"][0].__setitem__(0, True), None,
     r"\$\.units\[1\]\.weights\.data\[0\]\[0\]: True is not of type 'number'"),
    (lambda d: d["units"][1]["weights"]["data"].pop(), None, "data must be 8 rows of 4 values"),
    (lambda d: d["units"][1]["weights"].update(shape=[9, 4]), None, r"at most \(8, 4\)"),
    (lambda d: d["units"][1]["weights"].update(dtype="<f99999"), None,
     r"\$\.units\[1\]\.weights\.dtype: '<f99999' is not one of"),
    (lambda d: d["units"][1]["weights"].update(dtype="V100000000"), None, "'V100000000' is not one"),
    (lambda d: d["units"][2].update(name=d["units"][1]["name"]), None, "names must be unique"),
    (lambda d: d["units"][1].update(name="a b"), None, r"\$\.units\[1\]\.name: 'a b' does not"),
    (lambda d: d["units"][1].update(kind="crossbar"), None, r"\$\.units\[1\]\.kind"),
    (lambda d: d["units"][0].update(weights=d["units"][1]["weights"]), None, r"\$\.units\[0\]"),
    (lambda d: d["row_signals"][0]["live"][3].__setitem__(0, True), None,  # row 3 is zero
     r"row_signals\['fc1'\] disagrees with the input nets"),
    (lambda d: d["row_signals"][0].update(rows=21), None, "source must hold 21 indices"),
    (lambda d: d["row_signals"].append(d["row_signals"][0]), None, "appear twice"),
    (lambda d: d["row_signals"][1]["source"].__setitem__(0, 9), None, r"source indices"),
    (lambda d: d.pop("row_signals"), None, r"\$: 'row_signals' is a required property"),
    (lambda d: d.update(weights_file={"path": "../secret.npz", "sha256": "0" * 64}), None,
     r"\$\.weights_file\.path: '\.\./secret\.npz' does not match"),
    (lambda d: d.update(weights_file={"path": "/etc/secret.npz", "sha256": "0" * 64}), None,
     r"\$\.weights_file\.path: '/etc/secret\.npz' does not match"),
    (lambda d: d.update(weights_file={"path": "/etc/passwd", "sha256": "0" * 64}), None,
     r"\$\.weights_file\.path"),
    (lambda d: d["technology"].update(x=0), lambda t: t.replace("0}", "[" * 100_000 + "]" * 100_000
                                                               + "}", 1), "nest too deeply"),
    (lambda d: d["technology"].update(x="@D@"), lambda t: t.replace('"@D@"', "[" * 40 + "]" * 40),
     "nest deeper than 32 levels"),
    (lambda d: d["crossbar"].update(rows="@BIG@"), lambda t: t.replace('"@BIG@"', "9" * 5000),
     "an integer has more than 4300 digits"),
    (lambda d: d["technology"].update(x="@BIG@"), lambda t: t.replace('"@BIG@"', "9" * 5000),
     "an integer has more than 4300 digits"),
    (None, lambda t: t.replace('"format":', '"format": 0, "format":'), "'format' appears twice"),
    (lambda d: (d["layout"].update(grid_gcells=[4, 4]), d["nets"][0].update(route=[[0, 0], [4, 0]])),
     None, r"route of net 0 passes gcell \(4, 0\), outside the 4x4 gcell grid"),
    (lambda d: d["nets"][0].update(route=[[0, -1]]), None, r"\$\.nets\[0\]\.route"),
    (lambda d: (d["layout"].update(grid_sites=[2, 2]), d["units"][0].update(site=[2, 0])), None,
     r"site \(2, 0\) of unit 'IN' lies outside the 2x2 site grid"),
    (lambda d: (d["layout"].update(output_units_per_site=2), d["units"][0].update(slot=2)), None,
     r"slot 2 of unit 'IN'"),
    (lambda d: d["layout"].update(gcell_um=0), None, r"\$\.layout\.gcell_um"),
])
def test_reader_refuses_bad_files(tmp_path, edit, text_edit, match):
    path = _bad_file(tmp_path, edit, text_edit=text_edit)
    with pytest.raises(NetlistError, match=match):
        read_netlist(path)


def test_reader_refuses_bad_weights_files(tmp_path):
    path = write_json(small_design(), tmp_path / "d.json", weights="npz")
    good = path.read_text()
    doc = json.loads(good)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.npz").write_bytes((tmp_path / "d.weights.npz").read_bytes())
    (tmp_path / "link.npz").symlink_to(outside / "secret.npz")
    path.write_text(json.dumps({**doc, "weights_file": {**doc["weights_file"],
                                                        "path": "link.npz"}}))
    with pytest.raises(NetlistError, match="links outside the netlist's folder"):
        read_netlist(path)
    # an npz array whose header differs from the declared shape is not loaded
    np.savez(tmp_path / "other.weights.npz", t1=np.zeros((10**4, 10**4), dtype=np.bool_)[:1])
    sha = netlists.json_io._sha256(tmp_path / "other.weights.npz")
    path.write_text(json.dumps({**doc, "weights_file": {"path": "other.weights.npz",
                                                        "sha256": sha}}))
    with pytest.raises(NetlistError, match=r"array 't1' of other.weights.npz: it holds bool"):
        read_netlist(path)
    for key, match in (("t99", "holds no array 't99'"), ("../t1", r"\$\.units\[1\]\.weights")):
        bad = json.loads(good)
        bad["units"][1]["weights"]["key"] = key
        path.write_text(json.dumps(bad))
        with pytest.raises(NetlistError, match=match):
            read_netlist(path)
    # corrupted archives (with a matching SHA-256): refused, or read if the damage is harmless
    rng = np.random.default_rng(0)
    npz = (tmp_path / "d.weights.npz").read_bytes()
    for i in range(60):
        b = bytearray(npz)
        if i % 3 == 0:
            b = b[:rng.integers(len(b))]
        for _ in range(1 + i % 4):
            if b:
                b[rng.integers(len(b))] = rng.integers(256)
        (tmp_path / "c.weights.npz").write_bytes(bytes(b))
        bad = json.loads(good)
        bad["weights_file"] = {"path": "c.weights.npz",
                               "sha256": netlists.json_io._sha256(tmp_path / "c.weights.npz")}
        path.write_text(json.dumps(bad))
        try:
            read_netlist(path)
        except NetlistError:
            pass
    (tmp_path / "d.weights.npz").write_bytes(b"not a zip")
    bad = json.loads(good)
    bad["weights_file"]["sha256"] = netlists.json_io._sha256(tmp_path / "d.weights.npz")
    path.write_text(json.dumps(bad))
    with pytest.raises(NetlistError, match="is not an .npz archive"):
        read_netlist(path)


def test_size_cap_and_non_files(tmp_path, monkeypatch):
    import netlists.json_io

    path = write_json(small_design(), tmp_path / "d.json")
    monkeypatch.setattr(netlists.json_io, "MAX_JSON_BYTES", 1000)
    with pytest.raises(NetlistError, match="more than a netlist may"):
        read_netlist(path)
    with pytest.raises(NetlistError, match="exceeds .*use weights='npz'"):
        write_json(small_design(), tmp_path / "e.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.json"]
    with pytest.raises(NetlistError, match="not a regular file"):
        read_netlist(tmp_path)
    with pytest.raises(NetlistError, match="cannot read JSON netlist"):
        read_netlist(tmp_path / "missing.json")


def test_writer_refuses_what_the_reader_would(tmp_path):
    d = small_design()
    cases = [
        (dataclasses.replace(d, crossbar_rows=5000), "must be whole numbers in 1..4096"),
        (dataclasses.replace(d, crossbar_rows=8.0), "must be whole numbers"),
        (dataclasses.replace(d, nets=[dataclasses.replace(d.nets[0], width=2.5)] + d.nets[1:]),
         "width 2.5 must be a whole number"),
        (dataclasses.replace(d, nets=[dataclasses.replace(d.nets[0], width=True)] + d.nets[1:]),
         "width True must be a whole number"),
        (dataclasses.replace(d, nets=[dataclasses.replace(d.nets[0], kind="bus")] + d.nets[1:]),
         "kind 'bus'"),
        (dataclasses.replace(d, units=d.units + [Unit("naïve", "input")]), "printable ASCII"),
        (dataclasses.replace(d, tile_weights={**d.tile_weights, "fc1/T0_0": np.zeros((2, 2),
                                                                                     np.float128)}),
         "dtype float128"),
        (dataclasses.replace(d, tile_weights={**d.tile_weights, "fc1/T0_0": np.zeros((0, 2))}),
         r"from \(1, 1\)"),
    ]
    for bad, match in cases:
        with pytest.raises(NetlistError, match=match):
            write_json(bad, tmp_path / "x.json")
    with pytest.raises(NetlistError, match=r"\(x, y\) pair of whole numbers"):
        write_json(d, tmp_path / "x.json", placement={"IN": (0.5, 0)})
    with pytest.raises(NetlistError, match=r"\(x, y\) pair of whole numbers"):
        write_json(d, tmp_path / "x.json", routing={0: [(0, 0), (-1, 0)]})
    deep: dict = {}
    for _ in range(40):
        deep = {"x": deep}
    with pytest.raises(NetlistError, match="technology nests deeper"):
        write_json(d, tmp_path / "x.json", technology=deep)

    class Placed:  # a placement whose layout puts IN outside its own grid
        positions, slots, grid_sites = {"IN": (3, 0)}, {}, (2, 2)

    with pytest.raises(NetlistError, match="outside the 2x2 site grid"):
        write_json(d, tmp_path / "x.json", placement=Placed())
    with pytest.raises(NetlistError, match="weights file would be named"):
        write_json(d, tmp_path / "a:b.json", weights="npz")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------ property: mutated files

RAW = ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9" * 5000, "-" + "9" * 4300,
       "[" * 5000 + "]" * 5000, "[" * 40 + "]" * 40, '{"a": ' * 40 + "0" + "}" * 40]
"""JSON text json.dumps cannot produce, spliced in for a placeholder string."""
STRINGS = ["input", "tile", "output", "inline", "npz", "<f4", ">f8", "|b1", "<i8", "<u8", "<f16",
           "<f99999", "V100000000", "O", "<c16", "../x.npz", "/etc/passwd", "x.npz",
           "d.weights.npz", "IN", "fc1/T0_0", "fc1/A0", "fc2", "fc1", "t1", "r0_live", "", " ",
           "a b", "\u00e9", "\ud800", "steiner", "two-pin"]
LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 70), st.integers(-2**70, 2**70),
    st.sampled_from([2**31 - 1, 2**31, 2**63, 2**64, 4096, 4097, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 2.5, 0.5, 1.0, 5e-324, -0.0]),
    st.sampled_from(STRINGS), st.text(max_size=6))
VALUE = st.recursive(LEAF, lambda c: st.one_of(st.lists(c, max_size=4),
                                               st.dictionaries(st.sampled_from(STRINGS[:20])
                                                               | st.text(max_size=4), c,
                                                               max_size=4)), max_leaves=8)
KEYS = ["name", "kind", "matrix", "block", "site", "slot", "weights", "storage", "dtype", "shape",
        "data", "key", "id", "src", "dst", "width", "route", "producers", "rows", "blocks",
        "source", "live", "source_key", "live_key", "path", "sha256", "grid_gcells",
        "grid_sites", "output_units_per_site", "gcells_per_site", "gcell_um", "net_model",
        "weight_bits", "cell_bits", "slices", "x"]


@pytest.fixture(scope="module")
def mutation_bases(tmp_path_factory) -> dict[str, tuple[str, bytes | None]]:
    """Valid netlists of a small placed and routed design: inline and npz (JSON text, npz)."""
    import mapping

    d = small_design()
    pl = mapping.place(d, mapping.PlaceConfig(method="fast"))
    rt = mapping.route(d, pl, mapping.RouteConfig(method="negotiated", gcells_per_site=2))
    folder = tmp_path_factory.mktemp("bases")
    out = {}
    for weights in ("inline", "npz"):
        path = write_json(d, folder / f"{weights}.json", pl, rt, weights=weights)
        npz = folder / f"{weights}.weights.npz"
        out[weights] = (path.read_text(), npz.read_bytes() if npz.exists() else None)
    return out


def _nodes(doc: object) -> list[tuple]:
    """(parent, key) of every value inside ``doc``."""
    out, stack = [], [doc]
    while stack:
        node = stack.pop()
        for k in (list(node) if isinstance(node, dict) else range(len(node))):
            out.append((node, k))
            if isinstance(node[k], (dict, list)):
                stack.append(node[k])
    return out


def _mutate(data, doc: dict) -> list[str]:
    """Apply one random mutation somewhere in ``doc``; returns raw JSON texts to splice in."""
    raws: list[str] = []
    op = data.draw(st.sampled_from(["replace", "raw", "delete", "add", "duplicate", "dtype",
                                    "weights_file", "int", "int", "drop_optional",
                                    "precision"]))
    if op == "precision":  # weight_bits / cell_bits / slices: valid ones flow through sliced
        xb = doc.get("crossbar")
        if isinstance(xb, dict):
            for k in ("weight_bits", "cell_bits", "slices"):
                if data.draw(st.booleans()):
                    xb[k] = data.draw(st.one_of(st.integers(0, 34), LEAF))
        return raws
    if op == "dtype":
        listed = doc.get("units")  # an earlier mutation may have replaced the list
        units = [u for u in (listed if isinstance(listed, list) else [])
                 if isinstance(u, dict) and isinstance(u.get("weights"), dict)]
        if units:
            data.draw(st.sampled_from(units))["weights"]["dtype"] = data.draw(
                st.sampled_from(STRINGS[5:15]))
        return raws
    if op == "weights_file":
        path = data.draw(st.sampled_from(["../x.npz", "/etc/passwd", "/tmp/x.npz", "x.npz",
                                          "inline.weights.npz", "npz.weights.npz", "..", "."]))
        sha = data.draw(st.sampled_from(["0" * 64, "z"]))
        doc["weights_file"] = {"path": path, "sha256": sha}
        return raws
    if op == "drop_optional":  # what a valid file may lack: sites, slots, routes, weights, ...
        spots = [(p, k) for p, k in _nodes(doc) if k in ("site", "slot", "route", "weights")
                 or (p is doc.get("layout")) or (p is doc.get("row_signals"))]
        if spots:
            p, k = data.draw(st.sampled_from(spots))
            del p[k]
        return raws
    if op == "int":  # nudge a whole number anywhere (widths, sites, gcells, blocks, ids, ...)
        ints = [(p, k) for p, k in _nodes(doc) if type(p[k]) is int]
        if ints:
            p, k = data.draw(st.sampled_from(ints))
            p[k] = p[k] + data.draw(st.sampled_from([-1, 1, 2, -p[k] - 1, -p[k], 2**31, 4096]))
        return raws
    # elsewhere: a node reached by a random walk from the root (biased to the structure)
    parent, key = None, None
    node: object = doc
    while isinstance(node, (dict, list)) and node and data.draw(st.integers(0, 4)) > 0:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, data.draw(st.sampled_from(keys))
        node = node[key]
    if op in ("delete", "add", "duplicate") and isinstance(node, (dict, list)):
        if op == "delete" and node:
            k = data.draw(st.sampled_from(list(node) if isinstance(node, dict)
                                          else list(range(len(node)))))
            del node[k]
        elif op == "add":
            if isinstance(node, dict):
                node[data.draw(st.sampled_from(KEYS))] = data.draw(VALUE)
            else:
                node.insert(data.draw(st.integers(0, len(node))), data.draw(VALUE))
        elif node and isinstance(node, list):
            node.append(json.loads(json.dumps(data.draw(st.sampled_from(node)))))
        return raws
    if parent is None:
        return raws
    if op == "raw":
        raws.append(data.draw(st.sampled_from(RAW)))
        parent[key] = f"@RAW{len(raws) - 1}@"
    else:
        parent[key] = data.draw(VALUE)
    return raws


@pytest.mark.filterwarnings("ignore:design has no row_signals")  # a mutation dropped them
@settings(max_examples=int(os.environ.get("NETLIST_FUZZ_EXAMPLES", 200)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), base=st.sampled_from(["inline", "npz"]), n=st.integers(1, 3),
       net_model=st.sampled_from(["steiner", "two-pin"]))
def test_mutated_files_are_refused_or_flow_through(tmp_path_factory, mutation_bases, data, base,
                                                   n, net_model):
    """Any mutated netlist either raises NetlistError when read, or places, routes and exports
    (and re-reads equal) with no exception but a UserError."""
    import mapping
    from common.errors import UserError
    from netlists import write_spice, write_verilog
    from netlists.json_io import _load
    from netlists.json_schema import _validator, schema_problem

    text, npz = mutation_bases[base]
    doc = json.loads(text)
    raws = [r for _ in range(n) for r in _mutate(data, doc)]
    text = json.dumps(doc)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@RAW{i}@"', raw)
    folder = tmp_path_factory.mktemp("mut")
    path = folder / f"{base}.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    if npz is not None:
        (folder / f"{base}.weights.npz").write_bytes(npz)
    try:  # the fast path of schema_problem decides exactly as jsonschema alone
        parsed = _load(path)
    except NetlistError:
        parsed = None
    if isinstance(parsed, dict) and netlists.json_schema.depth_ok(parsed):
        assert (schema_problem(parsed) is None) == _validator().is_valid(parsed)
    try:
        nl = read_netlist(path)
    except NetlistError as e:
        event(f"refused: {str(e).split(': ', 1)[-1][:40]}")
        return
    event("accepted")
    d = nl.design
    try:
        pl = mapping.place(d, mapping.PlaceConfig(method="fast"))
        rt = mapping.route(d, pl, mapping.RouteConfig(method="negotiated", net_model=net_model,
                                                      gcells_per_site=2, max_iterations=3))
    except UserError:
        pl = rt = None
    again = write_json(nl, folder / "again.json")
    assert_same(d, read_json(again))
    if pl is not None:
        write_json(d, folder / "routed.json", pl, rt)
        assert_same(d, read_json(folder / "routed.json"))
    for write in (write_spice, write_verilog):
        try:
            write(d, folder / "out.txt")
        except UserError:
            pass
