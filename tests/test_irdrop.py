"""IR drop (mapping/irdrop.py): ideal wires are V @ G exactly; the sweep equals the sparse nodal
solve, ngspice on the exported deck and badcrossbar; more wire resistance never adds current."""

import logging
import shutil

import numpy as np
import pytest
import torch

from mapping.irdrop import (
    bitline_currents,
    effective_conductances,
    nodal_currents,
    pad_tiles,
    unpad,
)
from netlists import SpiceConfig, run_ngspice, tile_conductances, write_spice
from netlists.spice import tile_inputs
from netlists.synthetic import chain_design

G_MIN, G_MAX = 1e-6, 1e-4
needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")


def random_tile(rng, rows, cols, batch=5):
    return rng.uniform(G_MIN, G_MAX, (rows, cols)), rng.uniform(0, 0.2, (batch, rows))


def badcrossbar_currents(G, V, r_word, r_bit):
    badcrossbar = pytest.importorskip("badcrossbar")
    logging.getLogger("badcrossbar").setLevel(logging.WARNING)  # it logs every solve at INFO
    sol = badcrossbar.compute(V.T, 1 / G, r_i_word_line=r_word, r_i_bit_line=r_bit,
                              node_voltages=False, all_currents=False)
    return np.atleast_2d(sol.currents.output)  # (batch, cols), read at the bottom of the bit lines


def test_ideal_wires_are_exactly_v_at_g():
    rng = np.random.default_rng(0)
    G, V = (torch.as_tensor(a) for a in random_tile(rng, 16, 12))
    assert torch.equal(bitline_currents(G, V, 0.0), V @ G)
    assert torch.equal(bitline_currents(G, V, 0.0, 0.0), V @ G)
    assert torch.equal(effective_conductances(G, 0.0), G)
    g32, v32 = G.float(), V.float()
    assert torch.equal(bitline_currents(g32, v32, 0, dtype=torch.float32), v32 @ g32)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1), (4, 4), (8, 8), (7, 3)])
@pytest.mark.parametrize("r", [1.0, 10.0, 100.0])
def test_sweep_equals_sparse_nodal_and_badcrossbar(shape, r):
    rng = np.random.default_rng(shape[0] * 100 + shape[1])
    G, V = random_tile(rng, *shape)
    fast = bitline_currents(G, V, r).numpy()
    exact = nodal_currents(G, V, r)
    np.testing.assert_allclose(fast, exact, rtol=1e-9, atol=0)
    np.testing.assert_allclose(fast, badcrossbar_currents(G, V, r, r), rtol=1e-9, atol=0)


@pytest.mark.parametrize("r_word,r_bit", [(0.0, 5.0), (5.0, 0.0), (3.0, 20.0)])
def test_separate_word_and_bit_line_resistance(r_word, r_bit):
    rng = np.random.default_rng(7)
    G, V = random_tile(rng, 8, 6)
    fast = bitline_currents(G, V, r_word, r_bit).numpy()
    np.testing.assert_allclose(fast, badcrossbar_currents(G, V, r_word, r_bit), rtol=1e-9)
    if r_word and r_bit:
        np.testing.assert_allclose(fast, nodal_currents(G, V, r_word, r_bit), rtol=1e-9)


