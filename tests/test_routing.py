"""Global routing: exact wirelengths, forced detours and overflow, properties, reports, plots."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import ConfigError
from mapping.congestion import (
    gcell_congestion,
    overflow_lower_bound,
    plot_congestion,
    plot_floorplan,
    report,
    routes_to_dict,
    routing_area_ratio,
)
from mapping.design import Design, Net, Unit
from mapping.placement import PlaceConfig, Placement, net_arrays, place
from mapping.routing import Grid, RouteConfig, Routing, footprints, route
from tests.test_placement import chain, layered

METHODS = ("negotiated", "cpsat")


def hand_placed(sites: dict[str, tuple[int, int]], grid: tuple[int, int], k: int = 4) -> Placement:
    slots, used = {}, {}
    for name, s in sites.items():
        slots[name] = used.get(s, 0)
        used[s] = slots[name] + 1
    return Placement(sites, slots, grid, 0, "hand", "hand", k)


def two_buses(width: int = 3) -> Design:
    """P -> T and T -> A, both ``width`` wires; P and A will share a site."""
    return Design([Unit("P", "input"), Unit("m/T0_0", "tile", "m", (0, 0)),
                   Unit("m/A0", "output", "m", (0, 0))],
                  [Net("P", "m/T0_0", width, "m", "input"),
                   Net("m/T0_0", "m/A0", width, "m", "output")], 64, 64)


def walk(rt: Routing, i: int) -> None:
    """Independent check: net i's edges form a connected path from its src to its dst pin."""
    gx, gy = rt.grid_gcells
    nh = (gx - 1) * gy
    cur = tuple(rt.pins[i, 0])
    for e in rt.edges[i].tolist():
        assert 0 <= e < nh + gx * (gy - 1)
        if e < nh:
            a = (e // gy, e % gy)
            b = (a[0] + 1, a[1])
        else:
            a = divmod(e - nh, gy - 1)
            b = (a[0], a[1] + 1)
        assert cur in (a, b), f"net {i}: edge {e} does not touch gcell {cur}"
        cur = b if cur == a else a
    assert cur == tuple(rt.pins[i, 1])


@pytest.mark.parametrize("method", METHODS)
def test_three_units_in_a_row_exact(method):
    d = chain()  # IN -(8)-> T -(4)-> A
    pl = hand_placed({"IN": (0, 0), "m/T0_0": (1, 0), "m/A0": (2, 0)}, (3, 1))
    rt = route(d, pl, RouteConfig(method=method, gcells_per_site=1))
    assert (rt.wirelength, rt.lower_bound, rt.overflow) == (8 * 1 + 4 * 1, 12, 0)
    # 2 gcells per site, pins at the footprint centres: IN's (0, 0) (slot 0 of 4), the
    # tile's (3, 1), A's (4, 0)
    cfg = RouteConfig(method=method, gcells_per_site=2, gcell_um=5.0, wire_pitch_um=0.5,
                      pin_access="center")
    rt = route(d, pl, cfg)
    assert rt.pins.tolist() == [[[0, 0], [3, 1]], [[3, 1], [4, 0]]]
    assert (rt.wirelength, rt.lower_bound, rt.overflow) == (8 * 4 + 4 * 2, 40, 0)
    assert rt.routing_area_um2 == pytest.approx(40 * 0.5 * 5.0)
    assert rt.max_congestion == pytest.approx(8 / cfg.capacity)
    # footprint pins: the tile (gcells x 2..3, y 0..1) takes IN's bus at (2, 0), the gcell
    # nearest IN's centre, and sends A's from (3, 0), the one nearest A's
    rt = route(d, pl, RouteConfig(method=method, gcells_per_site=2, gcell_um=5.0,
                                  wire_pitch_um=0.5))
    assert rt.pins.tolist() == [[[0, 0], [2, 0]], [[3, 0], [4, 0]]]
    assert (rt.wirelength, rt.lower_bound, rt.signal_bound, rt.overflow) == (20, 20, 20, 0)


@pytest.mark.parametrize("method", METHODS)
def test_a_broadcast_is_one_tree(method):
    # IN sends the same 5 rows to three tiles of one row block in a row: a chain of 3 edges
    # (5 x 3 = 15) instead of three buses (5 x (1 + 2 + 3) = 30)
    d = chain(widths_in=(5,), tiles=3)
    sites = {"IN": (0, 0), "m/T0_0": (1, 0), "m/T0_1": (2, 0), "m/T0_2": (3, 0),
             "m/A0": (1, 1), "m/A1": (2, 1), "m/A2": (3, 1)}
    pl = hand_placed(sites, (4, 2), k=1)
    cfg = RouteConfig(method=method, gcells_per_site=1)
    tree, two = route(d, pl, cfg), route(d, pl, replace(cfg, net_model="two-pin"))
    assert (tree.wirelength, tree.lower_bound, tree.signal_bound) == (15 + 3 * 4, 27, 27)
    assert (two.wirelength, two.lower_bound) == (30 + 3 * 4, 42)
    assert [len(c) for c in tree.net_connections] == [1, 1, 2, 1, 3, 1]
    assert tree.net_path(4).tolist() == [[0, 0], [1, 0], [2, 0], [3, 0]]
    # without row identities, the narrower bus carries a subset of the wider one's rows
    d = chain(widths_in=(5, 2, 5), tiles=3)
    assert route(d, pl, cfg).widths[:3].tolist() == [5, 5, 5]


def test_tree_branches_carry_the_rows_used_below_them():
    # W (4 x 6) on 4 x 2 unsigned crossbars: one row block, three tiles using rows {0, 1},
    # {2} and {1, 3}. Placed in a row the tree is the chain IN -> T0 -> T1 -> T2 carrying
    # {0..3}, {1, 2, 3}, {1, 3}: 4 + 3 + 2 = 9 (the star would need 2 + 2 + 6 = 10)
    import torch
    from torch import nn

    from mapping.network import map_model
    from mapping.spec import CrossbarSpec

    lin = nn.Linear(4, 6, bias=False)
    w = torch.zeros(4, 6)  # (rows = inputs, cols = outputs)
    w[[0, 1], 0] = 1.0
    w[2, 2:4] = 1.0
    w[[1, 3], 5] = 1.0
    lin.weight.data = w.T.contiguous()
    d = map_model(lin, CrossbarSpec(4, 2, encoding="unsigned"), (4,)).design
    assert [n.width for n in d.nets if n.kind == "input"] == [2, 1, 2]
    sites = {u.name: (1 + u.block[1], 0) if u.kind == "tile" else (0, 0) for u in d.units}
    sites.update({f"linear/A{b}": (1 + b, 1) for b in range(3)})
    rt = route(d, hand_placed(sites, (4, 2), k=1), RouteConfig(gcells_per_site=1))
    inputs = [int(c[-1]) for c, n in zip(rt.net_connections, d.nets, strict=True)
              if n.kind == "input"]
    assert rt.widths[inputs].tolist() == [4, 3, 2]
    assert rt.signal_bound == 4 * 1 + 2 * 1 + 2 * 3 - 2 + 3  # rows 0, 2, 1, 3 + outputs


def test_reduction_tree_edges_carry_the_live_columns_below_them():
    # W (6 x 3) on 2 x 3 unsigned crossbars: one column block, three tiles whose live columns
    # are {0}, {1, 2} and {0, 2}. Placed in a column under A0, the reduction tree is the chain
    # T0 -> T1 -> T2 -> A0 carrying {0}, {0, 1, 2}, {0, 1, 2}: 1 + 3 + 3 = 7 (the two-pin
    # buses: 1 x 3 + 2 x 2 + 2 x 1 = 9); the bound per column meets it: 3 + 2 + 2
    import torch
    from torch import nn

    from mapping.network import map_model
    from mapping.spec import CrossbarSpec

    lin = nn.Linear(6, 3, bias=False)
    w = torch.zeros(6, 3)  # (rows = inputs, cols = outputs)
    w[[0, 1], 0] = 1.0
    w[2, 1] = w[3, 2] = 1.0
    w[4, 0] = w[5, 2] = 1.0
    lin.weight.data = w.T.contiguous()
    d = map_model(lin, CrossbarSpec(2, 3, encoding="unsigned"), (6,)).design
    assert [n.width for n in d.nets if n.kind == "output"] == [1, 2, 2]
    sites = {"IN": (0, 0), "linear/A0": (1, 3)}
    sites.update({f"linear/T{a}_0": (1, a) for a in range(3)})
    pl = hand_placed(sites, (2, 4), k=1)
    cfg = RouteConfig(gcells_per_site=1, reduction_trees=True)
    rt, two = route(d, pl, cfg), route(d, pl, replace(cfg, reduction_trees=False))
    out = [i for i, n in enumerate(d.nets) if n.kind == "output"]
    chains = [rt.net_connections[i].tolist() for i in out]
    assert [rt.widths[c].tolist() for c in chains] == [[1, 3, 3], [3, 3], [3]]
    assert chains[0][1:] == chains[1] and chains[1][1:] == chains[2]  # one tree
    assert rt.net_path(out[0]).tolist() == [[1, 0], [1, 1], [1, 2], [1, 3]]
    inputs = sum(rt.widths[rt.net_connections[i][0]] * (a + 1)
                 for a, i in enumerate(i for i, n in enumerate(d.nets) if n.kind == "input"))
    assert rt.wirelength == inputs + 7 and two.wirelength == inputs + 9
    assert (rt.signal_bound, two.signal_bound) == (inputs + 7, inputs + 9)
    # without tile weights the narrower bus is taken as a subset of the wider one's columns
    d.tile_weights = {}
    with pytest.warns(UserWarning, match="no tile weights"):
        assert route(d, pl, cfg).widths.sum() < rt.widths.sum()


def test_wide_trees_go_as_lanes_with_taps_of_their_own():
    # IN sends 5 rows to two tiles in a row; lanes of at most 2 wires: three copies of the
    # chain carrying rows {0, 1}, {2, 3}, {4}, each tapping the tiles at a gcell of its own
    d = chain(widths_in=(5,), width_out=1, tiles=2)
    pl = hand_placed({"IN": (0, 0), "m/T0_0": (1, 0), "m/T0_1": (2, 0), "m/A0": (1, 1),
                      "m/A1": (2, 1)}, (3, 2), k=1)
    cfg = RouteConfig(gcells_per_site=2, lane_wires=2, method="negotiated")
    rt = route(d, pl, cfg)
    tree = [j for j, layer in enumerate(rt.layers) if rt.widths[j] and j not in
            {int(c[-1]) for c, n in zip(rt.net_connections, d.nets, strict=True)
             if n.kind == "output"}]
    assert sorted(rt.widths[tree].tolist()) == [1, 1, 2, 2, 2, 2]
    taps = {tuple(rt.pins[j, 1]) for j in tree}
    assert len(taps) == 6  # every copy reaches every tile at a gcell of its own
    for i in range(len(d.nets)):
        nodes = rt.net_path(i)
        assert (np.abs(np.diff(nodes, axis=0)).sum(axis=1) == 1).all()
    assert rt.wirelength >= rt.signal_bound


def test_signal_bound_takes_two_thirds_of_the_spanning_tree():
    # IN in the middle of a 3 x 3 grid of tiles two gcells apart, all of one row block: the
    # half-perimeter of a signal is 4 + 4 = 8, its spanning tree 8 x 2 = 16, and any Steiner
    # tree at least ceil(2/3 x 16) = 11 (Hwang); the output buses are of length 0
    k = 8
    units = [Unit("IN", "input")] + [Unit(f"m/T0_{b}", "tile", "m", (0, b)) for b in range(k)]
    units += [Unit(f"m/A{b}", "output", "m", (0, b)) for b in range(k)]
    nets = [Net("IN", f"m/T0_{b}", 3, "m", "input") for b in range(k)]
    nets += [Net(f"m/T0_{b}", f"m/A{b}", 1, "m", "output") for b in range(k)]
    d = Design(units, nets, 64, 64)
    spots = [(x, y) for x in (0, 2, 4) for y in (0, 2, 4) if (x, y) != (2, 2)]
    sites = {"IN": (2, 2)} | {f"m/T0_{b}": p for b, p in enumerate(spots)}
    sites |= {f"m/A{b}": p for b, p in enumerate(spots)}
    rt = route(d, hand_placed(sites, (5, 5), k=2), RouteConfig(gcells_per_site=1))
    assert rt.signal_bound == 3 * 11
    assert rt.lower_bound == rt.wirelength == 3 * 16  # the spanning tree laid down


def test_route_routable_grows_whitespace_until_it_gives_up():
    from mapping.routing import route_routable, wants_trees

    d = chain()
    r = route_routable(d, PlaceConfig(method="fast"), RouteConfig(gcells_per_site=2),
                       site_area_um2=100.0)
    assert r.routable and not r.trees and len(r.steps) == 1
    w, h = r.placement.grid_sites
    assert r.die_area_um2 == w * h * 100.0 and r.crossbar_area_um2 == 100.0
    assert r.to_dict()["grid_area_um2"] == w * h * (2 * 10.0) ** 2
    # 50 wires out of a one-gcell footprint with one track per edge: 46 cannot leave,
    # whatever the whitespace
    d = chain(widths_in=(50,))
    r = route_routable(d, PlaceConfig(method="fast"),
                       RouteConfig(gcells_per_site=1, tracks_per_gcell_edge=1))
    assert not r.routable and r.routing.overflow >= 46
    assert [s["whitespace_frac"] for s in r.steps] == [0.05, 0.15, 0.3, 0.6, 1.0]
    # trees on arrays for big designs only
    assert not wants_trees(chain(), RouteConfig())
    assert wants_trees(layered([(40, 26)], [8]), RouteConfig())
    r = route_routable(layered([(3, 4)], [8, 40]), None, RouteConfig(), trees=True)
    assert r.trees and r.routing.config.reduction_trees and r.placement.status == "arrays"


@pytest.mark.parametrize("method", METHODS)
def test_starved_edges_force_the_shortest_detour(method):
    # both buses run (0, 1) <-> (3, 1); 4 tracks per edge hold one of them: the other must
    # detour through row 0 or 2 (2 extra edges): 3 x 3 + 3 x 5 = 24, no overflow
    pl = hand_placed({"P": (0, 1), "m/A0": (0, 1), "m/T0_0": (3, 1)}, (4, 3))
    cfg = RouteConfig(method=method, gcells_per_site=1, tracks_per_gcell_edge=4, lane_wires=3)
    rt = route(two_buses(3), pl, cfg)
    assert (rt.overflow, rt.wirelength, rt.lower_bound) == (0, 24, 18)
    assert rt.max_congestion == pytest.approx(3 / 4)
    # in lanes of at most 2 wires (the default, half the capacity) the two 2-wire lanes share
    # the straight run and only the two 1-wire lanes detour: 2 x 2 x 3 + 2 x 1 x 5 = 22
    rt = route(two_buses(3), pl, replace(cfg, lane_wires=None))
    assert (rt.overflow, rt.wirelength, len(rt.widths)) == (0, 22, 4)
    assert sorted(rt.widths.tolist()) == [1, 1, 2, 2] and rt.n_nets == 2


@pytest.mark.parametrize("method", METHODS)
def test_starved_edges_without_room_overflow_exactly(method):
    # a single row of gcells: both buses share 3 edges of 4 tracks -> 3 x (6 - 4) over
    pl = hand_placed({"P": (0, 0), "m/A0": (0, 0), "m/T0_0": (3, 0)}, (4, 1))
    rt = route(two_buses(3), pl, RouteConfig(method=method, gcells_per_site=1,
                                             tracks_per_gcell_edge=4, lane_wires=3))
    assert (rt.overflow, rt.wirelength, rt.max_congestion) == (6, 18, 1.5)
    assert overflow_lower_bound(rt) == 6


def test_same_seed_same_routes():
    d = layered([(2, 3), (3, 2)], [8, 30, 64], seed=2)
    pl = place(d, PlaceConfig(method="fast"))
    for method in METHODS:
        cfg = RouteConfig(method=method, tracks_per_gcell_edge=60, time_limit_s=0.5, seed=5)
        a, b = route(d, pl, cfg), route(d, pl, cfg)
        assert all(np.array_equal(x, y) for x, y in zip(a.edges, b.edges, strict=True))
        assert np.array_equal(a.usage, b.usage)


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=3),
       cap=st.sampled_from([1, 7, 40, 500]), g=st.integers(1, 3),
       method=st.sampled_from(METHODS), seed=st.integers(0, 5))
