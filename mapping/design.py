"""The physical design the mapper hands to placement, routing and the netlist exporters.

This is the contract between stages (hardware-model.md section 3): a set of units placed on
the chip and the buses (nets) between them. It knows nothing about PyTorch.

Unit names (stable; reports, netlists and plots use them):
- ``"IN"``                 the network input unit.
- ``"<matrix>/T<a>_<b>"``  crossbar tile (a, b) of a matrix; a = row block (inputs / word
                           lines), b = logical column block (outputs / bit lines).
- ``"<matrix>/A<b>"``      the output unit (accumulator / ADC / neuron) of column block b.
Matrix names are the module names of the model (``"conv1"``, ``"fc1"``); the two factors of a
low-rank pair are ``"<layer>.U"`` and ``"<layer>.V"``.
"""

from dataclasses import dataclass, field

import numpy as np

from common.errors import ConfigError

UNIT_KINDS = ("input", "tile", "output")


@dataclass(frozen=True)
class Unit:
    """One block placed on the chip."""

    name: str
    kind: str
    """'input', 'tile' (a crossbar with its periphery) or 'output' (accumulator/ADC/neuron)."""
    matrix: str | None = None
    """Name of the matrix this unit belongs to; None for 'IN'."""
    block: tuple[int, int] | None = None
    """(a, b) tile position in the matrix's tile grid for a tile; (0, b) for an output unit."""

    def __post_init__(self) -> None:
        if self.kind not in UNIT_KINDS:
            raise ConfigError(f"unit {self.name!r}: kind must be one of {UNIT_KINDS}, got {self.kind!r}")


@dataclass(frozen=True)
class Net:
    """A bus of ``width`` wires from unit ``src`` to unit ``dst`` (two pins)."""

    src: str
    dst: str
    width: int
    """Wires in the bus (>= 1; a bus whose width reaches 0 is not a net)."""
    matrix: str
    """Matrix of the tile at the tile end of the bus (the layer the net is reported under)."""
    kind: str
    """'input' (producer -> tile), 'output' (tile -> output unit) or 'operand' (output unit ->
    output unit: an operand of a periphery operation computed there, e.g. the other input of
    a residual add; ``matrix`` is then the receiving unit's matrix)."""

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ConfigError(f"net {self.src}->{self.dst}: width must be >= 1, got {self.width}")


@dataclass(frozen=True, eq=False)
class RowSignals:
    """Which unit drives each input row of a matrix and which tiles use it: what a router needs
    to send one producer's row signals to the tiles of a row block as one multi-pin net."""

    producers: tuple[str, ...]
    """Unit names of the matrix's row producers (``"IN"`` or ``"<matrix>/A<b>"``)."""
    source: np.ndarray
    """(N,) int: index into ``producers`` of the unit driving each row."""
    live: np.ndarray
    """(N, B) bool: row i is used by the tiles of column block b (its row segment is nonzero)."""


@dataclass
class Design:
    """Units, nets and (optionally) each tile's logical weights, in dataflow order."""

    units: list[Unit]
    nets: list[Net]
    crossbar_rows: int
    """Physical rows (word lines) of every crossbar."""
    crossbar_cols: int
    """Physical columns (bit lines) of every crossbar."""
    encoding: str = "differential"
    """How signed weights sit in the crossbar: 'differential', 'offset' or 'unsigned'."""
    tile_weights: dict[str, np.ndarray] = field(default_factory=dict)
    """Tile unit name -> its logical weight block, shape (rows_in_tile, logical_cols_in_tile)."""
    row_signals: dict[str, RowSignals] = field(default_factory=dict)
    """Matrix name -> its row signals (from the mapper). Without them a router grouping input
    nets into multi-pin nets assumes the rows of the narrower buses of a group are a subset of
    the wider ones' (exact for dense matrices)."""
    weight_bits: int | None = None
    """Bits of a weight, sign included (CrossbarSpec.weight_bits); None: analog weights."""
    cell_bits: int | None = None
    """Bits one cell holds when weights are sliced (CrossbarSpec.cell_bits; needs weight_bits):
    every tile is ``slices`` crossbars sharing its input bus (hardware-model section 2)."""

    def units_by_name(self) -> dict[str, Unit]:
        """Unit name -> Unit (build once where many lookups follow; ``unit`` scans)."""
        return {u.name: u for u in self.units}

    def unit(self, name: str) -> Unit:
        for u in self.units:
            if u.name == name:
                return u
        raise KeyError(f"no unit named {name!r} in the design")

    @property
    def slices(self) -> int:
        """Crossbars per tile: ceil((weight_bits - 1) / cell_bits) when sliced, else 1."""
        from mapping.spec import slice_count

        return slice_count(self.weight_bits, self.cell_bits)

    @property
    def n_crossbars(self) -> int:
        """Crossbars of the design: its tiles times the weight slices of each."""
        return sum(u.kind == "tile" for u in self.units) * self.slices

    @property
    def total_wires(self) -> int:
        """Sum of net widths (hardware-model section 3)."""
        return sum(n.width for n in self.nets)
