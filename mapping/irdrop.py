"""IR drop: bit-line currents of crossbars whose word and bit lines have wire resistance.

    >>> Geff = effective_conductances(G, r_wire_ohm=1.0)   # (..., R, C) -> (..., R, C), exact
    >>> I = bitline_currents(G, V, r_wire_ohm=1.0)          # V: (..., batch, R) -> (..., batch, C)

Circuit (the one ``netlists/spice.py`` writes; hardware-model section 8): cell (i, j) of a
crossbar with R word lines (rows) and C bit lines (physical columns) is a conductance G[i, j]
between word-line node w(i, j) and bit-line node b(i, j). Word line i is a chain of C segments
of r_word ohm: source V_i -- w(i, 0) -- w(i, 1) -- ... -- w(i, C-1) (open end). Bit line j is a
chain of R segments of r_bit ohm: b(0, j) (open end) -- b(1, j) -- ... -- b(R-1, j) -- virtual
ground, and its output current is I_j = (b(R-1, j) - 0) / r_bit, flowing out into the sensor.
With r = 0 the wires are ideal and I = V @ G.

The circuit is linear in V for fixed G, so I = V @ G_eff with an effective conductance matrix
G_eff (R, C) that depends only on G and the wires: computed once per tile (when the chip is
programmed), every batch of inputs then costs one matmul, as the ideal crossbar does.

Exact solver (``effective_conductances``): block elimination of the 2 R C nodal equations.
Row by row, the word-line nodes of row i (a tridiagonal chain, coupled to the bit-line nodes of
that row only) are eliminated, which leaves a block-tridiagonal system in the bit-line node
voltages with dense C x C blocks S_i = diag(d_i + G_i) - diag(G_i) K_i^-1 diag(G_i) and
off-diagonal blocks -g_b I (K_i = the word-line chain of row i with its cells, g = 1 / r). One
downward sweep builds the Schur complements Sigma_i = S_i - g_b^2 Sigma_{i-1}^-1 and the
response of the output to every row at once: G_eff[i] = h_i^T prod_{k >= i} (g_b Sigma_k^-1),
with h_i = G_i * (g_w K_i^-1 e_0) (the current row i injects into its bit-line nodes per volt).
K_i is tridiagonal, so K_i^-1 is semi-separable and comes from two pivot recurrences along the
word lines (a loop over the C columns, batched over tiles and rows); the Sigma_i are SPD
(Cholesky). Cost O(R C^3) per tile, batched over tiles (torch, float64; no loop over cells,
the loops run over the lines). Tiles of different shapes are padded with G = 0 rows at the top
and columns at the right: a dangling chain carries no current, so padding changes nothing.

Reference solver (``nodal_currents``): the same circuit as a sparse 2 R C x 2 R C nodal system
(scipy SuperLU), factored once and solved for a whole batch of inputs; independent of the
sweep, for tests and benchmarks.
"""

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from common.errors import ConfigError

MEM_BYTES = 1 << 28
"""Working-memory budget of one chunk of tiles in effective_conductances (about 256 MiB)."""


_RANK1_RANGE = 600.0
"""Largest decay exp(c[0] - c[-1]) along a word line for which K^-1 is formed as an outer product."""


def _wires(r_wire_ohm: float, r_bit_ohm: float | None) -> tuple[float, float]:
    r_w = r_wire_ohm
    r_b = r_wire_ohm if r_bit_ohm is None else r_bit_ohm
    for name, r in (("r_wire_ohm", r_w), ("r_bit_ohm", r_b)):
        if isinstance(r, bool) or not isinstance(r, (int, float, np.floating, np.integer)) \
                or not (np.isfinite(r) and r >= 0):
            raise ConfigError(f"{name} must be a finite number >= 0 (ohm per cell segment), got {r!r}")
    return float(r_w), float(r_b)


def _conductances(G, dtype=torch.float64) -> torch.Tensor:
    g = torch.as_tensor(G).to(dtype)
    if g.ndim < 2 or 0 in g.shape[-2:]:
        raise ConfigError(f"G must be (..., rows, cols) with rows, cols >= 1, got shape {tuple(g.shape)}")
    if not bool(torch.isfinite(g).all()) or bool((g < 0).any()):
        raise ConfigError("conductances G must be finite and >= 0 siemens (physical cells; map signed "
                          "weights with netlists.conductance first)")
    return g