def test_routes_are_paths_and_usage_adds_up(grids, cap, g, method, seed):
    d = layered(grids, [1, 6, 33], seed=seed)
    pl = place(d, PlaceConfig(method="fast", seed=seed))
    rt = route(d, pl, RouteConfig(method=method, gcells_per_site=g, tracks_per_gcell_edge=cap,
                                  time_limit_s=0.3, seed=seed))
    for i in range(len(rt.widths)):
        walk(rt, i)
    assert np.array_equal(rt.usage, rt.grid.usage(rt.edges, rt.widths))
    assert rt.wirelength == sum(int(w) * len(e) for w, e in zip(rt.widths, rt.edges, strict=True))
    assert rt.wirelength >= rt.lower_bound >= rt.signal_bound
    assert rt.overflow == int(np.maximum(rt.usage - cap, 0).sum())
    assert overflow_lower_bound(rt) <= rt.overflow
    for i in range(len(rt.widths)):  # path() agrees with the edges
        nodes = rt.path(i)
        assert np.array_equal(rt.grid.from_nodes(nodes), rt.edges[i])
        assert (np.abs(np.diff(nodes, axis=0)).sum(axis=1) == 1).all()
    assert rt.n_nets == len(d.nets)
    two = route(d, pl, RouteConfig(method=method, gcells_per_site=g, tracks_per_gcell_edge=cap,
                                   time_limit_s=0.3, seed=seed, net_model="two-pin"))
    _, lo, hi = footprints(net_arrays(d), pl, g)
    index = {u.name: j for j, u in enumerate(d.units)}
    for i, n in enumerate(d.nets):  # every net's route runs from its src's footprint to its dst's
        nodes = rt.net_path(i)
        for end, unit in ((nodes[0], n.src), (nodes[-1], n.dst)):
            j = index[unit]
            assert (lo[j] <= end).all() and (end <= hi[j]).all()
        assert (np.abs(np.diff(nodes, axis=0)).sum(axis=1) == 1).all()
    # the signal bound holds for both ways of routing the same placement
    assert rt.signal_bound == two.signal_bound <= min(rt.wirelength, two.wirelength)
    # reduction trees: still paths from each net's src to its dst, and a bound that holds
    # for them (and, with fewer wires to bring in, no larger than the two-pin one)
    red = route(d, pl, RouteConfig(method=method, gcells_per_site=g, tracks_per_gcell_edge=cap,
                                   time_limit_s=0.3, seed=seed, reduction_trees=True))
    for i in range(len(red.widths)):
        walk(red, i)
    for i, n in enumerate(d.nets):
        nodes = red.net_path(i)
        for end, unit in ((nodes[0], n.src), (nodes[-1], n.dst)):
            j = index[unit]
            assert (lo[j] <= end).all() and (end <= hi[j]).all()
        assert (np.abs(np.diff(nodes, axis=0)).sum(axis=1) == 1).all()
    assert red.signal_bound <= min(red.lower_bound, two.signal_bound)
    assert red.lower_bound <= red.wirelength


