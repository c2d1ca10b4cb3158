"""Map a whole model onto crossbars: tiles, output units, nets, area, simulation.

    >>> net = map_model(model, CrossbarSpec(64, 64), input_shape=(1, 28, 28))
    >>> net.n_crossbars, net.cells, net.cell_area_ratio, net.crossbar_area_ratio, net.area_um2
    >>> net.design            # mapping.design.Design for placement / routing / netlists
    >>> net.forward(x)        # the mapped design simulated tile by tile (== model.eval()(x))
"""

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError
from mapping.capture import Capture, Operands, capture
from mapping.design import Design, Net, RowSignals, Unit
from mapping.devices import DeviceModel
from mapping.extract import Matrix
from mapping.partition import MappedMatrix, map_matrix
from mapping.simulate import CrossbarSimulator
from mapping.spec import CrossbarSpec


@dataclass(eq=False)
class MappedLayer:
    """One weighted layer on crossbars: a dense matrix or a low-rank pair (U, V)."""

    name: str
    kind: str
    """'linear' or 'conv'."""
    shape: tuple[int, int]
    """(N, M) of the dense layer."""
    rank: int | None
    """K of a low-rank pair, None for a dense layer."""
    matrices: list[MappedMatrix]
    crossbar_area_um2: float
    """Area of one crossbar with its periphery (spec.crossbar_area_um2)."""
    baseline_crossbars: int
    """Crossbars of the dense N x M layer with every tile built (a grouped conv: of its g
    dense group matrices)."""
    groups: int = 1
    """g of a grouped conv (one matrix per group), 1 otherwise."""

    @property
    def grids(self) -> list[tuple[int, int]]:
        return [m.grid for m in self.matrices]

    @property
    def n_crossbars(self) -> int:
        return sum(m.n_crossbars for m in self.matrices)

    @property
    def cells(self) -> int:
        return sum(m.cells for m in self.matrices)

    @property
    def baseline_cells(self) -> int:
        return self.shape[0] * self.shape[1]

    @property
    def utilization(self) -> float:
        """cells / logical capacity of the layer's built crossbars."""
        cap = sum(m.n_tiles * m.tile_rows * m.tile_cols for m in self.matrices)
        return self.cells / cap if cap else 0.0

    @property
    def area_um2(self) -> float:
        return self.n_crossbars * self.crossbar_area_um2


@dataclass(frozen=True)
class Baseline:
    """The dense version of the same model on the same crossbars, every tile built."""

    n_crossbars: int
    cells: int
    area_um2: float
    n_nets: int
    total_wires: int


