"""Crossbar-level functional model: weights -> conductances -> tile-by-tile matmul.

    >>> bank = program(mapped_matrix, "differential", DeviceModel(levels=16, seed=0))
    >>> y = bank.matmul(x)       # x: (P, N) -> y: (P, M), crossbar by crossbar

The whole design is simulated by ``mapping.simulate.CrossbarSimulator``.

Encodings (hardware-model.md section 2), per built tile with logical block W_t:
- unsigned:     one conductance per weight, G = W_t as is (ideal signed conductance).
- differential: G+ = relu(W_t), G- = relu(-W_t) in separate columns, y = x G+ - x G-.
- offset:       G = W_t + o_t with o_t = max(0, -min W_t), and a reference column of o_t in
                every row; the periphery outputs x G - x ref on the tile's live columns.
Rows and columns that are all zero in a tile are not wired (their cells are not programmed).

Optional device effects (``DeviceModel``), applied per tile when it is programmed, seeded:
- levels L: each conductance is rounded to one of L evenly spaced levels in [0, g_max]
  (g_max = the tile's largest |G|; the sign is kept for 'unsigned').
- variation_sigma s: each programmed cell is scaled by exp(s * n) ('lognormal', median 1) or
  (1 + s * n) ('gaussian'), n ~ N(0, 1) i.i.d., drawn once when the chip is programmed.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import ConfigError
from mapping.partition import MappedMatrix

VARIATIONS = ("lognormal", "gaussian")


@dataclass(frozen=True)
class DeviceModel:
    """Non-ideal memristor cells for the functional simulation."""

    levels: int | None = None
    """Conductance levels per cell (>= 2); None = continuous (ideal)."""
    variation_sigma: float = 0.0
    """Std-dev of the multiplicative programming variation (0 = none)."""
    variation: str = "lognormal"
    """'lognormal' (G * exp(s n)) or 'gaussian' (G * (1 + s n))."""
    seed: int = 0
    """Seed of the variation draws: same seed, same chip, same outputs."""

    def __post_init__(self) -> None:
        if self.levels is not None and (isinstance(self.levels, bool) or
                                        not isinstance(self.levels, int) or self.levels < 2):
            raise ConfigError(f"DeviceModel.levels must be an int >= 2 or None, got {self.levels!r}")
        if not (isinstance(self.variation_sigma, (int, float)) and 0 <= self.variation_sigma < 10):
            raise ConfigError(f"DeviceModel.variation_sigma must be in [0, 10), got {self.variation_sigma!r}")
        if self.variation not in VARIATIONS:
            raise ConfigError(f"DeviceModel.variation must be one of {VARIATIONS}, got {self.variation!r}")

    def apply(self, g: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """g: (T, S, rows, cols) conductance sets of T tiles -> programmed conductances."""
        if self.levels is not None:
            gmax = g.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-300)  # per tile
            step = gmax / (self.levels - 1)
            g = torch.round(g / step) * step
        if self.variation_sigma > 0:
            n = torch.randn(g.shape, generator=gen, dtype=g.dtype)
            s = self.variation_sigma
            g = g * (torch.exp(s * n) if self.variation == "lognormal" else 1 + s * n)
        return g


@dataclass
class TileBank:
    """The built tiles of one matrix, programmed, ready to evaluate."""

    shape: tuple[int, int]
    """(N, M) of the matrix."""
    grid: tuple[int, int]
    a: torch.Tensor
    """(T,) row block of each built tile."""
    b: torch.Tensor
    """(T,) column block of each built tile."""
    g: torch.Tensor
    """(T, S, rows, lcols) conductances; S = 1 (unsigned, offset) or 2 (G+, G-). A matrix with
    fewer rows (columns) than one crossbar keeps only its N (M): the rest is unwired."""
    ref: torch.Tensor | None
    """(T, rows, 1) offset reference column, or None."""
    col_live: torch.Tensor
    """(T, 1, lcols) 1 where the tile's output column is wired."""

    def matmul(self, x: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """x: (P, N) -> (P, M): every tile multiplies its row slice, G- and the reference are
        subtracted in the tile periphery, partial sums add up per column block."""
        (n, m), (na, nb) = self.shape, self.grid
        t, _, rows, lcols = self.g.shape
        sign = torch.tensor([1.0, -1.0], dtype=self.g.dtype)[: self.g.shape[1]]
        outs = []
        for x_c in x.split(chunk):  # bounded memory for large batches x pixels
            p = x_c.shape[0]
            xp = F.pad(x_c.to(self.g.dtype), (0, na * rows - n))
            xg = xp.view(p, na, rows)[:, self.a].transpose(0, 1)  # (T, P, rows)
            y = torch.einsum("tpr,tsrc,s->tpc", xg, self.g, sign)  # (T, P, lcols)
            if self.ref is not None:
                y = y - torch.bmm(xg, self.ref)  # reference column
            y = y * self.col_live
            acc = torch.zeros(nb, p, lcols, dtype=y.dtype).index_add_(0, self.b, y)  # (B, P, lcols)
            outs.append(acc.transpose(0, 1).reshape(p, nb * lcols)[:, :m])
        if not outs:
            return x.new_zeros((0, m), dtype=self.g.dtype)
        return torch.cat(outs)


def program(mm: MappedMatrix, encoding: str, device: DeviceModel | None = None,
            gen: torch.Generator | None = None, dtype=torch.float64) -> TileBank:
    """Program the built tiles of ``mm`` with ``encoding`` (and optional device effects)."""
    (n, m), (na, nb), r, c = mm.shape, mm.grid, mm.tile_rows, mm.tile_cols
    a_idx, b_idx = np.nonzero(mm.built)
    w = torch.zeros(na * r, nb * c, dtype=dtype)
    w[:n, :m] = torch.as_tensor(np.asarray(mm.weights), dtype=dtype)
    w = w.view(na, r, nb, c).permute(0, 2, 1, 3)[a_idx, b_idx]  # (T, rows, lcols)
    rl = np.zeros((na * r, nb), dtype=bool)
    rl[:n] = mm.row_nonzero
    row_live = torch.as_tensor(rl.reshape(na, r, nb)[a_idx, :, b_idx], dtype=dtype)  # (T, rows)
    cl = np.zeros((na, nb * c), dtype=bool)
    cl[:, :m] = mm.col_nonzero
    col_live = torch.as_tensor(cl.reshape(na, nb, c)[a_idx, b_idx], dtype=dtype)  # (T, lcols)
    live = row_live[:, :, None] * col_live[:, None, :]  # (T, rows, lcols) wired cells
    ref = None
    if encoding == "unsigned":
        g = w[:, None]
    elif encoding == "differential":
        g = torch.stack([w.clamp_min(0), (-w).clamp_min(0)], dim=1)
    elif encoding == "offset":
        off = (-w.amin(dim=(1, 2))).clamp_min(0)  # (T,)
        g = ((w + off[:, None, None]) * live)[:, None]
        ref = (off[:, None] * row_live)[:, :, None]  # (T, rows, 1)
    else:
        raise ConfigError(f"unknown encoding {encoding!r}; use differential, offset or unsigned")
    if device is not None:
        gen = gen if gen is not None else torch.Generator().manual_seed(device.seed)
        if ref is not None:  # the reference column is a column of the same crossbar
            both = device.apply(torch.cat([g, ref[:, None].expand(-1, 1, -1, 1)], dim=3), gen)
            g, ref = both[..., :c], both[:, 0, :, c:]
        else:
            g = device.apply(g, gen)
    rr, cc = (n if na == 1 else r), (m if nb == 1 else c)  # drawn on whole tiles, then trimmed
    if (rr, cc) != (r, c):
        g, col_live = g[:, :, :rr, :cc].clone(), col_live[:, :cc].clone()
        ref = None if ref is None else ref[:, :rr].clone()
    return TileBank((n, m), (na, nb), torch.as_tensor(a_idx), torch.as_tensor(b_idx),
                    g, ref, col_live[:, None, :])