def _word_line_inverses(g: torch.Tensor, g_w: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors of K^-1 for the word line of every row: K = the chain source -- w0 -- ... --
    w_{C-1} (segments g_w) plus the cells g (..., C) to the bit line. K is tridiagonal and SPD, so
    its inverse is semi-separable: K^-1[j, k] = d[max(j, k)] * exp(-|c[j] - c[k]|), with
    d = diag(K^-1) and c the cumulative log of g_w / l (l = the pivots of K from the source end,
    m from the open end). Returns (d, c), each (..., C); a loop over the C columns, batched."""
    cols = g.shape[-1]
    a = g + 2 * g_w
    a[..., -1] -= g_w  # open end: one segment
    l, m = torch.empty_like(a), torch.empty_like(a)
    l[..., 0], m[..., -1] = a[..., 0], a[..., -1]
    for t in range(1, cols):  # pivots, from the source and from the open end (ratios: no overflow)
        l[..., t] = a[..., t] - g_w * g_w / l[..., t - 1]
        m[..., cols - 1 - t] = a[..., cols - 1 - t] - g_w * g_w / m[..., cols - t]
    d = 1 / (l + m - a)
    c = torch.nn.functional.pad(torch.cumsum(torch.log(g_w / l[..., :-1]), dim=-1), (1, 0))
    return d, c


def _sweep(g: torch.Tensor, g_w: float, g_b: float) -> torch.Tensor:
    """(T, R, C) float64 conductances -> (T, R, C) effective conductances (both wires > 0).

    Works with W_i = g_b Sigma_i^-1 = (Sigma_i / g_b)^-1, so that G_eff[k] = h_k^T W_k ... W_{R-1}
    and Sigma_i / g_b = S_i / g_b - W_{i-1}."""
    t, rows, cols = g.shape
    d, c = _word_line_inverses(g, g_w)  # (T, R, C) each
    h = g * (g_w * d * torch.exp(c))  # (T, R, C) current into the bit-line nodes per volt on row i
    # K^-1[j, k] = d[k] e^{c[k] - c[j]} for j <= k is the outer product of e^{-c} and d e^{c}
    # unless e^{+-c} leaves the float64 range (wires far more resistive than the cells)
    rank1 = bool((c[..., 0] - c[..., -1]).max() < _RANK1_RANGE)
    ar = torch.arange(cols)
    far = torch.maximum(ar[:, None], ar[None, :])  # (C, C) index max(j, k)
    z = torch.zeros_like(g)  # z[:, k] = h_k^T W_k ... W_i after step i
    w = None
    for i in range(rows):  # the downward sweep: sequential over rows, batched over tiles
        gi, ci, di = g[:, i], c[:, i], d[:, i]
        # Sigma_i / g_b = diag(1 (below) + 1 (above, i > 0) + G_i / g_b) - G_i K_i^-1 G_i / g_b - W_{i-1}
        if rank1:
            e = torch.exp(ci)
            p = (gi / (g_b * e))[:, :, None] * (gi * di * e)[:, None, :]  # valid for j <= k
            upper = torch.triu(p)
            sigma = upper.add_(torch.triu(p, 1).mT).neg_()
        else:
            kinv = di[:, far] * torch.exp(-(ci[:, :, None] - ci[:, None, :]).abs())  # (T, C, C)
            sigma = -(gi / g_b)[:, :, None] * kinv * gi[:, None, :]
        sigma.diagonal(dim1=1, dim2=2).add_(gi / g_b + (1.0 if i == 0 else 2.0))
        if w is not None:
            sigma -= w
        w = torch.cholesky_inverse(torch.linalg.cholesky(sigma))  # Schur complements are SPD
        z[:, :i + 1] = torch.cat([z[:, :i], h[:, i:i + 1]], dim=1) @ w
    return z


def effective_conductances(G, r_wire_ohm: float, r_bit_ohm: float | None = None,
                           mem_bytes: int = MEM_BYTES) -> torch.Tensor:
    """G (..., R, C) in siemens -> G_eff (..., R, C), float64, with bitline currents = V @ G_eff.

    r_wire_ohm: resistance of one word-line segment (and of one bit-line segment unless
    r_bit_ohm is given); 0 = ideal wire. Exact (same circuit as the SPICE export) up to float64
    rounding. Leading dims are tiles, solved together in chunks of about ``mem_bytes``.
    """
    r_w, r_b = _wires(r_wire_ohm, r_bit_ohm)
    g = _conductances(G)
    if r_w == 0 and r_b == 0:
        return g.clone()
    lead, (rows, cols) = g.shape[:-2], g.shape[-2:]
    flat = g.reshape(-1, rows, cols)
    if r_b == 0:  # bit lines at 0 V everywhere: each row is its own word-line chain
        d, c = _word_line_inverses(flat, 1 / r_w)
        return (flat * (d * torch.exp(c) / r_w)).reshape(g.shape)  # G * word-line volts per volt
    per_tile = 8 * (6 * cols * cols + 8 * rows * cols)  # (C, C) blocks of one sweep step, (R, C) factors
    step = max(1, int(mem_bytes // per_tile))
    out = []
    for part in flat.split(step):
        out.append(_sweep_ideal_word(part, 1 / r_b) if r_w == 0 else _sweep(part, 1 / r_w, 1 / r_b))
    return torch.cat(out).reshape(*lead, rows, cols)


def _sweep_ideal_word(g: torch.Tensor, g_b: float) -> torch.Tensor:
    """Ideal word lines (every w(i, j) = V_i): each bit line is an independent ladder."""
    t, rows, cols = g.shape
    z = torch.zeros_like(g)
    prev = torch.zeros_like(g[:, 0])
    for i in range(rows):  # the same sweep, with diagonal (per column) Schur complements
        sigma = g[:, i] + (g_b if i == 0 else 2 * g_b) - prev
        z[:, :i + 1] = torch.cat([z[:, :i], g[:, i:i + 1]], dim=1) * (g_b / sigma)[:, None, :]
        prev = g_b * g_b / sigma
    return z


def bitline_currents(G, V, r_wire_ohm: float, r_bit_ohm: float | None = None,
                     dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Bit-line currents (..., batch, C) in amperes of crossbars G (..., R, C) siemens driven
    with word-line volts V (..., batch, R). r_wire_ohm = 0 (and r_bit_ohm 0 or None): ideal
    wires, exactly ``V @ G``. Otherwise ``V @ effective_conductances(G, ...)``; the effective
    conductances are always computed in float64, the product in ``dtype``."""
    r_w, r_b = _wires(r_wire_ohm, r_bit_ohm)
    v = torch.as_tensor(V).to(dtype)
    if r_w == 0 and r_b == 0:
        return v @ _conductances(G, dtype)
    return v @ effective_conductances(G, r_w, r_b).to(dtype)


def pad_tiles(tiles: Sequence) -> tuple[torch.Tensor, list[tuple[int, int]]]:
    """Conductance matrices of different shapes -> one (T, R_max, C_max) float64 batch padded
    with G = 0 rows at the top and columns at the right (electrically inert there), and the
    shapes. ``unpad`` takes the effective conductances back to each tile's shape."""
    gs = [_conductances(g) for g in tiles]
    if not gs or any(g.ndim != 2 for g in gs):
        raise ConfigError("pad_tiles needs a non-empty list of (rows, cols) conductance matrices")
    shapes = [tuple(g.shape) for g in gs]
    rows, cols = max(s[0] for s in shapes), max(s[1] for s in shapes)
    out = torch.zeros(len(gs), rows, cols, dtype=torch.float64)
    for k, g in enumerate(gs):  # one copy per tile
        out[k, rows - g.shape[0]:, :g.shape[1]] = g
    return out, shapes


def unpad(geff: torch.Tensor, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Inverse of pad_tiles' layout: (T, R_max, C_max) -> [(rows_k, cols_k)]."""
    rows = geff.shape[1]
    return [geff[k, rows - r:, :c] for k, (r, c) in enumerate(shapes)]


def nodal_currents(G, V, r_wire_ohm: float, r_bit_ohm: float | None = None) -> np.ndarray:
    """Reference: bit-line currents (batch, C) of one crossbar G (R, C) with inputs V (batch, R)
    from the full sparse nodal system (2 R C unknowns: word-line then bit-line node volts, row
    major), factored once (SuperLU) and solved for every input column. Both wires must be > 0."""
    r_w, r_b = _wires(r_wire_ohm, r_bit_ohm)
    if r_w == 0 or r_b == 0:
        raise ConfigError("nodal_currents needs r_wire_ohm > 0 and r_bit_ohm > 0; use "
                          "effective_conductances for ideal wires")
    g = _conductances(G).numpy()
    v = np.atleast_2d(np.asarray(V, dtype=np.float64))
    if g.ndim != 2 or v.ndim != 2 or v.shape[1] != g.shape[0]:
        raise ConfigError(f"nodal_currents needs G (R, C) and V (batch, R), got {g.shape} and {v.shape}")
    rows, cols = g.shape
    n = rows * cols
    w = np.arange(n).reshape(rows, cols)  # word-line node ids
    b = w + n  # bit-line node ids
    g_w, g_b = 1 / r_w, 1 / r_b
    edges = [  # (node a, node b, conductance) between unknowns
        (w.ravel(), b.ravel(), g.ravel()),  # cells
        (w[:, :-1].ravel(), w[:, 1:].ravel(), np.full(rows * (cols - 1), g_w)),  # word segments
        (b[:-1].ravel(), b[1:].ravel(), np.full((rows - 1) * cols, g_b)),  # bit segments
    ]
    a_idx = np.concatenate([e[0] for e in edges])
    b_idx = np.concatenate([e[1] for e in edges])
    val = np.concatenate([e[2] for e in edges])
    ground = np.concatenate([w[:, 0], b[-1]])  # segments to the sources and to virtual ground
    ii = np.concatenate([a_idx, b_idx, a_idx, b_idx, ground])
    jj = np.concatenate([a_idx, b_idx, b_idx, a_idx, ground])
    vv = np.concatenate([val, val, -val, -val, np.r_[np.full(rows, g_w), np.full(cols, g_b)]])
    A = sp.csc_matrix((vv, (ii, jj)), shape=(2 * n, 2 * n))  # duplicates are summed
    rhs = np.zeros((2 * n, v.shape[0]))
    rhs[w[:, 0]] = g_w * v.T  # source V_i through the first word-line segment
    x = spla.splu(A).solve(rhs)  # (2n, batch)
    return (g_b * x[b[-1]]).T
