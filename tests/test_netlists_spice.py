"""SPICE export: the conductance map, ngspice currents == G^T v, IR drop with wire resistance."""

import shutil

import numpy as np
import pytest

from mapping.design import Design, Net, Unit
from netlists import (
    NetlistError,
    SpiceConfig,
    logical_currents,
    run_ngspice,
    tile_conductances,
    write_spice,
)
from netlists.conductance import weights_to_conductances
from netlists.spice import tile_inputs
from netlists.synthetic import chain_design

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
CFG = SpiceConfig(g_min_siemens=1e-6, g_max_siemens=1e-4)


def one_tile(w: np.ndarray, rows: int, cols: int, encoding: str) -> Design:
    return chain_design({"m": w}, rows, cols, encoding)


def test_conductance_map_exact_values():
    w = np.array([[1.0, -1.0, 0.5], [0.0, -0.25, 0.0]])
    g0, g1 = 1e-6, 1e-4
    d = weights_to_conductances(w, "differential", 1.0, CFG)  # G+ / G- interleaved
    assert d.shape == (2, 6)
    np.testing.assert_allclose(d[0], [g1, g0, g0, g1, g0 + 0.5 * (g1 - g0), g0], rtol=1e-14)
    np.testing.assert_allclose(d[1], [g0, g0, g0, g0 + 0.25 * (g1 - g0), g0, g0], rtol=1e-14)
    o = weights_to_conductances(w, "offset", 1.0, CFG)  # + reference column at G_mid
    mid = (g0 + g1) / 2
    assert o.shape == (2, 4)
    np.testing.assert_allclose(o[0], [g1, g0, mid + 0.25 * (g1 - g0), mid], rtol=1e-14)
    np.testing.assert_allclose(o[:, -1], mid, rtol=1e-14)
    u = weights_to_conductances(np.abs(w), "unsigned", 2.0, CFG)
    np.testing.assert_allclose(u[0], [g0 + (g1 - g0) / 2, g0 + (g1 - g0) / 2, g0 + (g1 - g0) / 4])
    with pytest.raises(NetlistError, match="negative"):
        weights_to_conductances(w, "unsigned", 1.0, CFG)


def test_scale_is_shared_by_the_tiles_of_a_matrix():
    w = np.zeros((16, 4))
    w[0, 0], w[8, 0] = 2.0, 1.0  # two tiles of 8 rows; w_max = 2 for both
    G = tile_conductances(one_tile(w, 8, 8, "differential"), CFG)
    assert G["m/T0_0"][0, 0] == pytest.approx(1e-4, rel=1e-15)
    assert G["m/T1_0"][0, 0] == pytest.approx(1e-6 + (1e-4 - 1e-6) / 2, rel=1e-15)


def test_config_validation():
    with pytest.raises(ValueError, match="g_min_siemens < g_max_siemens"):
        SpiceConfig(g_min_siemens=1e-4, g_max_siemens=1e-6)
    with pytest.raises(ValueError, match="r_wire_ohm"):
        SpiceConfig(r_wire_ohm=-1)


CASES = [  # (rows, cols, encoding, matrix shape)
    (8, 8, "differential", (8, 4)),
    (16, 4, "differential", (16, 2)),
    (8, 8, "unsigned", (8, 8)),
    (16, 4, "unsigned", (16, 4)),
    (8, 8, "offset", (8, 7)),
    (8, 8, "differential", (20, 10)),  # 3 x 3 tiles, short edge tiles
]


