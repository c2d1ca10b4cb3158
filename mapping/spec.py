"""Crossbar size, signed-weight encoding and technology figures (hardware-model.md section 2).

    >>> spec = CrossbarSpec(64, 64)                 # differential: 32 logical columns
    >>> spec.lcols, spec.crossbar_area_um2
    >>> spec = CrossbarSpec.parse("32x128", encoding="offset")
    >>> spec = CrossbarSpec.from_file("chip.toml")  # {rows, cols, encoding, [tech]}
    >>> tech = Technology.preset("isaac_32nm")      # mapping/presets/isaac_32nm.toml

Absolute area of a chip = crossbars x ``spec.crossbar_area_um2`` where
``crossbar_area_um2 = rows * cols * cell_area_um2 + periphery_area_um2(rows, cols)``.
"""

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import ConfigError

ENCODINGS = ("differential", "offset", "unsigned")
MAX_SIDE = 4096


@dataclass(frozen=True)
class Technology:
    """Technology figures for area, routing, energy and latency (hardware-model.md sections 2,
    5 and 7).

    The defaults are the ``illustrative`` preset (mapping/presets/illustrative.toml), NOT a
    calibrated process: round numbers of the order that published 32 nm RRAM crossbar
    accelerators report (ISAAC, Shafiee et al., ISCA 2016: a 4F^2 cell, 1-bit row DACs,
    sample-and-hold per bit line, one 8-bit ADC shared by 128 bit lines, which dominates the
    periphery). ``Technology.preset("isaac_32nm")`` reproduces ISAAC's Table 6; a TOML/JSON
    file (``Technology.from_file``) overrides any figure.

    Event counts behind the energy fields (mapping/energy.py): a matrix evaluation applies each
    live row's ``bits_per_signal``-bit input ``dac_bits`` at a time, i.e. in
    ceil(bits_per_signal / dac_bits) crossbar *reads*; every read drives the live rows,
    samples and converts every live physical column (a *conversion*) and shift-adds the result.
    """

    # -- area (um^2) ------------------------------------------------------------------------
    cell_area_um2: float = 0.0041
    """Area of one memristor cell (4F^2 at F = 32 nm)."""
    row_driver_area_um2: float = 0.17
    """Per physical row (word line): input DAC + word-line driver."""
    col_periphery_area_um2: float = 0.04
    """Per physical column (bit line): sample-and-hold, column mux and subtraction."""
    adc_area_um2: float = 1200.0
    """One ADC (8-bit SAR class)."""
    cols_per_adc: int = 128
    """Bit lines time-multiplexed onto one ADC; a crossbar has ceil(cols / cols_per_adc) ADCs."""
    shift_add_area_um2: float = 0.0
    """Shift-and-add units of one crossbar (recombining the bit-serial reads; ISAAC: 4 per 8
    crossbars). 0 in the illustrative preset, whose crossbar area predates it."""
    input_register_area_um2: float = 0.0
    """Input register of one crossbar (holds the inputs the DACs apply bit by bit)."""
    output_register_area_um2: float = 0.0
    """Output register of one crossbar (holds the shift-and-add results)."""
    crossbar_overhead_area_um2: float = 0.0
    """Fixed area per crossbar (control, the reduction-tree adders) on top of the figures above."""
    # -- routing ----------------------------------------------------------------------------
    wire_pitch_um: float = 0.1
    """Pitch of one routing track (metal pitch) for the inter-crossbar buses."""
    gcell_um: float = 10.0
    """Side of one global-routing cell (gcell)."""
    routing_layers: int = 2
    """Metal layers available for inter-crossbar routing."""
    # -- signals ----------------------------------------------------------------------------
    bits_per_signal: int = 8
    """Bits of one signal: an input row's activation, and what one wire of a bus carries per
    evaluation (output buses too: partial sums are counted at the same width)."""
    dac_bits: int = 1
    """Input bits a row DAC applies per read: ceil(bits_per_signal / dac_bits) reads per
    evaluation (1: bit-serial, as ISAAC)."""
    # -- energy per event (pJ) --------------------------------------------------------------
    cell_read_energy_pj: float = 0.002
    """One cell at a live row and a live physical column, per read (ISAAC: 2.4 mW for 8 arrays
    of 128x128 read every 100 ns -> 0.00183 pJ)."""
    dac_energy_pj: float = 0.4
    """One live row's DAC and word-line driver, per read (ISAAC: 4 mW / 1024 DACs x 100 ns)."""
    input_register_energy_pj: float = 0.12
    """Reading one live row's input bit from the crossbar's input register, per read."""
    col_periphery_energy_pj: float = 0.001
    """One live physical column's sample-and-hold, per read."""
    adc_energy_pj: float = 1.6
    """One conversion (one live physical column, one read)."""
    shift_add_energy_pj: float = 0.02
    """Shift-and-add of one conversion into its column's running result."""
    output_register_energy_pj: float = 0.02
    """Writing one conversion's shift-added result to the output register."""
    adder_energy_pj: float = 0.05
    """Reduction-tree adder + register of a tile, per live logical column and evaluation (the
    tile adds its column's partial sum into the column block's sum, section 3)."""
    accumulate_energy_pj: float = 0.05
    """Output unit A(b): final accumulation (bias, buffering) per output column and evaluation."""
    activation_energy_pj: float = 0.2
    """Output unit: activation function per output column and evaluation (charged to the last
    matrix of every layer)."""
    pool_energy_pj: float = 0.3
    """Output unit: pooling comparison/add per output column and evaluation (charged to the
    last matrix of every layer, pooled or not: an upper bound)."""
    # -- wires ------------------------------------------------------------------------------
    wire_cap_ff_per_um: float = 0.2
    """Capacitance of one inter-crossbar wire (intermediate metal, ~0.2 fF/um at 32 nm)."""
    wire_res_ohm_per_um: float = 8.0
    """Resistance of one wire, for its Elmore delay 0.5 r c L^2 (copper at ~4 uOhm cm in a
    50 nm x 100 nm wire, the 0.1 um pitch)."""
    supply_v: float = 0.9
    """Supply voltage the wires swing (V)."""
    activity_factor: float = 0.25
    """Probability that a bit sent on a wire charges it (a 0 -> 1 transition): energy per bit
    per wire = activity_factor x C x V^2 (0.25 for random data)."""
    # -- timing (ns) ------------------------------------------------------------------------
    read_time_ns: float = 100.0
    """One crossbar read: drive the rows, settle the bit lines, sample (ISAAC: 100 ns)."""
    adc_conversion_time_ns: float = 0.8
    """One ADC conversion (ISAAC: 1 / 1.28 GS/s = 0.78 ns)."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(f"Technology.{f.name} must be a finite number, got {v!r}")
            if v < 0 or (v == 0 and f.name not in MAY_BE_ZERO):
                raise ConfigError(f"Technology.{f.name} must be > 0, got {v!r}")
        for name in WHOLE:
            if int(getattr(self, name)) != getattr(self, name):
                raise ConfigError(f"Technology.{name} must be a whole number, got {getattr(self, name)!r}")
        if self.gcell_um < self.wire_pitch_um:
            raise ConfigError(f"Technology.gcell_um ({self.gcell_um}) must be >= wire_pitch_um "
                             f"({self.wire_pitch_um}) so that a gcell edge holds at least one track")
        if self.activity_factor > 1:
            raise ConfigError(f"Technology.activity_factor is a probability, in [0, 1]; got "
                             f"{self.activity_factor!r}")

    def periphery_area_um2(self, rows: int, cols: int) -> float:
        """Periphery of one ``rows x cols`` crossbar: drivers, column circuits, ADCs, shift-and-
        add, registers, overhead."""
        n_adc = math.ceil(cols / self.cols_per_adc)
        return (rows * self.row_driver_area_um2 + cols * self.col_periphery_area_um2
                + n_adc * self.adc_area_um2 + self.shift_add_area_um2
                + self.input_register_area_um2 + self.output_register_area_um2
                + self.crossbar_overhead_area_um2)

    @property
    def reads_per_evaluation(self) -> int:
        """Crossbar reads per matrix evaluation: ceil(bits_per_signal / dac_bits)."""
        return -(-int(self.bits_per_signal) // int(self.dac_bits))

    @property
    def tracks_per_gcell_edge(self) -> int:
        """Routing capacity of one gcell edge: floor(gcell / pitch) tracks per layer x layers."""
        return tracks_per_edge(self.gcell_um, self.wire_pitch_um, int(self.routing_layers))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Technology":
        _check_table("Technology", d)
        d = d.get("tech", d)  # accept a full crossbar file's [tech] table too
        _check_table("Technology ('tech' table)", d)
        d = dict(d)
        _check_keys("Technology", d, {f.name for f in dataclasses.fields(cls)})
        return cls(**d)

    @classmethod
    def from_file(cls, path: str | Path) -> "Technology":
        """Read a TOML or JSON file of technology fields (flat, or under a ``tech`` table)."""
        return cls.from_dict(_read(path))

    @classmethod
    def preset(cls, name: str) -> "Technology":
        """A shipped preset by name (``presets()``), e.g. ``"illustrative"``, ``"isaac_32nm"``."""
        path = PRESETS / f"{name}.toml"
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(name)) or not path.is_file():
            raise ConfigError(f"no technology preset named {name!r}; presets: "
                             f"{', '.join(presets())} (or pass a .toml/.json file)")
        return cls.from_file(path)

    @classmethod
    def load(cls, name_or_path: str | Path) -> "Technology":
        """A preset name (``isaac_32nm``) or a TOML/JSON file path (anything with a suffix or
        a folder part is a path)."""
        p = Path(name_or_path)
        if p.suffix or p.name != str(name_or_path):
            return cls.from_file(p)
        return cls.preset(str(name_or_path))


PRESETS = Path(__file__).resolve().parent / "presets"
"""Folder of the shipped technology presets (TOML, each figure with its source)."""
MAY_BE_ZERO = frozenset(
    ["shift_add_area_um2", "input_register_area_um2", "output_register_area_um2",
     "crossbar_overhead_area_um2", "cell_read_energy_pj", "dac_energy_pj",
     "input_register_energy_pj", "col_periphery_energy_pj", "adc_energy_pj",
     "shift_add_energy_pj", "output_register_energy_pj", "adder_energy_pj",
     "accumulate_energy_pj", "activation_energy_pj", "pool_energy_pj", "wire_cap_ff_per_um",
     "wire_res_ohm_per_um", "activity_factor", "read_time_ns", "adc_conversion_time_ns"])
"""Technology fields that may be 0 (a figure left out); every other one must be > 0."""
WHOLE = ("cols_per_adc", "routing_layers", "bits_per_signal", "dac_bits")


def presets() -> list[str]:
    """Names of the shipped technology presets."""
    return sorted(p.stem for p in PRESETS.glob("*.toml"))


@dataclass(frozen=True)
class CrossbarSpec:
    """One crossbar size and signed-weight encoding, shared by every tile of a chip."""

    rows: int = 64
    """Physical rows (word lines = inputs) per crossbar."""
    cols: int = 64
    """Physical columns (bit lines = outputs) per crossbar."""
    encoding: str = "differential"
    """'differential' (G+ and G- columns side by side: lcols = cols // 2), 'offset' (one
    reference column per crossbar: lcols = cols - 1) or 'unsigned' (lcols = cols)."""
    tech: Technology = field(default_factory=Technology)
    """Technology figures for area, routing, energy and latency."""
    weight_bits: int | None = None
    """Bits of a weight, sign included (section 2); None = analog weights as trained (one cell
    per weight, the paper's setting). Set, the weights of each matrix are quantized to
    2**(weight_bits - 1) - 1 magnitude levels of one scale per matrix."""
    cell_bits: int | None = None
    """Bits one cell holds when weights are sliced (needs weight_bits): each weight magnitude is
    cut into ``slices`` = ceil((weight_bits - 1) / cell_bits) slices, each a copy of the tile
    grid, shifted and added in the periphery. None = one cell holds the whole magnitude."""

    def __post_init__(self) -> None:
        check_bits(self.weight_bits, self.cell_bits)
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"CrossbarSpec.{name} must be an int, got {v!r}")
            if not 1 <= v <= MAX_SIDE:
                raise ConfigError(f"CrossbarSpec.{name} must be in 1..{MAX_SIDE}, got {v}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"CrossbarSpec.encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.encoding != "unsigned" and self.cols < 2:
            raise ConfigError(f"encoding {self.encoding!r} needs cols >= 2 (got {self.cols}); "
                             "use more columns or encoding='unsigned'")
        if not isinstance(self.tech, Technology):
            raise ConfigError(f"CrossbarSpec.tech must be a Technology, got {type(self.tech).__name__}")

    @property
    def lcols(self) -> int:
        """Logical (weight) columns per crossbar."""
        return {"differential": self.cols // 2, "offset": self.cols - 1,
                "unsigned": self.cols}[self.encoding]

    @property
    def slices(self) -> int:
        """Crossbars per tile: ceil((weight_bits - 1) / cell_bits) when weights are sliced, else 1."""
        return slice_count(self.weight_bits, self.cell_bits)

    @property
    def periphery_area_um2(self) -> float:
        return self.tech.periphery_area_um2(self.rows, self.cols)

    @property
    def crossbar_area_um2(self) -> float:
        """One crossbar with its periphery: rows * cols * cell_area + periphery(rows, cols)."""
        return self.rows * self.cols * self.tech.cell_area_um2 + self.periphery_area_um2

    def __str__(self) -> str:
        bits = "" if self.weight_bits is None else (
            f" {self.weight_bits}-bit weights" + ("" if self.cell_bits is None else
                                                 f" in {self.slices} x {self.cell_bits}-bit cells"))
        return f"{self.rows}x{self.cols} {self.encoding}{bits}"

    @classmethod
    def parse(cls, text: str, encoding: str = "differential",
              tech: Technology | None = None, weight_bits: int | None = None,
              cell_bits: int | None = None) -> "CrossbarSpec":
        """``"64x64"``, ``"32x128"`` or ``"128"`` (square) -> CrossbarSpec."""
        m = re.fullmatch(r"\s*(\d+)\s*(?:[xX*]\s*(\d+))?\s*", str(text))
        if m is None:
            raise ConfigError(f"bad crossbar size {text!r}; expected ROWSxCOLS, e.g. '64x64' or '32x128'")
        rows = int(m.group(1))
        cols = int(m.group(2)) if m.group(2) else rows
        return cls(rows, cols, encoding, tech if tech is not None else Technology(), weight_bits,
                   cell_bits)

    def to_dict(self) -> dict[str, Any]:
        bits = {k: getattr(self, k) for k in ("weight_bits", "cell_bits") if getattr(self, k) is not None}
        return {"rows": self.rows, "cols": self.cols, "encoding": self.encoding,
                "lcols": self.lcols, **bits, "tech": self.tech.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CrossbarSpec":
        _check_table("CrossbarSpec", d)
        d = dict(d)
        d.pop("lcols", None)  # derived; written by to_dict for readers
        _check_keys("CrossbarSpec", d, {"rows", "cols", "encoding", "tech", "weight_bits", "cell_bits"})
        tech = Technology.from_dict(d.pop("tech", {}))
        return cls(**d, tech=tech)

    @classmethod
    def from_file(cls, path: str | Path) -> "CrossbarSpec":
        """Read a TOML or JSON file: ``rows``, ``cols``, ``encoding`` (optionally ``weight_bits``,
        ``cell_bits``) and a ``tech`` table."""
        return cls.from_dict(_read(path))


def slice_count(weight_bits: int | None, cell_bits: int | None) -> int:
    """Crossbars per tile (section 2): ceil((weight_bits - 1) / cell_bits) when both are set,
    else 1 (analog weights, or quantized weights one cell each)."""
    if weight_bits is None or cell_bits is None:
        return 1
    return -(-(weight_bits - 1) // cell_bits)


def check_bits(weight_bits, cell_bits, where: str = "CrossbarSpec") -> None:
    """ConfigError unless ``weight_bits``/``cell_bits`` are a valid precision (section 2):
    each None or an int in 1..32, weight_bits >= 2, cell_bits only with weight_bits. The
    message names the fields ``<where>.weight_bits`` (``where`` empty: bare names)."""
    at = f"{where}." if where else ""
    for name, v in (("weight_bits", weight_bits), ("cell_bits", cell_bits)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 32):
            raise ConfigError(f"{at}{name} must be an int in 1..32 or None, got {v!r}")
    if weight_bits is not None and weight_bits < 2:
        raise ConfigError(f"{at}weight_bits must be >= 2 (a sign bit and at least one "
                          f"magnitude bit), got {weight_bits}")
    if cell_bits is not None and weight_bits is None:
        raise ConfigError(f"{at}cell_bits slices weights of a fixed precision: set "
                          f"{at}weight_bits too (e.g. weight_bits=8, cell_bits=2)")


def tracks_per_edge(gcell_um: float, wire_pitch_um: float, routing_layers: int) -> int:
    """Tracks crossing one gcell edge: floor(gcell / pitch) per layer x layers. (Not
    gcell // pitch: in floats 10.0 // 0.1 == 99.0.)"""
    return int(gcell_um / wire_pitch_um + 1e-9) * routing_layers


def _check_table(what: str, d: Any) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{what} must be a table of fields (a JSON object / TOML table), got "
                         f"{type(d).__name__} {d!r:.60}; e.g. {{\"rows\": 64, \"cols\": 64, "
                         f"\"tech\": {{\"wire_pitch_um\": 0.1}}}}")


def _check_keys(what: str, d: dict, allowed: set[str]) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"unknown {what} field(s) {unknown}; valid fields: {sorted(allowed)}")


def _read(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such technology/crossbar file: {path}; check the path")
    text = path.read_text()
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: invalid JSON: {e}") from None
    if path.suffix.lower() != ".toml":
        raise ConfigError(f"{path}: expected a .toml or .json file")
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
