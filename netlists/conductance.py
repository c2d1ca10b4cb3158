"""Weights -> cell conductances (the linear map every export documents) and back to outputs.

Per matrix, w_max = max |w| over all its tiles, so the tiles of one matrix share one scale and
their partial sums add up in the output unit A(b). With g = G_max - G_min:

- differential: bit line 2j holds G+ = G_min + g * relu(w) / w_max, bit line 2j+1 holds
  G- = G_min + g * relu(-w) / w_max;  I+ - I- = (g / w_max) * W^T v.
- offset: bit line j holds G = G_mid + (g / 2) * w / w_max with G_mid = (G_min + G_max) / 2,
  and one reference bit line (after the weight columns) holds G_mid in every row;
  I_j - I_ref = (g / (2 w_max)) * W^T v.
- unsigned: bit line j holds G = G_min + g * w / w_max (weights must be >= 0);
  I_j = (g / w_max) * W^T v + G_min * sum(v).

Weight precision (``design.weight_bits`` / ``cell_bits``, hardware-model section 2, the same
arithmetic as mapping.devices): per matrix, q = round(w / s) with s = max|w| / (2**(b-1) - 1)
(b = weight_bits), and |q| is cut into K = design.slices digits of c = min(cell_bits, b - 1)
bits (c = b - 1 without cell_bits: K = 1), least significant first, each signed like q. Slice
k of a tile is a crossbar of its own whose cells hold digit k by the map above with
w_max = D = 2**c - 1 (the digit range); the periphery shifts and adds the slices' outputs,
sum_k 2**(c k) * (I+_k - I-_k) = (g / D) * q^T v, i.e. (g / (s D)) * (s q)^T v: the unsliced
relation with W the quantized weights s q and w_max = s D (``SliceMap``).
"""

from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from mapping.design import Design
from netlists._common import NetlistError


@dataclass(frozen=True)
class SpiceConfig:
    """Device and wire figures of the SPICE export (overridable; defaults are typical RRAM)."""

    g_min_siemens: float = 1e-6
    """Lowest programmable cell conductance (high-resistance state, 1 MOhm)."""
    g_max_siemens: float = 1e-4
    """Highest programmable cell conductance (low-resistance state, 10 kOhm)."""
    v_read_volt: float = 0.2
    """Word-line voltage used for every input when no inputs are given (below switching)."""
    r_wire_ohm: float = 0.0
    """Wire resistance of one cell segment of a word or bit line; 0 = ideal wires (no IR drop)."""

    def __post_init__(self) -> None:
        if not 0 < self.g_min_siemens < self.g_max_siemens:
            raise ConfigError(
                f"need 0 < g_min_siemens < g_max_siemens, got {self.g_min_siemens} and "
                f"{self.g_max_siemens}; e.g. SpiceConfig(g_min_siemens=1e-6, g_max_siemens=1e-4)")
        if not np.isfinite(self.g_max_siemens):
            raise ConfigError(f"g_max_siemens must be finite, got {self.g_max_siemens}")
        if not np.isfinite(self.v_read_volt):
            raise ConfigError(f"v_read_volt must be finite, got {self.v_read_volt}")
        if not (self.r_wire_ohm >= 0 and np.isfinite(self.r_wire_ohm)):
            raise ConfigError(f"r_wire_ohm must be a finite number >= 0, got {self.r_wire_ohm}")


def matrix_scales(design: Design) -> dict[str, float]:
    """Matrix name -> w_max = max |w| over its tiles (1.0 for an all-zero matrix)."""
    scales: dict[str, float] = {}
    units = design.units_by_name()
    for name, w in design.tile_weights.items():
        m = units[name].matrix
        wmax = float(np.max(np.abs(w))) if np.size(w) else 0.0
        if not np.isfinite(wmax):
            raise NetlistError(f"weights of tile {name!r} are not finite; no conductance for them")
        scales[m] = max(scales.get(m, 0.0), wmax)
    return {m: (s if s > 0 else 1.0) for m, s in scales.items()}


def weights_to_conductances(w: np.ndarray, encoding: str, w_max: float,
                            config: SpiceConfig) -> np.ndarray:
    """Logical block (rows, n) -> conductances (rows, physical bit lines) in siemens, float64."""
    w = np.asarray(w, dtype=np.float64)  # (rows, n)
    g0, g = config.g_min_siemens, config.g_max_siemens - config.g_min_siemens
    x = np.clip(w / w_max, -1.0, 1.0)  # clip only rounding above 1
    if encoding == "differential":
        G = np.empty((w.shape[0], 2 * w.shape[1]))
        G[:, 0::2] = g0 + g * np.maximum(x, 0.0)  # G+
        G[:, 1::2] = g0 + g * np.maximum(-x, 0.0)  # G-
        return G
    if encoding == "offset":
        ref = np.full((w.shape[0], 1), g0 + g / 2)  # G_mid
        return np.concatenate([g0 + g * (1 + x) / 2, ref], axis=1)  # (rows, n + 1)
    if encoding == "unsigned":
        if np.any(w < 0):
            raise NetlistError("encoding 'unsigned' cannot hold negative weights; map the model "
                               "with encoding 'differential' or 'offset'")
        return g0 + g * x
    raise NetlistError(f"unknown encoding {encoding!r}")