@needs_ngspice
@pytest.mark.parametrize("rows,cols,encoding,shape", CASES)
def test_ngspice_matches_numpy(tmp_path, rows, cols, encoding, shape):
    rng = np.random.default_rng(rows * cols + shape[0])
    w = rng.normal(size=shape)
    w[rng.random(shape) < 0.3] = 0
    w[1] = 0  # a row without input wire: grounded
    if encoding == "unsigned":
        w = np.abs(w)
    d = one_tile(w, rows, cols, encoding)
    v = rng.uniform(0.05, 0.3, size=shape[0])
    deck = write_spice(d, tmp_path / "x.sp", inputs={"m": v}, config=CFG)
    res = run_ngspice(deck)
    G, volts = tile_conductances(d, CFG), tile_inputs(d, {"m": v}, CFG)
    assert res.bitline_amps.keys() == G.keys() and res.encoding == encoding
    g, w_max = 1e-4 - 1e-6, np.abs(w).max()
    gain = {"differential": g / w_max, "offset": g / (2 * w_max), "unsigned": g / w_max}[encoding]
    for name, amps in res.bitline_amps.items():
        expected = G[name].T @ volts[name]  # (bit lines,)
        np.testing.assert_allclose(amps, expected, rtol=1e-6, atol=0)
        # the periphery's subtraction gives the layer's W^T v, scaled
        a = d.unit(name).block[0] * rows
        v_tile = np.where(np.arange(len(v)) == 1, 0, v)[a:a + G[name].shape[0]]
        want = gain * d.tile_weights[name].T @ v_tile
        if encoding == "unsigned":
            want = want + 1e-6 * volts[name].sum()
        np.testing.assert_allclose(res.logical_amps()[name], want, rtol=1e-6, atol=1e-15)
        np.testing.assert_allclose(logical_currents(amps, encoding), res.logical_amps()[name])


@needs_ngspice
@pytest.mark.parametrize("encoding", ["differential", "unsigned"])
def test_wire_resistance_gives_monotonic_ir_drop(tmp_path, encoding):
    rng = np.random.default_rng(3)
    w = np.abs(rng.normal(size=(16, 4)))
    d = one_tile(w, 16, 8, encoding)
    currents = []
    for r_wire in (0.0, 1.0, 10.0, 100.0):
        cfg = SpiceConfig(r_wire_ohm=r_wire)
        currents.append(run_ngspice(write_spice(d, tmp_path / f"r{r_wire}.sp", config=cfg))
                        .bitline_amps["m/T0_0"])
    currents = np.array(currents)  # (4 resistances, bit lines)
    assert np.all(currents > 0)
    assert np.all(np.diff(currents, axis=0) < 0)  # every bit line loses current
    assert currents[-1].sum() < 0.9 * currents[0].sum()  # 100 ohm segments: a visible drop


@needs_ngspice
def test_ir_drop_grows_along_the_word_line(tmp_path):
    d = one_tile(np.ones((16, 8)), 16, 8, "unsigned")  # uniform array, driven at column 0
    ideal = run_ngspice(write_spice(d, tmp_path / "a.sp")).bitline_amps["m/T0_0"]
    wired = run_ngspice(write_spice(d, tmp_path / "b.sp", config=SpiceConfig(r_wire_ohm=20.0)))
    loss = 1 - wired.bitline_amps["m/T0_0"] / ideal  # (8,) relative current lost per bit line
    np.testing.assert_allclose(ideal, ideal[0], rtol=1e-9)
    assert np.all(np.diff(loss) > 0) and loss[0] > 0  # the farther from the driver, the worse


def test_deck_structure(tmp_path):
    d = one_tile(np.ones((3, 2)), 4, 4, "differential")
    text = write_spice(d, tmp_path / "x.sp", config=SpiceConfig(r_wire_ohm=2.0)).read_text()
    assert ".subckt xb1 wl0 wl1 wl2 bl0 bl1 bl2 bl3" in text
    assert text.count("\nR") == 3 * 4 * 3  # cells + word-line and bit-line segments
    assert "RW0_0 wl0 w0_0 2.0" in text and "RB2_3 b2_3 bl3 2.0" in text
    assert "V1_bl3 xb1_bl3 0 DC 0" in text and "V1_wl0 xb1_wl0 0 DC 0.2" in text
    assert text.rstrip().endswith(".op\n.end")