@needs_ngspice
@pytest.mark.parametrize("rows,cols", [(4, 4), (8, 8)])
@pytest.mark.parametrize("r", [1.0, 10.0, 100.0])
def test_sweep_equals_ngspice_on_the_exported_deck(tmp_path, rows, cols, r):
    rng = np.random.default_rng(rows + cols)
    w = rng.uniform(0, 1, (rows, cols))  # unsigned: one cell per weight, G in the window
    design = chain_design({"m": w}, rows, cols, "unsigned")
    cfg = SpiceConfig(g_min_siemens=G_MIN, g_max_siemens=G_MAX, r_wire_ohm=r)
    inputs = {"m": rng.uniform(0.05, 0.2, rows)}
    res = run_ngspice(write_spice(design, tmp_path / "t.sp", inputs=inputs, config=cfg))
    G, V = tile_conductances(design, cfg)["m/T0_0"], tile_inputs(design, inputs, cfg)["m/T0_0"]
    fast = bitline_currents(G, V[None], r).numpy()[0]
    np.testing.assert_allclose(fast, res.bitline_amps["m/T0_0"], rtol=1e-6, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_more_wire_resistance_never_adds_current(seed):
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(1, 24, 2)
    G, V = random_tile(rng, rows, cols, batch=8)
    V[rng.random(V.shape) < 0.3] = 0  # non-negative inputs, some rows idle
    rs = [0.0, 0.01, 0.1, 1.0, 3.0, 10.0, 30.0, 100.0, 1e3]
    total = np.array([bitline_currents(G, V, r).numpy().sum(axis=1) for r in rs])  # (r, batch)
    assert np.all(np.diff(total, axis=0) <= 1e-15 * total[0])
    assert np.all(total[-1] < total[0])


@pytest.mark.parametrize("n", [16, 32, 64, 128])
def test_fast_path_within_one_percent_of_exact_at_benchmark_settings(n):
    """The benchmark's tiles (random G in the SpiceConfig window, inputs in [0, 0.2] V)."""
    rng = np.random.default_rng(n)
    G, V = random_tile(rng, n, n, batch=4)
    for r in (1.0, 10.0, 100.0):
        fast = bitline_currents(G, V, r).numpy()
        exact = nodal_currents(G, V, r)
        err = np.abs(fast / exact - 1).max()
        assert err < 1e-9, err  # the fast path is the exact solve: far inside the 1 % target


def test_tiles_of_different_shapes_batch_with_padding():
    rng = np.random.default_rng(5)
    tiles = [rng.uniform(G_MIN, G_MAX, s) for s in [(8, 8), (3, 8), (8, 2), (5, 7)]]
    batch, shapes = pad_tiles(tiles)
    assert batch.shape == (4, 8, 8) and shapes == [(8, 8), (3, 8), (8, 2), (5, 7)]
    for g, geff in zip(tiles, unpad(effective_conductances(batch, 10.0), shapes), strict=True):
        np.testing.assert_allclose(geff.numpy(), effective_conductances(g, 10.0).numpy(), rtol=1e-12)
    V = rng.uniform(0, 0.2, (4, 6, 8))  # (tiles, batch, rows): leading dims broadcast
    out = bitline_currents(batch, V, 10.0)
    assert out.shape == (4, 6, 8)
    np.testing.assert_allclose(out[2].numpy(), nodal_currents(batch[2].numpy(), V[2], 10.0), rtol=1e-9)


def test_steep_word_lines_use_the_stable_inverse(monkeypatch):
    """Wires far more resistive than the cells: K^-1 from |c_j - c_k| instead of an outer
    product that would over/underflow; forced here on an ordinary tile, same currents."""
    import mapping.irdrop as irdrop

    rng = np.random.default_rng(3)
    G, V = random_tile(rng, 12, 10)
    fast = bitline_currents(G, V, 30.0).numpy()
    monkeypatch.setattr(irdrop, "_RANK1_RANGE", -1.0)
    np.testing.assert_allclose(bitline_currents(G, V, 30.0).numpy(), fast, rtol=1e-12)
    np.testing.assert_allclose(fast, nodal_currents(G, V, 30.0), rtol=1e-9)
    steep = bitline_currents(G, V, 1e9).numpy()  # 1 GOhm segments: only the first cells count
    assert np.all(np.isfinite(steep)) and np.all(steep >= 0)


def test_memory_chunks_give_the_same_result():
    rng = np.random.default_rng(9)
    G = torch.as_tensor(rng.uniform(G_MIN, G_MAX, (5, 6, 7)))
    whole = effective_conductances(G, 2.0)
    assert torch.allclose(effective_conductances(G, 2.0, mem_bytes=1), whole, rtol=1e-13, atol=0)


def test_clear_errors():
    G = np.full((4, 4), 1e-5)
    with pytest.raises(ValueError, match="r_wire_ohm must be a finite number >= 0"):
        effective_conductances(G, -1.0)
    with pytest.raises(ValueError, match="r_bit_ohm"):
        bitline_currents(G, np.ones((1, 4)), 1.0, float("nan"))
    with pytest.raises(ValueError, match=">= 0 siemens"):
        effective_conductances(-G, 1.0)
    with pytest.raises(ValueError, match="rows, cols >= 1"):
        effective_conductances(np.zeros((0, 4)), 1.0)
    with pytest.raises(ValueError, match="needs r_wire_ohm > 0"):
        nodal_currents(G, np.ones((1, 4)), 0.0, 1.0)