@dataclass(frozen=True, eq=False)
class SliceMap:
    """What the slices of every tile hold (see the module docstring): slice k of tile t holds
    ``values[t][k]``, mapped onto [G_min, G_max] with ``full_scale``; the periphery adds the
    slices' outputs times ``shifts[k]``; ``step[m]`` is the weight of one unit of the sum.
    The chip's weights: W_t = step * sum_k shifts[k] * values[t][k]."""

    values: dict[str, np.ndarray]
    """Tile name -> (K, rows_in_tile, n): the analog weights (K = 1) or the signed digits."""
    full_scale: dict[str, float]
    """Matrix name -> the value a cell at G_max holds (w_max; the digit range D if quantized)."""
    shifts: np.ndarray
    """(K,) the periphery's factor of each slice: 2**(c k) (1 for analog weights)."""
    step: dict[str, float]
    """Matrix name -> s, the weight of one unit of q (1.0 for analog weights)."""

    def weights(self, tile: str, matrix: str) -> np.ndarray:
        """The weights the chip holds for ``tile`` (of ``matrix``): the quantized s q."""
        return self.step[matrix] * np.tensordot(self.shifts, self.values[tile], axes=1)


def _digit_bits(design: Design) -> int:
    """c: bits of one slice's digit (min(cell_bits, weight_bits - 1); weight_bits - 1 unsliced)."""
    b = design.weight_bits
    return b - 1 if design.cell_bits is None else min(design.cell_bits, b - 1)


def slice_shifts(design: Design) -> np.ndarray:
    """(K,) the periphery's factor of each slice, 2**(c k); [1.0] unless bit-sliced."""
    if design.slices == 1:
        return np.ones(1)
    return 2.0 ** (_digit_bits(design) * np.arange(design.slices))


def slice_map(design: Design) -> SliceMap:
    """The slices of every tile of ``design``: the analog weights as one slice, or the digits
    of the quantized weights (design.weight_bits, design.cell_bits)."""
    scales, units = matrix_scales(design), design.units_by_name()
    b = design.weight_bits
    if b is None:
        return SliceMap({n: np.asarray(w, dtype=np.float64)[None]
                         for n, w in design.tile_weights.items()}, scales, np.ones(1),
                        dict.fromkeys(scales, 1.0))
    c = _digit_bits(design)
    qmax = 2 ** (b - 1) - 1
    # s from the matrix's max |w| (matrix_scales gives 1.0 for an all-zero matrix: q = 0 anyway)
    step = {m: w_max / qmax for m, w_max in scales.items()}
    shifts = slice_shifts(design)
    values = {}
    for name, w in design.tile_weights.items():
        q = np.round(np.asarray(w, dtype=np.float64) / step[units[name].matrix])
        digits = np.remainder(np.floor(np.abs(q)[None] / shifts[:, None, None]), 2.0 ** c)
        values[name] = np.sign(q)[None] * digits  # (K, rows, n), sum_k shifts_k d_k == q
    return SliceMap(values, dict.fromkeys(scales, 2.0 ** c - 1), shifts, step)


def slice_conductances(design: Design, config: SpiceConfig | None = None
                       ) -> dict[str, np.ndarray]:
    """Tile name -> conductances of its slices (K, rows_in_tile, physical bit lines) in
    siemens; K = design.slices (1 unless the weights are bit-sliced)."""
    config = config or SpiceConfig()
    sm, units = slice_map(design), design.units_by_name()
    return {name: np.stack([weights_to_conductances(v, design.encoding,
                                                    sm.full_scale[units[name].matrix], config)
                            for v in vals])
            for name, vals in sm.values.items()}


def tile_conductances(design: Design, config: SpiceConfig | None = None) -> dict[str, np.ndarray]:
    """Tile name -> conductance matrix G (rows_in_tile, physical bit lines) in siemens (the
    quantized weights' if design.weight_bits is set). A bit-sliced design has several
    crossbars per tile: NetlistError, use slice_conductances."""
    if design.slices > 1:
        raise NetlistError(f"the weights are sliced over {design.slices} crossbars per tile "
                           f"(weight_bits {design.weight_bits}, cell_bits {design.cell_bits}); "
                           "use slice_conductances for every slice's conductances")
    return {name: g[0] for name, g in slice_conductances(design, config).items()}


def logical_currents(bitline_amps: np.ndarray, encoding: str) -> np.ndarray:
    """Bit-line currents (..., physical) -> per-weight-column signals (..., n) in amperes."""
    i = np.asarray(bitline_amps)
    if encoding == "differential":
        return i[..., 0::2] - i[..., 1::2]
    if encoding == "offset":
        return i[..., :-1] - i[..., -1:]
    return i