def test_clear_errors(tmp_path):
    d = one_tile(np.ones((8, 4)), 8, 8, "differential")
    with pytest.raises(NetlistError, match="must hold 8 finite volts"):
        write_spice(d, tmp_path / "x.sp", inputs={"m": np.ones(3)})
    with pytest.raises(NetlistError, match="neither tiles nor matrices"):
        write_spice(d, tmp_path / "x.sp", inputs={"fc9": np.ones(8)})
    with pytest.raises(NetlistError, match="negative"):
        write_spice(one_tile(-np.ones((8, 8)), 8, 8, "unsigned"), tmp_path / "x.sp")
    bare = Design([Unit("IN", "input"), Unit("m/T0_0", "tile", "m", (0, 0))],
                  [Net("IN", "m/T0_0", 8, "m", "input")], 8, 8)
    with pytest.raises(NetlistError, match="no weights for tiles"):
        write_spice(bare, tmp_path / "x.sp")
    assert not (tmp_path / "x.sp").exists()
    (tmp_path / "other.sp").write_text("* not ours\nR1 a 0 1\n.end\n")
    with pytest.raises(NetlistError, match="write_spice"):
        run_ngspice(tmp_path / "other.sp")


@needs_ngspice
def test_lenet_tiles(tmp_path):
    network = pytest.importorskip("mapping.network", reason="mapper not available")
    import models
    from mapping.spec import CrossbarSpec

    d = network.map_model(models.get("lenet"), CrossbarSpec(64, 64), (1, 28, 28)).design
    rng = np.random.default_rng(0)
    inputs = {"conv1": rng.uniform(0, 0.2, 25), "fc1": rng.uniform(0, 0.2, 800)}
    picked = ["conv1/T0_0", "fc1/T12_15", "fc2/T3_0"]  # full, corner and other-layer tiles
    deck = write_spice(d, tmp_path / "lenet.sp", inputs=inputs, tiles=picked)
    res = run_ngspice(deck)
    G, volts = tile_conductances(d), tile_inputs(d, inputs, SpiceConfig())
    assert list(res.bitline_amps) == picked
    assert G["fc1/T12_15"].shape == (800 - 12 * 64, 2 * (500 - 15 * 32))
    for name in picked:
        np.testing.assert_allclose(res.bitline_amps[name], G[name].T @ volts[name], rtol=1e-6)
    with pytest.raises(NetlistError, match="must name tiles"):
        write_spice(d, tmp_path / "x.sp", tiles=["fc1/T99_0"])


def _multi_tile(encoding="differential"):
    rng = np.random.default_rng(11)
    w = rng.normal(size=(20, 10))
    w[rng.random(w.shape) < 0.2] = 0
    return chain_design({"m": w}, 8, 8, encoding), rng.uniform(0.05, 0.2, 20)  # 3 x 3 tiles


