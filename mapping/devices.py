"""Crossbar-level functional model: weights -> conductances -> tile-by-tile matmul.

    >>> bank = program(mapped_matrix, "differential", DeviceModel(levels=16, seed=0))
    >>> y = bank.matmul(x)       # x: (P, N) -> y: (P, M), crossbar by crossbar
    >>> dev = DeviceModel.load("rram_neurosim")          # a preset, or a TOML file path

The whole design is simulated by ``mapping.simulate.CrossbarSimulator``.

Encodings (hardware-model.md section 2), per built tile with logical block W_t:
- unsigned:     one conductance per weight, G = W_t as is (ideal signed conductance).
- differential: G+ = relu(W_t), G- = relu(-W_t) in separate columns, y = x G+ - x G-.
- offset:       G = W_t + o_t with o_t = max(0, -min W_t), and a reference column of o_t in
                every row; the periphery outputs x G - x ref on the tile's live columns.
Rows and columns that are all zero in a tile are not wired (their cells are not programmed).

Weight bit slicing (``CrossbarSpec.weight_bits``/``cell_bits``, section 2): the weights of a
matrix are quantized to integers q = round(W / s), s = max|W| / (2**(b-1) - 1), and |q| is cut
into K = spec.slices digits of cell_bits bits; slice k is a copy of the tile grid holding
sign(q) * digit_k, and its results are multiplied by s * 2**(cell_bits * k) and added (shift
and add). With ideal devices this computes x @ (s q) exactly (to float rounding).

Device and circuit effects (``DeviceModel``, section 8), all off by default; applied seeded in
this order when the chip is programmed (``program``) and evaluated (``TileBank.matmul``):

1. window and levels: per tile, the encoding's conductances G in [0, FS] (FS = the tile's
   largest |G|, or for sliced differential/unsigned tiles the digit range 2**cell_bits - 1)
   are rounded to ``levels`` evenly spaced values in [0, FS] (sign kept for 'unsigned'), then
   mapped onto the physical window: G_phys = g_min + G (g_max - g_min) / FS, so a weight of 0
   is g_min; cells that are not wired (and the unused part of a crossbar) sit at g_min. The
   differential / offset subtraction removes the common g_min part, and the periphery scales
   each tile's result back by FS / (g_max - g_min) (a digital constant per tile). Without a
   window the cells hold G itself (the ideal window [0, FS]).
2. programming variation: every cell (reference column included) times exp(s n) (lognormal)
   or (1 + s n) (gaussian, clipped at 0 for physical conductances), n ~ N(0, 1), once per chip.
3. stuck-at faults: each cell independently stuck at the window's bottom (off: g_min, or 0)
   with probability stuck_off_fraction, at its top (on: g_max, or FS) with stuck_on_fraction.
4. read noise: at every evaluation, gaussian on each cell's current x_i G_ij with relative
   sigma; a bit line sums them, so it gets sigma * sqrt(sum_i (x_i G_ij)^2) * n, n ~ N(0, 1)
   per sample and bit line (from a generator of its own: the chip stays the same).
5. IR drop: the programmed physical array (bit lines in the physical order: G+ and G- side by
   side, the offset reference last) is replaced once per chip by its exact effective
   conductances (``mapping.irdrop.effective_conductances``, wires of r_wire_ohm per cell).
   Needs the physical window; 'unsigned' holds signed conductances (an idealisation) and is
   refused with a window or wires.
6. converters: the matrix input goes through a DAC of ``dac_bits`` over one range per matrix,
   every physical bit line through an ADC of ``adc_bits`` over a range of its own; the ranges
   are calibrated on a calibration batch (min and max seen, widened to include 0; an affine
   grid on which 0 is exact), values outside are clipped. The subtraction, the slices' shift
   and add and the partial sums of the tiles are digital, after the ADC.

Rows that are not wired are driven with 0 V. A non-ideal bank computes its products in
``compute_dtype`` (float64 unless asked otherwise), row block by row block.
"""

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import ConfigError
from mapping.partition import MappedMatrix

