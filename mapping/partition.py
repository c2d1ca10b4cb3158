"""Tile one matrix onto crossbars (hardware-model.md sections 2 and 4), fully vectorized.

    >>> mm = map_matrix(W, CrossbarSpec(64, 64))     # W: (N inputs, M outputs)
    >>> mm.grid, mm.n_crossbars, mm.cells, mm.utilization
    >>> mm.row_counts[a, b]    # input wires into tile (a, b) (non-zero row segments)
    >>> mm.col_counts[a, b]    # output wires out of tile (a, b) (non-zero column segments)

Tile (a, b) holds rows [a*rows, (a+1)*rows) and logical columns [b*lcols, (b+1)*lcols).
A tile whose weights are all zero is not built.
"""

from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from mapping.spec import CrossbarSpec


@dataclass(eq=False)
class MappedMatrix:
    """One matrix on a grid of ``A x B`` crossbars (A row blocks, B logical column blocks)."""

    name: str
    weights: np.ndarray
    """(N, M) the logical matrix, rows = inputs, cols = outputs (not copied)."""
    tile_rows: int
    """Rows per crossbar (spec.rows)."""
    tile_cols: int
    """Logical columns per crossbar (spec.lcols)."""
    row_nonzero: np.ndarray
    """(N, B) bool: row i has a non-zero weight in column block b (input-wire group alive)."""
    col_nonzero: np.ndarray
    """(A, M) bool: column j has a non-zero weight in row block a (output-wire group alive)."""
    row_counts: np.ndarray
    """(A, B) int: input wires of tile (a, b) = its non-zero row segments."""
    col_counts: np.ndarray
    """(A, B) int: output wires of tile (a, b) = its non-zero column segments."""
    nnz: np.ndarray
    """(A, B) int: non-zero weights in tile (a, b)."""
    slices: int = 1
    """Crossbars per built tile (spec.slices: weight bit slices, each a copy of the tile)."""

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weights.shape)

    @property
    def grid(self) -> tuple[int, int]:
        """(A, B) = (ceil(N / rows), ceil(M / lcols))."""
        return tuple(self.row_counts.shape)

    @property
    def built(self) -> np.ndarray:
        """(A, B) bool: tile holds at least one non-zero weight."""
        return self.row_counts > 0

    @property
    def n_tiles(self) -> int:
        """Built tiles (positions on the grid)."""
        return int(self.built.sum())

    @property
    def n_crossbars(self) -> int:
        """Built crossbars: the built tiles times the weight slices each holds."""
        return self.n_tiles * self.slices

    def tile_extent(self, a: int, b: int) -> tuple[slice, slice]:
        """Row and column slices of tile (a, b) in the matrix (the last tiles may be short)."""
        r, c = self.tile_rows, self.tile_cols
        return slice(a * r, min((a + 1) * r, self.shape[0])), slice(b * c, min((b + 1) * c, self.shape[1]))

    def tile(self, a: int, b: int) -> np.ndarray:
        """Logical weight block of tile (a, b), shape (rows_in_tile, cols_in_tile) (a view)."""
        rs, cs = self.tile_extent(a, b)
        return self.weights[rs, cs]

    def tiles(self) -> list[tuple[int, int]]:
        """Built tiles (a, b), row-major."""
        return [(int(a), int(b)) for a, b in zip(*np.nonzero(self.built), strict=True)]

    def _tile_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        n, m = self.shape
        (na, nb), r, c = self.grid, self.tile_rows, self.tile_cols
        h = np.minimum(r, n - r * np.arange(na))  # (A,) rows in each row block
        w = np.minimum(c, m - c * np.arange(nb))  # (B,) cols in each column block
        return h, w

    @property
    def cells(self) -> int:
        """Logical cells the matrix occupies in its built tiles (N*M when every tile is built)."""
        h, w = self._tile_sizes()
        return int((np.outer(h, w) * self.built).sum())

    @property
    def utilization(self) -> float:
        """cells / logical capacity (n_tiles * rows * lcols) of the built tiles."""
        cap = self.n_tiles * self.tile_rows * self.tile_cols
        return self.cells / cap if cap else 0.0

    @property
    def nonzeros(self) -> int:
        return int(self.nnz.sum())

    @property
    def input_wires(self) -> int:
        return int(self.row_counts.sum())

    @property
    def output_wires(self) -> int:
        return int(self.col_counts.sum())

    def __repr__(self) -> str:
        return (f"MappedMatrix({self.name!r}, shape={self.shape}, grid={self.grid}, "
                f"n_crossbars={self.n_crossbars}, cells={self.cells})")


