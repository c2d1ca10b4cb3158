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


def tile_conductances(design: Design, config: SpiceConfig | None = None) -> dict[str, np.ndarray]:
    """Tile name -> conductance matrix G (rows_in_tile, physical bit lines) in siemens."""
    config = config or SpiceConfig()
    scales, units = matrix_scales(design), design.units_by_name()
    return {name: weights_to_conductances(w, design.encoding, scales[units[name].matrix], config)
            for name, w in design.tile_weights.items()}


def logical_currents(bitline_amps: np.ndarray, encoding: str) -> np.ndarray:
    """Bit-line currents (..., physical) -> per-weight-column signals (..., n) in amperes."""
    i = np.asarray(bitline_amps)
    if encoding == "differential":
        return i[..., 0::2] - i[..., 1::2]
    if encoding == "offset":
        return i[..., :-1] - i[..., -1:]
    return i