VARIATIONS = ("lognormal", "gaussian")
PRESETS = Path(__file__).resolve().parent / "presets" / "devices"
"""Folder of the shipped device files (TOML), one per preset."""
FILE_KEYS = ("name", "description", "sources")
"""Keys of a device file that describe it rather than set a field (kept in reports)."""
READ_SEED = 0x5EED
"""Read noise draws from a generator seeded with seed + READ_SEED, apart from the chip's."""
FAULT_SEED = 0xFA17
"""Stuck-at faults draw from a generator seeded with seed + FAULT_SEED: turning faults on or
off leaves the variation of every cell as it was."""
CHUNK_BYTES = 1 << 26
"""Working memory of one chunk of currents in a non-ideal matmul (64 MiB)."""


def _bits(name: str, v) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 24):
        raise ConfigError(f"DeviceModel.{name} must be an int in 1..24 or None, got {v!r}")


def _real(name: str, v, lo: float = 0.0, hi: float = math.inf, none: bool = False) -> None:
    if v is None and none:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not lo <= v < hi:
        raise ConfigError(f"DeviceModel.{name} must be a number in [{lo}, {hi}), got {v!r}")


@dataclass(frozen=True)
class DeviceModel:
    """Non-ideal memristor cells and crossbar circuit for the functional simulation
    (hardware-model section 8). Every effect is off by default: ``DeviceModel()`` is the ideal,
    exact chip. Read one from a TOML file with ``DeviceModel.load(path_or_preset)``."""

    levels: int | None = None
    """Conductance levels per cell (>= 2), evenly spaced over the window; None = continuous."""
    variation_sigma: float = 0.0
    """Std-dev of the multiplicative programming variation, drawn once per chip (0 = none)."""
    variation: str = "lognormal"
    """'lognormal' (G * exp(s n)) or 'gaussian' (G * (1 + s n))."""
    seed: int = 0
    """Chip seed: the variation and fault draws (and the read noise sequence) follow from it."""
    g_min_us: float | None = None
    """Lowest cell conductance (off state, a weight of 0), microsiemens; set with g_max_us.
    None = the ideal window [0, the tile's largest weight], no physical units."""
    g_max_us: float | None = None
    """Highest cell conductance (on state), microsiemens; on/off ratio = g_max_us / g_min_us."""
    stuck_off_fraction: float = 0.0
    """Fraction of cells stuck at the bottom of the window (g_min), drawn once per chip."""
    stuck_on_fraction: float = 0.0
    """Fraction of cells stuck at the top of the window (g_max), drawn once per chip."""
    read_noise_sigma: float = 0.0
    """Relative std-dev of the gaussian noise on each cell's current, drawn at every read."""
    r_wire_ohm: float = 0.0
    """Wire resistance of one word-line segment per cell (and of one bit-line segment unless
    r_bit_ohm is set), ohm; 0 = ideal wires. Needs g_min_us/g_max_us."""
    r_bit_ohm: float | None = None
    """Bit-line resistance per cell segment, ohm; None = r_wire_ohm."""
    dac_bits: int | None = None
    """Input DAC resolution: the matrix inputs quantized to 2**dac_bits levels over a range
    calibrated per matrix; None = ideal (analog inputs)."""
    adc_bits: int | None = None
    """ADC resolution per bit line: its current quantized to 2**adc_bits levels over a range
    calibrated per physical column, clipped outside; None = ideal."""

    def __post_init__(self) -> None:
        if self.levels is not None and (isinstance(self.levels, bool) or
                                        not isinstance(self.levels, int) or self.levels < 2):
            raise ConfigError(f"DeviceModel.levels must be an int >= 2 or None, got {self.levels!r}")
        if not (isinstance(self.variation_sigma, (int, float)) and 0 <= self.variation_sigma < 10):
            raise ConfigError(f"DeviceModel.variation_sigma must be in [0, 10), got {self.variation_sigma!r}")
        if self.variation not in VARIATIONS:
            raise ConfigError(f"DeviceModel.variation must be one of {VARIATIONS}, got {self.variation!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"DeviceModel.seed must be an int >= 0, got {self.seed!r}")
        _real("g_min_us", self.g_min_us, none=True)
        _real("g_max_us", self.g_max_us, none=True)
        if (self.g_min_us is None) != (self.g_max_us is None):
            raise ConfigError("DeviceModel.g_min_us and g_max_us set the conductance window "
                              "together: give both (e.g. g_min_us = 1.0, g_max_us = 100.0) or neither")
        if self.g_max_us is not None and not self.g_max_us > self.g_min_us:
            raise ConfigError(f"DeviceModel needs g_max_us > g_min_us, got {self.g_min_us} and "
                              f"{self.g_max_us}")
        for name in ("stuck_off_fraction", "stuck_on_fraction"):
            _real(name, getattr(self, name), 0.0, 1.0 + 1e-12)
        if self.stuck_off_fraction + self.stuck_on_fraction > 1:
            raise ConfigError("DeviceModel.stuck_off_fraction + stuck_on_fraction must be <= 1")
        _real("read_noise_sigma", self.read_noise_sigma, 0.0, 10.0)
        _real("r_wire_ohm", self.r_wire_ohm)
        _real("r_bit_ohm", self.r_bit_ohm, none=True)
        if self.has_wires and not self.physical:
            raise ConfigError("IR drop (r_wire_ohm/r_bit_ohm > 0) needs physical conductances: set "
                              "the window g_min_us and g_max_us too (e.g. 1.0 and 100.0)")
        _bits("dac_bits", self.dac_bits)
        _bits("adc_bits", self.adc_bits)

    # -- what is on ---------------------------------------------------------------------------
    @property
    def physical(self) -> bool:
        """Cells hold conductances of a physical window [g_min_us, g_max_us]."""
        return self.g_max_us is not None

    @property
    def has_wires(self) -> bool:
        return self.r_wire_ohm > 0 or (self.r_bit_ohm or 0) > 0

    @property
    def needs_calibration(self) -> bool:
        """A DAC or ADC whose ranges come from a calibration batch."""
        return self.dac_bits is not None or self.adc_bits is not None

    @property
    def stochastic(self) -> bool:
        """Outputs depend on the seed (variation, faults) or change per read (read noise);
        False: every chip seed gives the same outputs."""
        return (self.variation_sigma > 0 or self.stuck_off_fraction > 0
                or self.stuck_on_fraction > 0 or self.read_noise_sigma > 0)

    @property
    def is_ideal(self) -> bool:
        """No effect at all: the exact simulation."""
        return (self.levels is None and not self.physical and not self.stochastic
                and not self.has_wires and not self.needs_calibration)

    # -- files ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeviceModel":
        """Fields of a device file: flat or under a ``[device]`` table; ``name``,
        ``description`` and a ``[sources]`` table (where each figure comes from) are allowed
        and ignored here (``describe`` reads them)."""
        if not isinstance(d, dict):
            raise ConfigError(f"a device file must be a table of fields, got {type(d).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        body = d.get("device", d)
        if not isinstance(body, dict):
            raise ConfigError("the [device] table of a device file must be a table of fields")
        body = {k: v for k, v in body.items() if k not in FILE_KEYS and k != "device"}
        sources = d.get("sources", {})
        if not isinstance(sources, dict) or set(sources) - fields:
            bad = sorted(set(sources) - fields) if isinstance(sources, dict) else sources
            raise ConfigError(f"the [sources] table of a device file names fields and where their "
                              f"figures come from; not fields: {bad!r}")
        unknown = sorted(set(body) - fields)
        if unknown:
            raise ConfigError(f"unknown device field(s) {unknown}; valid fields: {sorted(fields)} "
                              f"(and {', '.join(FILE_KEYS)})")
        return cls(**body)

    @classmethod
    def from_file(cls, path: str | Path) -> "DeviceModel":
        """Read a device file (TOML or JSON)."""
        return cls.from_dict(read_device_file(path))

    @classmethod
    def preset(cls, name: str) -> "DeviceModel":
        """A shipped preset by name (``presets()``), e.g. ``"ideal"``, ``"rram_neurosim"``."""
        return cls.from_file(_preset_path(name))

    @classmethod
    def load(cls, name_or_path: str | Path) -> "DeviceModel":
        """A preset name or a device file path (anything with a suffix or a folder is a path)."""
        return cls.from_dict(describe(name_or_path))


def presets() -> list[str]:
    """Names of the shipped device presets."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


def _preset_path(name: str) -> Path:
    path = PRESETS / f"{name}.toml"
    if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)) or not path.is_file():
        raise ConfigError(f"no device preset named {name!r}; presets: {', '.join(presets())} "
                          "(or pass a .toml/.json device file)")
    return path


def read_device_file(path: str | Path) -> dict[str, Any]:
    """The table of a TOML or JSON device file."""
    from mapping.spec import _read

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no such device file: {p}; pass a .toml file or a preset "
                          f"({', '.join(presets())})")
    return _read(p)


def describe(name_or_path: str | Path) -> dict[str, Any]:
    """The whole device file (fields, name, description, sources) of a preset or a path."""
    p = Path(name_or_path)
    if p.suffix or p.name != str(name_or_path):
        d = read_device_file(p)
    else:
        d = read_device_file(_preset_path(str(name_or_path)))
    DeviceModel.from_dict(d)  # validates
    return d


# -- weights ----------------------------------------------------------------------------------
def quantize_weights(w: torch.Tensor, weight_bits: int) -> tuple[torch.Tensor, float]:
    """(integers q, scale s) with w ~ s q, |q| <= 2**(weight_bits-1) - 1, s = max|w| / that
    (one scale for the whole matrix; s = 1 for an all-zero matrix)."""
    qmax = 2 ** (weight_bits - 1) - 1
    wmax = float(w.abs().max()) if w.numel() else 0.0
    s = wmax / qmax if wmax > 0 else 1.0
    return torch.round(w / s), s


def slice_digits(q: torch.Tensor, weight_bits: int, cell_bits: int | None) -> torch.Tensor:
    """Integers q (...) -> (K, ...) signed slices sign(q) * digit_k of |q| in base 2**cell_bits,
    least significant first; sum_k slices[k] * 2**(cell_bits k) == q."""
    c = weight_bits - 1 if cell_bits is None else min(cell_bits, weight_bits - 1)
    k = -(-(weight_bits - 1) // c)
    mag, sign = q.abs(), torch.sign(q)
    shifts = (2.0 ** (c * torch.arange(k, dtype=q.dtype))).view(-1, *([1] * q.ndim))
    digits = torch.remainder(torch.floor(mag[None] / shifts), 2.0 ** c)
    return sign[None] * digits


# -- converters -------------------------------------------------------------------------------
def quantizer(lo: torch.Tensor, hi: torch.Tensor, bits: int, dtype=torch.float64) -> tuple:
    """(1 / step, lowest code, highest code, step) of the affine grid of 2**bits levels spanning
    [lo, hi] (lo <= 0 <= hi, any shape) on which 0 is exact; a range of width 0 gives 0."""
    n = 2 ** bits - 1
    lo, hi = lo.to(torch.float64), hi.to(torch.float64)
    width = hi - lo
    step = torch.where(width > 0, width / n, torch.ones_like(width))
    zp = torch.round(-lo / step)
    inv = torch.where(width > 0, 1 / step, torch.zeros_like(step))
    step = torch.where(width > 0, step, torch.zeros_like(step))
    return tuple(v.to(dtype) for v in (inv, -zp, n - zp, step))


def quantize_(v: torch.Tensor, q: tuple) -> torch.Tensor:
    """``v`` on the grid of ``quantizer`` (in place), clipped to its range."""
    inv, qlo, qhi, step = q
    return v.mul_(inv).round_().clamp_(qlo, qhi).mul_(step)


def fake_quantize(v: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, bits: int) -> torch.Tensor:
    """v on 2**bits levels of an affine grid spanning [lo, hi] (lo <= 0 <= hi, broadcast) on
    which 0 is exact; clipped outside. A range of width 0 gives 0."""
    return quantize_(v.clone(), quantizer(torch.as_tensor(lo), torch.as_tensor(hi), bits, v.dtype))


def _range(v: torch.Tensor, dim) -> tuple[torch.Tensor, torch.Tensor]:
    return v.amin(dim=dim).clamp_max(0), v.amax(dim=dim).clamp_min(0)


@dataclass(eq=False)
class Circuit:
    """The non-ideal part of a TileBank: per-tile output factors, converters and read noise."""

    encoding: str
    factor: torch.Tensor
    """(T,) digital factor per tile: back to weight units (window, slice shift, weight scale)."""
    dac_bits: int | None = None
    adc_bits: int | None = None
    read_noise_sigma: float = 0.0
    compute_dtype: torch.dtype = torch.float64
    dac_range: torch.Tensor | None = None
    """(2,) calibrated input range of the matrix (lo, hi)."""
    adc_lo: torch.Tensor | None = None
    """(T, Q) calibrated low end per tile and physical output (Q = S * lcols [+ 1 reference])."""
    adc_hi: torch.Tensor | None = None
    read_gen: torch.Generator | None = None
    calibrating: bool = False

    @property
    def calibrated(self) -> bool:
        return ((self.dac_bits is None or self.dac_range is not None)
                and (self.adc_bits is None or self.adc_lo is not None))


@dataclass
class TileBank:
    """The built tiles of one matrix, programmed, ready to evaluate."""

    shape: tuple[int, int]
    """(N, M) of the matrix."""
    grid: tuple[int, int]
    a: torch.Tensor
    """(T,) row block of each built tile (each weight slice of a tile is a tile here)."""
    b: torch.Tensor
    """(T,) column block of each built tile."""
    g: torch.Tensor
    """(T, S, rows, lcols) conductances; S = 1 (unsigned, offset) or 2 (G+, G-). A matrix with
    fewer rows (columns) than one crossbar keeps only its N (M): the rest is unwired. With a
    circuit: the effective conductances of the programmed chip, unwired rows zeroed."""
    ref: torch.Tensor | None
    """(T, rows, 1) offset reference column, or None."""
    col_live: torch.Tensor
    """(T, 1, lcols) 1 where the tile's output column is wired."""
    circuit: Circuit | None = None
    """Device and circuit effects (None: the exact, ideal crossbars)."""

    def matmul(self, x: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
        """x: (P, N) -> (P, M): every tile multiplies its row slice, G- and the reference are
        subtracted in the tile periphery, partial sums add up per column block."""
        if self.circuit is not None:
            return self._circuit_matmul(x)
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

    # -- the non-ideal path -------------------------------------------------------------------
    def _blocks(self) -> list[tuple]:
        """Per row block: (block, tile indices, conductances (rows, Q_a) with Q_a = the block's
        tiles x physical outputs, their column blocks, output factor x live (n_a, lcols))."""
        if "_blocks_cache" in self.__dict__:
            return self.__dict__["_blocks_cache"]
        cd = self.circuit.compute_dtype
        t, s, rows, lcols = self.g.shape
        out = []
        for blk in torch.unique(self.a).tolist():  # a loop over row blocks, not over cells
            idx = torch.nonzero(self.a == blk).flatten()
            g = self.g[idx].permute(2, 0, 1, 3).reshape(rows, -1)  # (rows, n_a * S * lcols)
            if self.ref is not None:
                g = torch.cat([g, self.ref[idx, :, 0].T], dim=1)  # + (rows, n_a) references
            scale = self.circuit.factor[idx, None] * self.col_live[idx, 0]  # (n_a, lcols)
            out.append((blk, idx, g.to(cd).contiguous(), self.b[idx], scale.to(cd)))
        self.__dict__["_blocks_cache"] = out
        return out

    def _physical_order(self, idx: torch.Tensor) -> torch.Tensor:
        """Column indices (Q_a,) into the per-tile output arrays (T, Q) for a block's tiles."""
        t, s, _, lcols = self.g.shape
        q = s * lcols
        main = (idx[:, None] * (q + (self.ref is not None)) + torch.arange(q)).flatten()
        if self.ref is None:
            return main
        return torch.cat([main, idx * (q + 1) + q])

    def adc_ranges(self) -> torch.Tensor | None:
        """(T, Q, 2) calibrated ADC range (lo, hi) of every tile's physical outputs (its S x
        lcols bit lines, then its reference column), or None."""
        c = self.circuit
        if c is None or c.adc_lo is None:
            return None
        return torch.stack([c.adc_lo, c.adc_hi], dim=-1)

    def _circuit_matmul(self, x: torch.Tensor) -> torch.Tensor:
        c = self.circuit
        (n, m), (na, nb) = self.shape, self.grid
        t, s, rows, lcols = self.g.shape
        cd = c.compute_dtype
        if c.calibrating and c.dac_bits is not None:
            lo, hi = _range(x.reshape(-1), 0) if x.numel() else (x.new_zeros(()), x.new_zeros(()))
            c.dac_range = torch.stack([lo, hi]).to(torch.float64)
        if not c.calibrated and not c.calibrating:
            raise ConfigError("this device has a DAC or ADC whose ranges are not calibrated yet: "
                              "run CrossbarSimulator.calibrate(x) on a calibration batch first")
        x = F.pad(x.to(cd), (0, na * rows - n))
        if c.dac_bits is not None:
            quantize_(x, quantizer(c.dac_range[0], c.dac_range[1], c.dac_bits, cd))
        blocks = self._blocks()
        width = max(b[2].shape[1] for b in blocks) if blocks else 1
        chunk = max(1, CHUNK_BYTES // (8 * width * (3 if c.read_noise_sigma else 2)))
        q = s * lcols + (self.ref is not None)
        if c.calibrating and c.adc_bits is not None:  # first pass: the range of every bit line
            lo = torch.zeros(t * q, dtype=torch.float64)
            hi = torch.zeros(t * q, dtype=torch.float64)
            for x_c in x.split(chunk):
                for blk, idx, g, _, _ in blocks:
                    cur = self._currents(x_c[:, blk * rows:(blk + 1) * rows], g)
                    cols = self._physical_order(idx)
                    a, b = _range(cur, 0)
                    lo[cols] = torch.minimum(lo[cols], a.double())
                    hi[cols] = torch.maximum(hi[cols], b.double())
            c.adc_lo, c.adc_hi = lo.view(t, q), hi.view(t, q)
        adc = [None] * len(blocks)
        if c.adc_bits is not None:
            key = (id(c.adc_lo), cd)
            if self.__dict__.get("_adc_key") != key:  # per block: the grids of its bit lines
                self.__dict__["_adc"] = [
                    quantizer(c.adc_lo.view(-1)[cols], c.adc_hi.view(-1)[cols], c.adc_bits, cd)
                    for cols in (self._physical_order(b[1]) for b in blocks)]
                self.__dict__["_adc_key"] = key
            adc = self.__dict__["_adc"]
        out = torch.zeros(x.shape[0], nb, lcols, dtype=cd)
        for start in range(0, x.shape[0], chunk):
            x_c = x[start:start + chunk]
            o = out[start:start + chunk]
            for (blk, idx, g, bcols, scale), grid in zip(blocks, adc, strict=True):
                cur = self._currents(x_c[:, blk * rows:(blk + 1) * rows], g)  # (P, Q_a)
                if grid is not None:
                    quantize_(cur, grid)
                k = len(idx)
                main = cur[:, :k * s * lcols].view(-1, k, s, lcols)
                y = main[:, :, 0] - main[:, :, 1] if s == 2 else main[:, :, 0]
                if self.ref is not None:
                    y = y - cur[:, k * s * lcols:, None]
                o.index_add_(1, bcols, y * scale)
        return out.reshape(x.shape[0], nb * lcols)[:, :m].to(torch.float64)

    def _currents(self, xa: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Bit-line currents (P, Q_a) of one row block's tiles, with read noise."""
        cur = xa @ g
        sigma = self.circuit.read_noise_sigma
        if sigma > 0:
            spread = ((xa * xa) @ (g * g)).sqrt_().mul_(sigma)
            noise = torch.randn(cur.shape, generator=self.circuit.read_gen, dtype=cur.dtype)
            cur = cur.addcmul_(spread, noise)
        return cur


def _ideal_conductances(w, encoding, row_live, live):
    """The encoding's conductances (T, S, rows, lcols) and reference (T, rows, 1) or None."""
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
    return g, ref


def program(mm: MappedMatrix, encoding: str, device: DeviceModel | None = None,
            gen: torch.Generator | None = None, dtype=torch.float64, *, spec=None,
            compute_dtype: torch.dtype = torch.float64,
            fault_gen: torch.Generator | None = None) -> TileBank:
    """Program the built tiles of ``mm`` with ``encoding`` (and optional device effects).

    ``spec``: the CrossbarSpec (its weight_bits / cell_bits slice the weights); ``gen``: the
    chip's variation generator (default: seeded with device.seed), ``fault_gen`` its stuck-at
    generator (default: seeded with device.seed + FAULT_SEED); ``compute_dtype``: of the products of
    a non-ideal bank (the ideal one stays in ``dtype``, exact)."""
    weight_bits = None if spec is None else spec.weight_bits
    cell_bits = None if spec is None else spec.cell_bits
    (n, m), (na, nb), r, c = mm.shape, mm.grid, mm.tile_rows, mm.tile_cols
    a_idx, b_idx = np.nonzero(mm.built)
    t0 = len(a_idx)
    w_full = torch.as_tensor(np.asarray(mm.weights), dtype=dtype)
    ideal = (device is None or device.is_ideal) and weight_bits is None
    if weight_bits is None:
        digits, factors = w_full[None], torch.ones(1, dtype=dtype)
    else:
        q, s = quantize_weights(w_full, weight_bits)
        digits = slice_digits(q, weight_bits, cell_bits)  # (K, n, m)
        cb = weight_bits - 1 if cell_bits is None else min(cell_bits, weight_bits - 1)
        factors = s * 2.0 ** (cb * torch.arange(digits.shape[0], dtype=dtype))
    k = digits.shape[0]
    w = torch.zeros(k, na * r, nb * c, dtype=dtype)
    w[:, :n, :m] = digits
    w = w.view(k, na, r, nb, c).permute(0, 1, 3, 2, 4)[:, a_idx, b_idx].reshape(k * t0, r, c)
    rl = np.zeros((na * r, nb), dtype=bool)
    rl[:n] = mm.row_nonzero
    row_live = torch.as_tensor(rl.reshape(na, r, nb)[a_idx, :, b_idx], dtype=dtype).repeat(k, 1)
    cl = np.zeros((na, nb * c), dtype=bool)
    cl[:, :m] = mm.col_nonzero
    col_live = torch.as_tensor(cl.reshape(na, nb, c)[a_idx, b_idx], dtype=dtype).repeat(k, 1)
    live = row_live[:, :, None] * col_live[:, None, :]  # (T, rows, lcols) wired cells
    a_t = torch.as_tensor(a_idx).repeat(k)
    b_t = torch.as_tensor(b_idx).repeat(k)
    g, ref = _ideal_conductances(w, encoding, row_live, live)
    factor = factors.repeat_interleave(t0)  # (T,) slice-major
    circuit = None
    if not ideal:
        device = device if device is not None else DeviceModel()
        gen = gen if gen is not None else torch.Generator().manual_seed(device.seed)
        if fault_gen is None:
            fault_gen = torch.Generator().manual_seed(device.seed + FAULT_SEED)
        sliced_fs = weight_bits is not None and encoding != "offset"  # digits 0 .. 2**cb - 1
        g, ref, factor = _program_cells(g, ref, live, row_live, factor, encoding, device,
                                        (gen, fault_gen), digit_range=2.0 ** cb - 1 if sliced_fs else None)
        g = g * row_live[:, None, :, None]  # rows that are not wired are driven with 0 V
        ref = None if ref is None else ref * row_live[:, :, None]
        circuit = Circuit(encoding, factor, device.dac_bits, device.adc_bits,
                          device.read_noise_sigma, compute_dtype,
                          read_gen=torch.Generator().manual_seed(device.seed + READ_SEED))
    rr, cc = (n if na == 1 else r), (m if nb == 1 else c)  # drawn on whole tiles, then trimmed
    if (rr, cc) != (r, c):
        g, col_live = g[:, :, :rr, :cc].clone(), col_live[:, :cc].clone()
        ref = None if ref is None else ref[:, :rr].clone()
    return TileBank((n, m), (na, nb), a_t, b_t, g, ref, col_live[:, None, :], circuit)


def _program_cells(g, ref, live, row_live, factor, encoding, device: DeviceModel,
                   gens: tuple[torch.Generator, torch.Generator], digit_range: float | None):
    """Window, levels, variation, stuck-at faults and IR drop of the cells (section 8 order).
    Returns the effective conductances, the reference column and the per-tile factor."""
    t = g.shape[0]
    cols = g.shape[3]
    if encoding == "unsigned" and (device.physical or device.has_wires):
        raise ConfigError("encoding 'unsigned' holds signed conductances (an idealisation without "
                          "a physical window), so g_min_us/g_max_us and IR drop do not apply to it; "
                          "map with encoding 'differential' or 'offset'")
    cells = g if ref is None else torch.cat([g, ref[:, None]], dim=3)  # the reference is a column
    if digit_range is not None:
        fs = torch.full((t,), digit_range, dtype=g.dtype)
    else:
        fs = cells.abs().amax(dim=(1, 2, 3))
    fs = torch.where(fs > 0, fs, torch.ones_like(fs))  # per tile full scale
    fs4 = fs[:, None, None, None]
    if device.levels is not None:
        step = fs4 / (device.levels - 1)
        cells = torch.round(cells / step) * step
    if device.physical:
        g_min, g_max = float(device.g_min_us), float(device.g_max_us)
        wired = live[:, None] if ref is None else torch.cat([live, row_live[:, :, None]], dim=2)[:, None]
        cells = torch.where(wired > 0, g_min + cells * ((g_max - g_min) / fs4), torch.full_like(cells, g_min))
        factor = factor * fs / (g_max - g_min)
        bottom, top = torch.full_like(fs4, g_min), torch.full_like(fs4, g_max)
    else:
        bottom, top = torch.zeros_like(fs4), fs4
    if device.variation_sigma > 0:
        n = torch.randn(cells.shape, generator=gens[0], dtype=cells.dtype)
        sig = device.variation_sigma
        cells = cells * (torch.exp(sig * n) if device.variation == "lognormal" else 1 + sig * n)
        if device.physical:
            cells = cells.clamp_min(0)  # a conductance is not negative
    off, on = device.stuck_off_fraction, device.stuck_on_fraction
    if off > 0 or on > 0:
        u = torch.rand(cells.shape, generator=gens[1], dtype=cells.dtype)
        cells = torch.where(u < off, bottom, torch.where(u < off + on, top, cells))
    if device.has_wires:
        cells = _ir_drop(cells, encoding, cols, device)
    g = cells[..., :cols]
    ref = None if ref is None else cells[:, 0, :, cols:]
    return g, ref, factor


def _ir_drop(cells: torch.Tensor, encoding: str, cols: int, device: DeviceModel) -> torch.Tensor:
    """Effective conductances (same layout) of the programmed arrays, bit lines in their
    physical order: differential G+ and G- of a weight side by side, offset reference last."""
    from mapping.irdrop import effective_conductances

    t, s, rows, q = cells.shape
    if encoding == "differential":
        phys = cells.permute(0, 2, 3, 1).reshape(t, rows, q * s)  # (.., j, s) -> bit line 2j + s
    else:
        phys = cells[:, 0]
    geff = effective_conductances(phys * 1e-6, device.r_wire_ohm, device.r_bit_ohm) * 1e6
    if encoding == "differential":
        return geff.view(t, rows, q, s).permute(0, 3, 1, 2).contiguous()
    return geff[:, None]


__all__ = ["Circuit", "DeviceModel", "TileBank", "fake_quantize", "presets", "program",
           "quantize_", "quantize_weights", "quantizer", "slice_digits"]