def test_report_layers_ratio_and_files(tmp_path):
    d = layered([(2, 2), (3, 1)], [8, 40], seed=4)
    pl = place(d, PlaceConfig(method="fast"))
    rt = route(d, pl, RouteConfig(method="negotiated", tracks_per_gcell_edge=50))
    rep = report(rt, dense=rt)
    out = rep.to_dict()
    assert list(out)[:7] == ["wirelength", "lower_bound", "routing_area_um2",
                             "routing_area_ratio", "max_congestion", "overflow", "layers"]
    assert out["routing_area_ratio"] == 1.0 and report(rt).routing_area_ratio is None
    assert sum(v["wirelength"] for v in out["layers"].values()) == rt.wirelength
    assert sum(v["overflow"] for v in out["layers"].values()) == pytest.approx(rt.overflow)
    assert sum(v["connections"] for v in out["layers"].values()) == len(rt.widths)
    assert out["nets"] == len(d.nets) and out["connections"] == len(rt.widths)
    other = route(d, pl, RouteConfig(method="negotiated", tracks_per_gcell_edge=51))
    with pytest.raises(ValueError, match="capacity"):
        routing_area_ratio(rt, other)
    other = route(d, pl, RouteConfig(method="negotiated", tracks_per_gcell_edge=50,
                                      reduction_trees=True))
    with pytest.raises(ValueError, match="reduction_trees"):
        routing_area_ratio(rt, other)
    js = routes_to_dict(d, rt)
    assert sum(c["width"] * c["length"] for c in js["connections"]) == rt.wirelength
    assert [n["length"] for n in js["nets"]] == [int(rt.lengths[c].sum()) for c in rt.net_connections]
    assert js["nets"][0]["corners"][0] == rt.pins[0, 0].tolist()
    for f in (plot_floorplan(d, pl, rt, tmp_path / "floorplan.png"),
              plot_congestion(rt, tmp_path / "congestion.png")):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["congestion.png", "floorplan.png"]