def as_matrix(W, name: str = "W") -> np.ndarray:
    """numpy array or torch tensor of shape (N, M) -> float numpy array (no copy if possible)."""
    if hasattr(W, "detach"):  # torch.Tensor
        W = W.detach().cpu().numpy()
    if not isinstance(W, np.ndarray):
        raise TypeError(f"matrix {name!r} must be a numpy array or torch tensor, got {type(W).__name__}")
    if W.ndim != 2 or 0 in W.shape:
        raise ConfigError(f"matrix {name!r} must be 2-D (inputs, outputs) and non-empty, got {W.shape}")
    if not np.issubdtype(W.dtype, np.floating):
        if not (np.issubdtype(W.dtype, np.integer) or W.dtype == bool):
            raise TypeError(f"matrix {name!r} must hold real numbers, got dtype {W.dtype}")
        W = W.astype(np.float32)
    if not np.isfinite(W).all():
        raise ConfigError(f"matrix {name!r} holds NaN or inf; fix the weights before mapping")
    return W


def map_matrix(W, spec: CrossbarSpec, name: str = "W") -> MappedMatrix:
    """Tile ``W`` (N inputs x M outputs, numpy or torch) onto ``spec`` crossbars.

    Vectorized: the non-zero mask is padded to (A*rows, B*lcols), viewed as
    (A, rows, B, lcols) and reduced; cost O(N*M) bytes and a few passes over W. A transposed
    view (``linear.weight.T``) is reduced in its own memory order, without a transpose copy.
    """
    if not isinstance(spec, CrossbarSpec):
        raise TypeError(f"spec must be a CrossbarSpec, got {type(spec).__name__}")
    W = as_matrix(W, name)
    n, m = W.shape
    r, c = spec.rows, spec.lcols
    nz = W != 0  # (N, M) bool, in W's memory order
    if nz.flags.f_contiguous and not nz.flags.c_contiguous:
        cols_t, rows_t, nnz_t = _block_stats(nz.T, c, r)  # tiles of W.T are (lcols, rows)
        rows_alive, cols_alive, nnz = rows_t.transpose(1, 2, 0), cols_t.transpose(2, 0, 1), nnz_t.T
    else:
        rows_alive, cols_alive, nnz = _block_stats(nz, r, c)
    na, _, nb = rows_alive.shape
    return MappedMatrix(
        name=name, weights=W, tile_rows=r, tile_cols=c,
        row_nonzero=np.ascontiguousarray(rows_alive).reshape(na * r, nb)[:n],
        col_nonzero=np.ascontiguousarray(cols_alive).reshape(na, nb * c)[:, :m],
        row_counts=rows_alive.sum(axis=1, dtype=np.int64),
        col_counts=cols_alive.sum(axis=2, dtype=np.int64),
        nnz=np.ascontiguousarray(nnz),
        slices=spec.slices,
    )


def _block_stats(nz: np.ndarray, r: int, c: int):
    """nz: (N, M) C-ordered bool -> rows_alive (A, r, B), cols_alive (A, B, c), nnz (A, B)."""
    n, m = nz.shape
    na, nb = -(-n // r), -(-m // c)
    if (na * r, nb * c) != (n, m):
        padded = np.zeros((na * r, nb * c), dtype=bool)
        padded[:n, :m] = nz
        nz = padded
    t = nz.reshape(na, r, nb, c)  # (A, rows, B, lcols)
    return t.any(axis=3), t.any(axis=1), t.sum(axis=(1, 3), dtype=np.int64)
