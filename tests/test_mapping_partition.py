"""map_matrix: tile grid, built tiles, wire groups, cells; property tests against loops."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping import CrossbarSpec, map_matrix


def reference(W: np.ndarray, r: int, c: int):
    """Loop-based tile statistics (the definition of hardware-model.md sections 2 and 4)."""
    na, nb = math.ceil(W.shape[0] / r), math.ceil(W.shape[1] / c)
    rc, cc, nnz = (np.zeros((na, nb), int) for _ in range(3))
    for a in range(na):
        for b in range(nb):
            t = W[a * r:(a + 1) * r, b * c:(b + 1) * c]
            rc[a, b] = sum(bool(row.any()) for row in t)
            cc[a, b] = sum(bool(col.any()) for col in t.T)
            nnz[a, b] = np.count_nonzero(t)
    return rc, cc, nnz


def test_dense_grid_and_cells():
    W = np.random.default_rng(0).standard_normal((100, 70))
    mm = map_matrix(W, CrossbarSpec(64, 64), "fc")
    assert mm.grid == (2, 3) and mm.n_crossbars == 6 and mm.cells == 7000
    assert mm.utilization == pytest.approx(7000 / (6 * 64 * 32))
    assert mm.row_counts.tolist() == [[64, 64, 64], [36, 36, 36]]
    assert mm.col_counts.tolist() == [[32, 32, 6], [32, 32, 6]]
    assert mm.nonzeros == 7000 and mm.input_wires == 300 and mm.output_wires == 140
    assert mm.tile(1, 2).shape == (36, 6) and mm.tiles()[0] == (0, 0)


def test_sparse_tiles_and_wires():
    W = np.ones((100, 70))
    W[64:, 64:] = 0.0  # tile (1, 2) empty: not built
    W[3, 0:32] = 0.0  # input wire 3 of tile (0, 0) removed
    W[:64, 40] = 0.0  # output wire 40 of tile (0, 1) removed
    mm = map_matrix(W, CrossbarSpec(64, 64), "fc")
    assert mm.built.tolist() == [[True, True, True], [True, True, False]]
    assert mm.n_crossbars == 5 and mm.cells == 7000 - 36 * 6
    assert mm.row_counts[0, 0] == 63 and mm.col_counts[0, 1] == 31 and mm.col_counts[1, 2] == 0
    assert not mm.row_nonzero[3, 0] and mm.row_nonzero[3, 1] and not mm.col_nonzero[0, 40]
    assert mm.tiles() == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


@pytest.mark.parametrize("spec,grid", [
    (CrossbarSpec(32, 128, "differential"), (4, 2)), (CrossbarSpec(32, 128, "offset"), (4, 1)),
    (CrossbarSpec(7, 5, "unsigned"), (15, 25)), (CrossbarSpec(7, 5, "offset"), (15, 31)),
    (CrossbarSpec(128, 128), (1, 2)),
])
def test_odd_and_non_square(spec, grid):
    W = torch.randn(101, 123)  # a torch tensor is accepted as is
    mm = map_matrix(W, spec)
    assert mm.grid == grid and mm.n_crossbars == grid[0] * grid[1] and mm.cells == 101 * 123
    assert (mm.tile_rows, mm.tile_cols) == (spec.rows, spec.lcols)


def test_zero_matrix_builds_nothing():
    mm = map_matrix(np.zeros((10, 10)), CrossbarSpec(4, 4))
    assert mm.n_crossbars == 0 and mm.cells == 0 and mm.utilization == 0.0


@pytest.mark.parametrize("W,exc,match", [
    (np.ones(5), ValueError, "must be 2-D"),
    (np.ones((0, 4)), ValueError, "non-empty"),
    (np.array([[1.0, np.nan]]), ValueError, "NaN or inf"),
    ([[1.0, 2.0]], TypeError, "numpy array or torch tensor"),
    (np.array([["a", "b"]]), TypeError, "real numbers"),
])
def test_bad_matrices(W, exc, match):
    with pytest.raises(exc, match=match):
        map_matrix(W, CrossbarSpec(), "conv9")


def test_bad_spec():
    with pytest.raises(TypeError, match="CrossbarSpec"):
        map_matrix(np.ones((3, 3)), (64, 64))


@st.composite
def sparse_matrices(draw):
    n, m = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, m)).astype(np.float32)
    W[rng.random(n) < draw(st.floats(0, 1))] = 0  # deleted rows
    W[:, rng.random(m) < draw(st.floats(0, 1))] = 0  # deleted columns
    W[rng.random((n, m)) < draw(st.floats(0, 1))] = 0  # scattered zeros
    r0, c0 = rng.integers(0, n), rng.integers(0, m)
    W[r0:r0 + draw(st.integers(0, 40)), c0:c0 + draw(st.integers(0, 40))] = 0  # a zero block
    return W


specs = st.builds(CrossbarSpec, rows=st.integers(1, 40), cols=st.integers(2, 40),
                  encoding=st.sampled_from(["differential", "offset", "unsigned"]))


@settings(max_examples=150, deadline=None)
@given(W=sparse_matrices(), spec=specs)
def test_property_matches_loops(W, spec):
    mm = map_matrix(W, spec)
    r, c = spec.rows, spec.lcols
    assert mm.grid == (math.ceil(W.shape[0] / r), math.ceil(W.shape[1] / c))
    rc, cc, nnz = reference(W, r, c)
    np.testing.assert_array_equal(mm.row_counts, rc)
    np.testing.assert_array_equal(mm.col_counts, cc)
    np.testing.assert_array_equal(mm.nnz, nnz)
    np.testing.assert_array_equal(mm.built, nnz > 0)
    assert mm.row_counts.sum() == mm.row_nonzero.sum() and mm.col_counts.sum() == mm.col_nonzero.sum()
    # every non-zero weight lands in exactly one cell of exactly one built crossbar
    cover, rebuilt = np.zeros(W.shape, int), np.zeros_like(W)
    for a, b in mm.tiles():
        rs, cs = mm.tile_extent(a, b)
        cover[rs, cs] += 1
        rebuilt[rs, cs] = mm.tile(a, b)
        assert mm.tile(a, b).shape[0] <= r and mm.tile(a, b).shape[1] <= c
    assert (cover[W != 0] == 1).all() and cover.max() <= 1
    np.testing.assert_array_equal(rebuilt, W)
    assert mm.cells == cover.sum() and mm.nonzeros == np.count_nonzero(W)