def test_grid_paths_round_trip():
    g = Grid(5, 4)
    nodes = np.array([[0, 0], [1, 0], [1, 1], [1, 2], [2, 2], [2, 1], [3, 1]])
    e = g.from_nodes(nodes)
    assert np.array_equal(g.path(nodes[0], e), nodes)
    assert g.n_edges == 4 * 4 + 5 * 3


@pytest.mark.parametrize("kw,err", [({"method": "maze"}, ValueError),
                                    ({"tracks_per_gcell_edge": 0}, ValueError),
                                    ({"gcells_per_site": 0}, ValueError),
                                    ({"gcell_um": -1.0}, ValueError),
                                    ({"overflow_penalty": 1.5}, ConfigError)])
def test_config_validation(kw, err):
    with pytest.raises(err, match=next(iter(kw))):
        RouteConfig(**kw)
    with pytest.raises(ValueError, match="no track"):
        RouteConfig(gcell_um=0.05, wire_pitch_um=0.1)


def test_default_capacity_and_for_spec():
    assert RouteConfig().capacity == 200  # 10 um / 0.1 um x 2 layers
    from mapping.spec import CrossbarSpec

    spec = CrossbarSpec(64, 64)
    cfg = RouteConfig.for_spec(spec, seed=3)
    side = spec.crossbar_area_um2 ** 0.5
    assert cfg.gcells_per_site == int(np.ceil(side / spec.tech.gcell_um))
    assert (cfg.gcell_um, cfg.wire_pitch_um, cfg.seed) == (spec.tech.gcell_um,
                                                           spec.tech.wire_pitch_um, 3)