def test_per_tile_export_layout(tmp_path):
    d, v = _multi_tile()
    cfg = SpiceConfig(r_wire_ohm=2.0)
    top = write_spice(d, tmp_path / "chip.sp", inputs={"m": v}, config=cfg, per_tile=True)
    folder = tmp_path / "chip.tiles"
    ks = [k for k, u in enumerate(d.units) if u.kind == "tile"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"xb{k}.sp" for k in ks] + [f"xb{k}.inc" for k in ks])
    text = top.read_text()
    assert "* @tiles chip.tiles" in text and ".subckt" not in text
    assert all(f'.include "chip.tiles/xb{k}.inc"' in text for k in ks)
    single = write_spice(d, tmp_path / "one.sp", inputs={"m": v}, config=cfg).read_text()
    inc = "".join((folder / f"xb{k}.inc").read_text() for k in ks)
    resistors = [ln for ln in single.splitlines() if ln.startswith("R")]
    assert [ln for ln in inc.splitlines() if ln.startswith("R")] == resistors  # split by tile
    tile = (folder / f"xb{ks[0]}.sp").read_text()
    assert f'.include "xb{ks[0]}.inc"' in tile and tile.rstrip().endswith(".op\n.end")
    # writing again with fewer tiles replaces the folder; a foreign folder is refused
    write_spice(d, top, inputs={"m": v}, config=cfg, per_tile=True, tiles=[d.units[ks[0]].name])
    assert sorted(p.name for p in folder.iterdir()) == [f"xb{ks[0]}.inc", f"xb{ks[0]}.sp"]
    (tmp_path / "x.tiles").mkdir()
    (tmp_path / "x.tiles" / "notes.txt").write_text("mine")
    with pytest.raises(NetlistError, match="did not write"):
        write_spice(d, tmp_path / "x.sp", config=cfg, per_tile=True)
    assert (tmp_path / "x.tiles" / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@needs_ngspice
def test_per_tile_decks_simulate_like_the_single_deck(tmp_path):
    from mapping.irdrop import bitline_currents

    d, v = _multi_tile()
    cfg = SpiceConfig(r_wire_ohm=5.0)
    single = run_ngspice(write_spice(d, tmp_path / "one.sp", inputs={"m": v}, config=cfg))
    top = write_spice(d, tmp_path / "sub" / "chip.sp", inputs={"m": v}, config=cfg, per_tile=True)
    per_tile = run_ngspice(top, per_tile=True, jobs=2)
    whole = run_ngspice(top)  # the top deck includes the tiles' subcircuits
    G, volts = tile_conductances(d, cfg), tile_inputs(d, {"m": v}, cfg)
    assert list(per_tile.bitline_amps) == list(single.bitline_amps) == list(whole.bitline_amps)
    for name, amps in single.bitline_amps.items():
        np.testing.assert_allclose(per_tile.bitline_amps[name], amps, rtol=1e-9, atol=1e-18)
        np.testing.assert_allclose(whole.bitline_amps[name], amps, rtol=1e-9, atol=1e-18)
        model = bitline_currents(G[name], volts[name][None], cfg.r_wire_ohm).numpy()[0]
        np.testing.assert_allclose(model, amps, rtol=1e-6, atol=1e-15)  # IR drop: the solver
    with pytest.raises(NetlistError, match="not the top deck of a per-tile export"):
        run_ngspice(tmp_path / "one.sp", per_tile=True)


# -- weight precision: quantized weights, bit slices (issue 19) --------------------------------

def sliced(w, rows=8, cols=8, encoding="differential", weight_bits=8, cell_bits=2):
    return chain_design({"m": w}, rows, cols, encoding, weight_bits=weight_bits,
                        cell_bits=cell_bits)


@pytest.mark.parametrize("encoding", ["differential", "offset", "unsigned"])
@pytest.mark.parametrize("bits", [(8, 2), (8, 3), (5, None), (4, 7)])
def test_slices_hold_the_digits_the_simulation_programs(encoding, bits):
    """slice_map cuts the weights exactly as mapping.devices does (one scale per matrix)."""
    import torch

    from mapping.devices import quantize_weights, slice_digits
    from netlists.conductance import slice_map

    rng = np.random.default_rng(5)
    w = rng.normal(size=(20, 10))
    w[rng.random(w.shape) < 0.3] = 0
    if encoding == "unsigned":
        w = np.abs(w)
    d = sliced(w, 8, 8, encoding, *bits)
    q, s = quantize_weights(torch.as_tensor(w), bits[0])
    digits = slice_digits(q, *bits).numpy()  # (K, 20, 10)
    sm, lcols = slice_map(d), {"differential": 4, "offset": 7, "unsigned": 8}[encoding]
    assert len(sm.shifts) == d.slices == digits.shape[0]
    for u in d.units:
        if u.kind != "tile":
            continue
        a, b = u.block
        r, c = d.tile_weights[u.name].shape
        block = np.s_[:, a * 8:a * 8 + r, b * lcols:b * lcols + c]
        np.testing.assert_array_equal(sm.values[u.name], digits[block])
        np.testing.assert_allclose(sm.weights(u.name, "m"), s * q.numpy()[block[1:]],
                                   rtol=1e-12, atol=0)
    assert np.abs(np.concatenate([v.ravel() for v in sm.values.values()])).max() <= (
        sm.full_scale["m"])


def test_tile_conductances_of_quantized_and_sliced_designs():
    from netlists.conductance import slice_conductances

    w = np.array([[1.0, -0.5, 0.26], [0.0, 0.74, -1.0]])
    q = sliced(w, 4, 8, weight_bits=3, cell_bits=None)  # q in -3..3, one cell each
    g = tile_conductances(q, CFG)["m/T0_0"]
    levels = np.round(w / (1 / 3))  # s = max|w| / 3
    np.testing.assert_allclose(g[:, 0::2], 1e-6 + (1e-4 - 1e-6) * np.maximum(levels, 0) / 3)
    d = sliced(w, 4, 8, weight_bits=8, cell_bits=2)
    with pytest.raises(NetlistError, match="sliced over 4 crossbars per tile.*slice_conductances"):
        tile_conductances(d, CFG)
    gs = slice_conductances(d, CFG)["m/T0_0"]
    assert gs.shape == (4, 2, 6) and gs.min() >= 1e-6 and gs.max() <= 1e-4 * (1 + 1e-12)


def test_sliced_deck_structure(tmp_path):
    d = sliced(np.ones((3, 2)) * [[1.0, -0.3]], 4, 4)
    text = write_spice(d, tmp_path / "x.sp").read_text()
    assert text.count("* @tile xb1 m/T0_0 rows=3 bitlines=4") == 1
    assert "* @slices 4 shifts 1 4 16 64" in text
    for j in range(4):
        assert f".subckt xb1s{j} wl0 wl1 wl2 bl0 bl1 bl2 bl3" in text
        assert f"Xxb1s{j} xb1_wl0 xb1_wl1 xb1_wl2 xb1s{j}_bl0" in text  # shared word lines
        assert f"V1s{j}_bl3 xb1s{j}_bl3 0 DC 0" in text
    assert text.count("V1_wl0 xb1_wl0 0 DC 0.2") == 1
    assert text.count("\nR") == 4 * 3 * 4  # 4 slices of 3 x 4 cells


@needs_ngspice
@pytest.mark.parametrize("encoding", ["differential", "offset", "unsigned"])
def test_ngspice_recombines_the_slices_to_the_quantized_product(tmp_path, encoding):
    from netlists.conductance import slice_conductances, slice_map

    rng = np.random.default_rng(9)
    w = rng.normal(size=(12, 6))
    w[rng.random(w.shape) < 0.3] = 0
    w[1] = 0  # a row without input wire
    if encoding == "unsigned":
        w = np.abs(w)
    d = sliced(w, 8, 8, encoding)  # 2 row blocks, 8-bit weights in 4 slices of 2 bits
    v = rng.uniform(0.05, 0.3, size=12)
    res = run_ngspice(write_spice(d, tmp_path / "x.sp", inputs={"m": v}, config=CFG))
    per_tile = run_ngspice(write_spice(d, tmp_path / "t" / "x.sp", inputs={"m": v}, config=CFG,
                                       per_tile=True), per_tile=True)
    G, volts, sm = slice_conductances(d, CFG), tile_inputs(d, {"m": v}, CFG), slice_map(d)
    assert res.shifts == per_tile.shifts == (1.0, 4.0, 16.0, 64.0)
    g = 1e-4 - 1e-6
    w_max = sm.step["m"] * sm.full_scale["m"]  # s * D: the weight a cell at G_max stands for
    gain = {"differential": g / w_max, "offset": g / (2 * w_max), "unsigned": g / w_max}[encoding]
    for name, amps in res.bitline_amps.items():
        assert amps.shape == (4, G[name].shape[2])
        np.testing.assert_allclose(amps, np.einsum("krc,r->kc", G[name], volts[name]),
                                   rtol=1e-6, atol=0)
        np.testing.assert_allclose(per_tile.bitline_amps[name], amps, rtol=1e-9, atol=1e-18)
        want = gain * sm.weights(name, "m").T @ volts[name]  # the quantized weights' W^T v
        if encoding == "unsigned":  # every slice's G_min share, shifted and added
            want = want + 1e-6 * volts[name].sum() * sum(res.shifts)
        np.testing.assert_allclose(res.logical_amps()[name], want, rtol=1e-6, atol=1e-15)