@dataclass(eq=False)
class MappedNetwork:
    """A model mapped onto crossbars. Build it with ``map_model``."""

    layers: list[MappedLayer]
    spec: CrossbarSpec
    input_shape: tuple[int, ...]
    nets: list[Net] = field(repr=False)
    """Two-pin buses (section 3), in dataflow order."""
    baseline: Baseline
    sources: dict[str, Matrix] = field(repr=False)
    """Matrix name -> its module, module path, producers and row sources (the dataflow)."""
    model: nn.Module | None = field(default=None, repr=False)
    """The mapped model (None for the structural dense baseline)."""
    capture: Capture | None = field(default=None, repr=False)
    """The captured dataflow graph that ``forward`` evaluates unit by unit."""
    operands: Operands | None = field(default=None, repr=False)
    """Extra buses between output units (a residual add's other operand), section 1."""
    outputs: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    """Matrix -> its columns that compute the network's output (their units are always built)."""

    def __repr__(self) -> str:
        return (f"MappedNetwork({len(self.layers)} layers, {self.spec}, n_crossbars="
                f"{self.n_crossbars} (dense {self.baseline.n_crossbars}), cells={self.cells} "
                f"(dense {self.baseline.cells}), nets={len(self.nets)})")

    @property
    def matrices(self) -> list[MappedMatrix]:
        return [m for layer in self.layers for m in layer.matrices]

    @property
    def n_crossbars(self) -> int:
        return sum(layer.n_crossbars for layer in self.layers)

    @property
    def cells(self) -> int:
        return sum(layer.cells for layer in self.layers)

    @property
    def area_um2(self) -> float:
        return self.n_crossbars * self.spec.crossbar_area_um2

    @property
    def total_wires(self) -> int:
        return sum(n.width for n in self.nets)

    @property
    def cell_area_ratio(self) -> float:
        """cells / cells of the dense baseline (the paper's 'crossbar area')."""
        return self.cells / self.baseline.cells

    @property
    def crossbar_area_ratio(self) -> float:
        """crossbars / crossbars of the dense baseline (what the chip pays)."""
        return self.n_crossbars / self.baseline.n_crossbars

    @functools.cached_property
    def design(self) -> Design:
        """Units, nets and tile weights for placement, routing and netlists (the structural
        dense baseline has no tile weights)."""
        consumed = {p for m in self.sources.values() for p in m.inputs}
        return build_design(self.matrices, self.nets, self.spec, consumed,
                            with_weights=self.model is not None, sources=self.sources,
                            outputs=self.outputs)

    def dense_baseline(self) -> "MappedNetwork":
        """The dense baseline as a MappedNetwork (structural: unit weights, every tile built),
        e.g. to place and route it for routing_area_ratio."""
        return _dense_network(self)

    def simulator(self, device: DeviceModel | None = None, calibration: torch.Tensor | None = None,
                  compute_dtype: torch.dtype = torch.float64, matrices=None) -> CrossbarSimulator:
        """An nn.Module evaluating the mapped design tile by tile and unit by unit along its
        row sources (float64 inside), one chip of ``device`` (calibrated on ``calibration``),
        on every matrix or on ``matrices`` (names) only; see mapping/simulate.py."""
        if self.capture is None:
            raise ConfigError("this MappedNetwork has no model to simulate (dense baseline?)")
        return CrossbarSimulator(self, device, calibration, compute_dtype, matrices)

    def forward(self, x: torch.Tensor, device: DeviceModel | None = None) -> torch.Tensor:
        """x: (B, *input_shape) -> the output of the mapped design: every matrix through its
        built tiles, every row read from the unit its row source names. One chip per device
        (cached); a device with converters is calibrated on the first batch it sees (use
        ``simulator(device, calibration=...)`` to choose the calibration batch)."""
        key = device if device is not None else DeviceModel()
        cache = self.__dict__.setdefault("_simulators", {})
        if key not in cache:
            cache.clear()
            cache[key] = self.simulator(device)
        return cache[key](x)

    __call__ = forward

    def to_dict(self) -> dict:
        from mapping.report import to_dict
        return to_dict(self)