def test_technology_and_route_config_agree_on_tracks():
    from mapping.spec import CrossbarSpec, Technology

    # 10.0 // 0.1 == 99.0 in floats: the capacity must not lose a track to that
    assert Technology().tracks_per_gcell_edge == 200
    assert RouteConfig.for_spec(CrossbarSpec()).capacity == Technology().tracks_per_gcell_edge


def test_for_spec_names_gcell_um_when_gcells_are_too_fine():
    from mapping.spec import CrossbarSpec, Technology

    with pytest.raises(ValueError, match=r"71 gcells of gcell_um 0.5 .*gcell_um of at least"):
        RouteConfig.for_spec(CrossbarSpec(64, 64, tech=Technology(gcell_um=0.5)))


def test_gcell_congestion_takes_the_worst_edge_of_each_gcell():
    # 3 x 2 gcells: 2 x 2 horizontal edges, then 3 x 1 vertical ones
    hc = np.array([[0.2, 0.0], [0.9, 0.0]])
    vc = np.array([[0.0], [0.0], [0.5]])
    rt = type("R", (), {"grid_gcells": (3, 2),
                        "congestion": np.concatenate([hc.ravel(), vc.ravel()])})()
    np.testing.assert_array_equal(gcell_congestion(rt), [[0.2, 0.0], [0.9, 0.0], [0.9, 0.5]])


def test_bad_inputs_raise_clear_errors():
    d = chain()
    pl = hand_placed({"IN": (0, 0), "m/T0_0": (1, 0)}, (2, 1))
    with pytest.raises(ValueError, match="m/A0"):
        route(d, pl)
    with pytest.raises(TypeError, match="Placement"):
        route(d, {"IN": (0, 0)})
    with pytest.raises(TypeError, match="RouteConfig"):
        route(d, place(d), {"method": "cpsat"})
