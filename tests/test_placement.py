"""Placement: legality, exact optima on tiny designs, determinism, validation."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import ConfigError
from mapping.design import Design, Net, Unit
from mapping.placement import PlaceConfig, Placement, net_arrays, place, placement_cost


def chain(widths_in=(8,), width_out=4, tiles=1) -> Design:
    """IN -> tiles T0_b of one matrix (input widths) -> their output units A_b."""
    units = [Unit("IN", "input")]
    nets = []
    for b in range(tiles):
        units.append(Unit(f"m/T0_{b}", "tile", "m", (0, b)))
        nets.append(Net("IN", f"m/T0_{b}", widths_in[b % len(widths_in)], "m", "input"))
        nets.append(Net(f"m/T0_{b}", f"m/A{b}", width_out, "m", "output"))
    units += [Unit(f"m/A{b}", "output", "m", (0, b)) for b in range(tiles)]
    return Design(units, nets, 64, 64)


def layered(grids, widths, seed=0) -> Design:
    """Matrices with tile grids (A, B); tile (a, b) is fed by a previous output unit chosen
    by a, and drives A_b; widths drawn from ``widths``."""
    rng = np.random.default_rng(seed)
    units, nets, prev = [Unit("IN", "input")], [], ["IN"]
    for m, (na, nb) in enumerate(grids):
        name = f"L{m}"
        for a in range(na):
            for b in range(nb):
                t = f"{name}/T{a}_{b}"
                units.append(Unit(t, "tile", name, (a, b)))
                nets.append(Net(prev[a % len(prev)], t, int(rng.choice(widths)), name, "input"))
                nets.append(Net(t, f"{name}/A{b}", int(rng.choice(widths)), name, "output"))
        units += [Unit(f"{name}/A{b}", "output", name, (0, b)) for b in range(nb)]
        prev = [f"{name}/A{b}" for b in range(nb)]
    return Design(units, nets, 64, 64)


def check_legal(design: Design, pl: Placement, k: int) -> None:
    w, h = pl.grid_sites
    tiles, smalls = {}, {}
    for u in design.units:
        x, y = pl.positions[u.name]
        assert 0 <= x < w and 0 <= y < h
        (tiles if u.kind == "tile" else smalls).setdefault((x, y), []).append(u.name)
    assert all(len(v) == 1 for v in tiles.values()), "two tiles share a site"
    assert not set(tiles) & set(smalls), "a small unit sits on a tile's site"
    assert all(len(v) <= k for v in smalls.values()), "too many small units in one site"
    for names in smalls.values():
        assert sorted(pl.slots[n] for n in names) == list(range(len(names)))
    pos = np.array([pl.positions[u.name] for u in design.units])
    assert pl.cost == placement_cost(net_arrays(design), pos)


def brute_force(design: Design, grid: tuple[int, int], k: int) -> int:
    """Minimum cost over every legal assignment of units to sites of ``grid``."""
    arr = net_arrays(design)
    sites = np.array([(x, y) for x in range(grid[0]) for y in range(grid[1])])
    combos = np.array(list(itertools.product(range(len(sites)), repeat=len(arr.names))))
    size = np.where(arr.small, 1, k)  # a tile fills a site, a small unit one of k slots
    legal = np.ones(len(combos), dtype=bool)
    for s in range(len(sites)):
        legal &= ((combos == s) * size).sum(axis=1) <= k
    pos = sites[combos[legal]]  # (C, n, 2)
    d = np.abs(pos[:, arr.src] - pos[:, arr.dst]).sum(axis=2)  # (C, n_nets)
    return int((d * arr.width).sum(axis=1).min())


def test_three_units_in_a_row_exact():
    d = chain()
    for method in ("fast", "cpsat"):
        pl = place(d, PlaceConfig(method=method, output_units_per_site=4))
        check_legal(d, pl, 4)
        # IN and A share the site next to the tile: 8 x 1 + 4 x 1
        assert pl.cost == 12
        assert pl.positions["IN"] == pl.positions["m/A0"]
        pl = place(d, PlaceConfig(method=method))  # one small unit per site: either side
        check_legal(d, pl, 1)
        assert pl.cost == 12
    assert place(d, PlaceConfig(method="cpsat")).status == "OPTIMAL"


@pytest.mark.parametrize("design,k", [(chain((8, 3), 5, tiles=2), 4),
                                      (chain((8, 3), 5, tiles=2), 1),
                                      (layered([(1, 1), (2, 1)], [2, 7, 9], seed=3), 2)])
def test_cpsat_matches_brute_force(design, k):
    pl = place(design, PlaceConfig(method="cpsat", output_units_per_site=k))
    check_legal(design, pl, k)
    assert pl.status == "OPTIMAL"
    assert pl.cost == brute_force(design, pl.grid_sites, k)


def test_fast_refinement_never_worse_and_deterministic():
    d = layered([(2, 3), (4, 2), (3, 1)], [16, 32, 64], seed=1)
    start = place(d, PlaceConfig(method="fast", refine_passes=0))
    a = place(d, PlaceConfig(method="fast", seed=7))
    b = place(d, PlaceConfig(method="fast", seed=7))
    check_legal(d, a, 1)
    assert a.cost <= start.cost
    assert a.positions == b.positions and a.slots == b.slots
    small = layered([(2, 2), (2, 1)], [16, 32, 64], seed=1)
    fast = place(small, PlaceConfig(method="fast", seed=3))
    c1 = place(small, PlaceConfig(method="cpsat", seed=3, time_limit_s=0.2))
    c2 = place(small, PlaceConfig(method="cpsat", seed=3, time_limit_s=0.2))
    assert c1.positions == c2.positions and c1.cost <= fast.cost


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=1, max_size=3),
       k=st.integers(1, 5), aspect=st.sampled_from([0.5, 1.0, 2.5]),
       ws=st.sampled_from([0.0, 0.1, 0.5]), seed=st.integers(0, 3))
def test_fast_placement_is_legal(grids, k, aspect, ws, seed):
    d = layered(grids, [1, 5, 32], seed=seed)
    cfg = PlaceConfig(method="fast", output_units_per_site=k, site_grid_aspect=aspect,
                      whitespace_frac=ws, seed=seed)
    check_legal(d, place(d, cfg), k)


def check_spans(design: Design, pl: Placement) -> None:
    """Spanned units own their column of sites: no tile or other unit in it, inside the grid."""
    w, h = pl.grid_sites
    taken = {}
    for u in design.units:
        x, y = pl.positions[u.name]
        for j in range(pl.spans.get(u.name, 1)):
            assert y + j < h
            taken.setdefault((x, y + j), []).append(u.name)
    for names in taken.values():
        spanned = [n for n in names if n in pl.spans]
        assert not spanned or len(names) == 1, f"{names} share a spanned unit's site"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grids=st.lists(st.tuples(st.integers(1, 6), st.integers(1, 5)), min_size=1, max_size=4),
       k=st.integers(1, 3), ws=st.sampled_from([0.0, 0.05, 0.5]), seed=st.integers(0, 3),
       site_wires=st.sampled_from([None, 40, 400]))
def test_array_layout_is_legal(grids, k, ws, seed, site_wires):
    d = layered(grids, [1, 5, 32], seed=seed)
    pl = place(d, PlaceConfig(layout="arrays", output_units_per_site=k, whitespace_frac=ws,
                              site_wires=site_wires))
    check_legal(d, pl, k)
    check_spans(d, pl)
    assert (pl.method, pl.status) == ("fast", "arrays")
    assert set(pl.spans) <= {u.name for u in d.units if u.kind != "tile"}


def test_array_layout_keeps_each_tile_grid():
    # one matrix of 3 x 4 tiles: tile (a, b) at column b, row a of one block, rows in order
    d = layered([(3, 4)], [8], seed=0)
    pl = place(d, PlaceConfig(layout="arrays"))
    xy = {u.block: pl.positions[u.name] for u in d.units if u.kind == "tile"}
    x0, y0 = xy[(0, 0)]
    assert all(xy[(a, b)] == (x0 + b, y0 + a) for a in range(3) for b in range(4))
    # a producer feeding 3 or more row blocks gets a column of its own on the left
    d = layered([(1, 1), (4, 2)], [8], seed=0)
    d.nets = [n for n in d.nets if not (n.kind == "input" and n.matrix == "L1")]
    d.nets += [Net("L0/A0", f"L1/T{a}_{b}", 8, "L1", "input") for a in range(4)
               for b in range(2)]
    pl = place(d, PlaceConfig(layout="arrays"))
    check_legal(d, pl, 1)
    first = min(pl.positions[f"L1/T{a}_0"][0] for a in range(4))
    assert pl.positions["L0/A0"][0] == first - 1  # the producer sits at its rows' left end


def test_a_flat_block_keeps_its_output_units_on_top():
    # one row block of 16 tiles (a low-rank factor): its outputs in a row above it, not 16
    # columns on its right that would make the die 32 sites wide
    d = layered([(1, 16)], [8], seed=0)
    pl = place(d, PlaceConfig(layout="arrays"))
    check_legal(d, pl, 1)
    assert pl.grid_sites[0] == 16
    above = sum(pl.positions[f"L0/A{b}"] == (b, 1) for b in range(16))
    assert above >= 15  # IN takes one of those sites


def test_wide_units_span_sites():
    # IN feeds 12 row blocks of 8 wires: 96 wires; a site side holding 10 x 0.8 = 8 wires
    # makes it span as many sites as the rows it feeds (one long side for its trees), at
    # most half the die's height
    d = layered([(12, 1)], [8], seed=0)
    pl = place(d, PlaceConfig(layout="arrays", site_wires=40))
    check_legal(d, pl, 1)
    check_spans(d, pl)
    assert pl.spans["IN"] == min(11, pl.grid_sites[1] // 2) > 1
    assert "spans" in pl.to_dict()
    assert not place(d, PlaceConfig(layout="arrays")).spans  # without site_wires: none


def test_spans_survive_the_json_netlist(tmp_path):
    from netlists import read_netlist, write_json
    from netlists._common import NetlistError

    d = layered([(12, 1)], [8], seed=0)
    pl = place(d, PlaceConfig(layout="arrays", site_wires=40))
    assert pl.spans
    nl = read_netlist(write_json(d, tmp_path / "r.json", placement=pl, weights="none"))
    assert nl.spans == pl.spans and nl.sites == pl.positions
    again = read_netlist(write_json(nl, tmp_path / "r2.json", weights="none"))  # passed on
    assert again.spans == pl.spans
    bad = type("P", (), {"positions": pl.positions, "slots": {}, "grid_sites": pl.grid_sites,
                         "spans": {"IN": pl.grid_sites[1] + 1}})()
    with pytest.raises(NetlistError, match="beyond the"):
        write_json(d, tmp_path / "bad.json", placement=bad, weights="none")


def test_auto_picks_cpsat_only_for_small_designs():
    small = chain()
    big = layered([(3, 4), (5, 4)], [8], seed=0)
    assert place(small, PlaceConfig(method="auto")).method == "cpsat"
    assert place(big, PlaceConfig(method="auto", cpsat_max_units=10)).method == "fast"


@pytest.mark.parametrize("kw,err", [({"method": "exact"}, ValueError),
                                    ({"layout": "grid"}, ValueError),
                                    ({"site_wires": 0}, ValueError),
                                    ({"site_grid_aspect": 0.0}, ValueError),
                                    ({"output_units_per_site": 0}, ValueError),
                                    ({"seed": True}, ConfigError),
                                    ({"time_limit_s": float("nan")}, ValueError),
                                    ({"refine_passes": 2.5}, ConfigError)])
def test_config_validation(kw, err):
    with pytest.raises(err, match=next(iter(kw))):
        PlaceConfig(**kw)


def test_bad_designs_raise_clear_errors():
    with pytest.raises(TypeError, match="Design"):
        place("not a design")
    d = chain()
    d.nets.append(Net("IN", "ghost/T0_0", 3, "ghost", "input"))
    with pytest.raises(ValueError, match="ghost"):
        place(d)
    dup = chain()
    dup.units.append(Unit("IN", "input"))
    with pytest.raises(ValueError, match="twice"):
        place(dup)
    with pytest.raises(TypeError, match="PlaceConfig"):
        place(chain(), {"method": "fast"})