def map_model(model: nn.Module, spec: CrossbarSpec | None = None,
              input_shape: tuple[int, ...] = None) -> MappedNetwork:
    """Map every Linear/Conv2d (low-rank U/V pair, grouped conv) of ``model`` onto ``spec``
    crossbars, whatever the graph (residual adds, concatenations, reshapes; mapping/capture.py).

    ``input_shape``: one sample without the batch, e.g. (1, 28, 28). Raises
    UnmappableLayerError (TypeError) for layers and operations it cannot place and
    DataflowError (ValueError) for dataflow it cannot wire exactly, before anything is built.
    """
    spec = CrossbarSpec() if spec is None else spec
    if not isinstance(spec, CrossbarSpec):
        raise TypeError(f"spec must be a CrossbarSpec, got {type(spec).__name__}")
    if input_shape is None:
        raise ConfigError("map_model needs input_shape, one sample without the batch, "
                         "e.g. (1, 28, 28); for registered models use models.info(name).input_shape")
    cap = capture(model, input_shape)
    layers = cap.layers
    _warn_if_large(sum(_n_tiles(*m.weights.shape, spec) for layer in layers
                       for m in layer.matrices), spec)
    sources = {m.name: m for layer in layers for m in layer.matrices}
    mapped = [MappedLayer(
        layer.name, layer.kind, layer.shape, layer.rank,
        [map_matrix(m.weights, spec, m.name) for m in layer.matrices],
        spec.crossbar_area_um2,
        layer.groups * _n_tiles(layer.shape[0], layer.shape[1] // layer.groups, spec) * spec.slices,
        layer.groups) for layer in layers]
    net = MappedNetwork(mapped, spec, tuple(cap.input_shape), [], None, sources, model, cap,
                        cap.operands, cap.outputs)
    net.nets = build_nets(net.matrices, sources, spec, net.operands)
    dense = _dense_network(net)
    net.baseline = Baseline(dense.n_crossbars, dense.cells, dense.area_um2, len(dense.nets),
                            dense.total_wires)
    return net


LARGE_DESIGN_TILES = 20_000
"""Tiles above which a design takes the flow more than seconds (LeNet on 2x2 crossbars: 165k
tiles, 433k nets, 12 s and 580 MB to map alone; place and route grow faster)."""


def _warn_if_large(tiles: int, spec: CrossbarSpec) -> None:
    if tiles > LARGE_DESIGN_TILES:
        warnings.warn(
            f"this design has {tiles:,} crossbar tiles of {spec.rows}x{spec.cols}; mapping, "
            "placing and routing it takes minutes and GBs of memory. If the crossbar size is a "
            "typo, use a larger one (e.g. 64x64 or 128x128); otherwise expect the wait.",
            stacklevel=3)


def _n_tiles(n: int, m: int, spec: CrossbarSpec) -> int:
    return -(-n // spec.rows) * -(-m // spec.lcols)


def build_nets(matrices: list[MappedMatrix], sources: dict[str, Matrix],
               spec: CrossbarSpec, operands: Operands | None = None) -> list[Net]:
    """Input buses producer -> tile (width: the tile's live rows fed by that producer) and
    output buses tile -> A(b) (width: the tile's live columns), section 3; then the operand
    buses into the matrix's output units (width: the signals each receives, section 1). Per
    matrix in dataflow order: its input nets by (tile row-major, producer), its output nets,
    its operand nets."""
    extra = _operand_nets(operands, spec)
    nets = []
    for mm in matrices:
        (na, nb), n = mm.grid, mm.shape[0]
        block, names = _row_units(sources[mm.name], spec)  # (N,) driving unit per row
        counts = np.zeros((na, nb, len(names)), dtype=np.int64)  # (A, B, S) live rows
        np.add.at(counts.transpose(0, 2, 1), (np.arange(n) // spec.rows, block),
                  mm.row_nonzero.astype(np.int64))
        nets += [Net(names[s], f"{mm.name}/T{a}_{b}", int(counts[a, b, s]), mm.name, "input")
                 for a, b, s in zip(*np.nonzero(counts), strict=True)]
        nets += [Net(f"{mm.name}/T{a}_{b}", f"{mm.name}/A{b}", int(mm.col_counts[a, b]), mm.name,
                     "output") for a, b in mm.tiles()]
        nets += extra.get(mm.name, [])
    return nets


def _row_units(src: Matrix, spec: CrossbarSpec) -> tuple[np.ndarray, list[str]]:
    """(N,) index into the unit names driving each row, and the names: "IN", or
    "<producer>/A<b>" for every column block b of each producer up to the last one used."""
    names, offset = [], []
    for j, p in enumerate(src.inputs):
        offset.append(len(names))
        if p is None:
            names.append("IN")
        else:
            last = int(src.row_source[src.row_input == j].max()) // spec.lcols
            names += [f"{p}/A{s}" for s in range(last + 1)]
    return np.asarray(offset)[src.row_input] + src.row_source // spec.lcols, names


def _operand_nets(ops: Operands | None, spec: CrossbarSpec) -> dict[str, list[Net]]:
    """Matrix -> the operand buses into its output units: from each unit holding a signal the
    unit needs (e.g. a residual add's other operand), one wire per distinct signal."""
    if ops is None or not len(ops.tap):
        return {}
    sb = np.where(ops.src_mat < 0, 0, ops.src_col // spec.lcols)
    key = np.unique(np.stack([ops.dst_mat, ops.dst_col // spec.lcols, ops.src_mat, sb, ops.tap,
                              ops.src_col], axis=1), axis=0)  # one row per signal and unit
    key = key[(key[:, 0] != key[:, 2]) | (key[:, 1] != key[:, 3])]  # within one unit: no bus
    pairs, widths = np.unique(key[:, :4], axis=0, return_counts=True)
    out: dict[str, list[Net]] = {}
    for (dm, b, sm, s), w in zip(pairs.tolist(), widths.tolist(), strict=True):  # unit pairs
        dst = ops.names[dm]
        src = "IN" if sm < 0 else f"{ops.names[sm]}/A{s}"
        out.setdefault(dst, []).append(Net(src, f"{dst}/A{b}", w, dst, "operand"))
    return out


def build_design(matrices: list[MappedMatrix], nets: list[Net], spec: CrossbarSpec,
                 consumed: set[str], with_weights: bool,
                 sources: dict[str, Matrix] | None = None,
                 outputs: dict[str, np.ndarray] | None = None) -> Design:
    """Units: IN, each matrix's built tiles and its output units that carry a net, compute a
    network output (``outputs``), or belong to a matrix no other matrix consumes. With
    ``sources``, also each matrix's RowSignals (who drives each row, which tiles use it)."""
    touched = {n.src for n in nets} | {n.dst for n in nets}
    touched |= {f"{m}/A{b}" for m, cols in (outputs or {}).items()
                for b in np.unique(np.asarray(cols) // spec.lcols).tolist()}
    units, weights, signals = [Unit("IN", "input")], {}, {}
    for mm in matrices:
        if sources is not None:
            signals[mm.name] = _row_signals(mm, sources[mm.name], spec)
        for a, b in mm.tiles():
            units.append(Unit(f"{mm.name}/T{a}_{b}", "tile", mm.name, (a, b)))
            if with_weights:  # a read-only view of the mapped weights (copy it to edit it)
                t = mm.tile(a, b).view()
                t.flags.writeable = False
                weights[f"{mm.name}/T{a}_{b}"] = t
        for b in range(mm.grid[1]):
            name = f"{mm.name}/A{b}"
            if name in touched or mm.name not in consumed:
                units.append(Unit(name, "output", mm.name, (0, b)))
    return Design(units, list(nets), spec.rows, spec.cols, spec.encoding, weights, signals,
                  spec.weight_bits, spec.cell_bits)


def _row_signals(mm: MappedMatrix, src: Matrix, spec: CrossbarSpec) -> RowSignals:
    block, names = _row_units(src, spec)
    return RowSignals(tuple(names), block, mm.row_nonzero)


def _dense_matrix(name: str, n: int, m: int, spec: CrossbarSpec) -> MappedMatrix:
    """Every tile built and every wire live, without scanning N*M weights."""
    r, c = spec.rows, spec.lcols
    na, nb = -(-n // r), -(-m // c)
    h = np.minimum(r, n - r * np.arange(na))[:, None]  # (A, 1)
    w = np.minimum(c, m - c * np.arange(nb))[None, :]  # (1, B)
    ones = np.ones((na, nb), dtype=np.int64)
    return MappedMatrix(name, np.broadcast_to(np.float32(1), (n, m)), r, c,
                        np.ones((n, nb), dtype=bool), np.ones((na, m), dtype=bool),
                        h * ones, w * ones, h * w, spec.slices)


def _renamed(m: Matrix, name: str, rename: dict[str, str]) -> Matrix:
    """A structural copy of ``m`` named ``name`` whose producers are renamed (several that get
    one name merge)."""
    names = [None if p is None else rename.get(p, p) for p in m.inputs]
    inputs = tuple(dict.fromkeys(names))
    lut = np.array([inputs.index(p) for p in names], dtype=np.int64)
    return Matrix(name, m.path, None, None, inputs, lut[m.row_input], m.row_source, m.group,
                  m.evaluations)


def _dense_network(net: MappedNetwork) -> MappedNetwork:
    """Each layer dense: one N x M matrix fed like the layer's first matrix (a low-rank pair
    becomes the layer it approximates), a grouped conv's g group matrices each dense."""
    rename = {m.name: (layer.name if layer.groups == 1 else m.name)
              for layer in net.layers for m in layer.matrices}
    layers, sources = [], {}
    for layer in net.layers:
        if layer.groups == 1:
            sources[layer.name] = _renamed(net.sources[layer.matrices[0].name], layer.name, rename)
            mats = [_dense_matrix(layer.name, *layer.shape, net.spec)]
        else:
            for m in layer.matrices:
                sources[m.name] = _renamed(net.sources[m.name], m.name, rename)
            mats = [_dense_matrix(m.name, *m.shape, net.spec) for m in layer.matrices]
        layers.append(MappedLayer(layer.name, layer.kind, layer.shape, None, mats,
                                  layer.crossbar_area_um2, layer.baseline_crossbars, layer.groups))
    operands = None if net.operands is None else net.operands.renamed(rename)
    outputs = {rename[k]: v for k, v in net.outputs.items()}
    dense = MappedNetwork(layers, net.spec, net.input_shape, [], None, sources, None, None,
                          operands, outputs)
    dense.nets = build_nets(dense.matrices, sources, net.spec, operands)
    dense.baseline = Baseline(dense.n_crossbars, dense.cells, dense.area_um2, len(dense.nets),
                              dense.total_wires)
    return dense
