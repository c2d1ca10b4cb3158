"""Map a whole model onto crossbars: tiles, output units, nets, area, simulation.

    >>> net = map_model(model, CrossbarSpec(64, 64), input_shape=(1, 28, 28))
    >>> net.n_crossbars, net.cells, net.cell_area_ratio, net.crossbar_area_ratio, net.area_um2
    >>> net.design            # mapping.design.Design for placement / routing / netlists
    >>> net.forward(x)        # crossbar-by-crossbar functional simulation (== model(x))
"""

import functools
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from common.errors import ConfigError
from mapping.design import Design, Net, RowSignals, Unit
from mapping.devices import CrossbarSimulator, DeviceModel
from mapping.extract import Matrix, extract
from mapping.partition import MappedMatrix, map_matrix
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
    """Crossbars of the dense N x M layer with every tile built."""

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
        cap = sum(m.n_crossbars * m.tile_rows * m.tile_cols for m in self.matrices)
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
    """Matrix name -> its module, module path, producer and row sources (the dataflow)."""
    model: nn.Module | None = field(default=None, repr=False)
    """The mapped model (run by ``forward`` with its weighted layers swapped for tiles)."""

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
        consumed = {m.producer for m in self.sources.values()}
        return build_design(self.matrices, self.nets, self.spec, consumed,
                            with_weights=self.model is not None, sources=self.sources)

    def dense_baseline(self) -> "MappedNetwork":
        """The dense baseline as a MappedNetwork (structural: unit weights, every tile built),
        e.g. to place and route it for routing_area_ratio."""
        return _dense_network(self)

    def simulator(self, device: DeviceModel | None = None) -> CrossbarSimulator:
        """An nn.Module computing the model crossbar by crossbar (float64 inside)."""
        if self.model is None:
            raise ConfigError("this MappedNetwork has no model to simulate (dense baseline?)")
        mats = [(self.sources[m.name].path, m) for m in self.matrices]
        return CrossbarSimulator(self.model, mats, self.spec.encoding, device)

    def forward(self, x: torch.Tensor, device: DeviceModel | None = None) -> torch.Tensor:
        """x: (B, *input_shape) -> the model's output computed through the crossbar tiles."""
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
    """Map every Linear/Conv2d (and low-rank U/V pair) of ``model`` onto ``spec`` crossbars.

    ``input_shape``: one sample without the batch, e.g. (1, 28, 28). Raises
    UnmappableLayerError (TypeError) for layers it cannot place and DataflowError (ValueError)
    for networks that are not chains.
    """
    spec = CrossbarSpec() if spec is None else spec
    if not isinstance(spec, CrossbarSpec):
        raise TypeError(f"spec must be a CrossbarSpec, got {type(spec).__name__}")
    if input_shape is None:
        raise ConfigError("map_model needs input_shape, one sample without the batch, "
                         "e.g. (1, 28, 28); for registered models use models.info(name).input_shape")
    layers = extract(model, input_shape)
    _warn_if_large(sum(_n_tiles(*m.weights.shape, spec) for layer in layers
                       for m in layer.matrices), spec)
    sources = {m.name: m for layer in layers for m in layer.matrices}
    mapped = [MappedLayer(
        layer.name, layer.kind, layer.shape, layer.rank,
        [map_matrix(m.weights, spec, m.name) for m in layer.matrices],
        spec.crossbar_area_um2, _n_tiles(*layer.shape, spec)) for layer in layers]
    net = MappedNetwork(mapped, spec, tuple(input_shape), [], None, sources, model)
    net.nets = build_nets(net.matrices, sources, spec)
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
               spec: CrossbarSpec) -> list[Net]:
    """Input buses producer -> tile (width: the tile's live rows fed by that producer) and
    output buses tile -> A(b) (width: the tile's live columns), section 3. Per matrix in
    dataflow order: its input nets by (tile row-major, producer), then its output nets."""
    nets = []
    for mm in matrices:
        src = sources[mm.name]
        (na, nb), n = mm.grid, mm.shape[0]
        if src.producer is None:
            block, names = np.zeros(n, dtype=np.int64), ["IN"]
        else:
            block = src.row_source // spec.lcols  # (N,) producer's output unit per row
            names = [f"{src.producer}/A{s}" for s in range(int(block.max()) + 1)]
        counts = np.zeros((na, nb, len(names)), dtype=np.int64)  # (A, B, S) live rows
        np.add.at(counts.transpose(0, 2, 1), (np.arange(n) // spec.rows, block),
                  mm.row_nonzero.astype(np.int64))
        nets += [Net(names[s], f"{mm.name}/T{a}_{b}", int(counts[a, b, s]), mm.name, "input")
                 for a, b, s in zip(*np.nonzero(counts), strict=True)]
        nets += [Net(f"{mm.name}/T{a}_{b}", f"{mm.name}/A{b}", int(mm.col_counts[a, b]), mm.name,
                     "output") for a, b in mm.tiles()]
    return nets


def build_design(matrices: list[MappedMatrix], nets: list[Net], spec: CrossbarSpec,
                 consumed: set[str], with_weights: bool,
                 sources: dict[str, Matrix] | None = None) -> Design:
    """Units: IN, each matrix's built tiles and its output units that carry a net (all of
    them for matrices no other matrix consumes: their outputs are network outputs). With
    ``sources``, also each matrix's RowSignals (who drives each row, which tiles use it)."""
    touched = {n.src for n in nets} | {n.dst for n in nets}
    units, weights, signals = [Unit("IN", "input")], {}, {}
    for mm in matrices:
        if sources is not None:
            signals[mm.name] = _row_signals(mm, sources[mm.name], spec)
        for a, b in mm.tiles():
            units.append(Unit(f"{mm.name}/T{a}_{b}", "tile", mm.name, (a, b)))
            if with_weights:
                weights[f"{mm.name}/T{a}_{b}"] = np.array(mm.tile(a, b))
        for b in range(mm.grid[1]):
            name = f"{mm.name}/A{b}"
            if name in touched or mm.name not in consumed:
                units.append(Unit(name, "output", mm.name, (0, b)))
    return Design(units, list(nets), spec.rows, spec.cols, spec.encoding, weights, signals)


def _row_signals(mm: MappedMatrix, src: Matrix, spec: CrossbarSpec) -> RowSignals:
    n = mm.shape[0]
    if src.producer is None:
        return RowSignals(("IN",), np.zeros(n, dtype=np.int64), mm.row_nonzero)
    block = src.row_source // spec.lcols  # (N,) producer's output unit per row
    names = tuple(f"{src.producer}/A{s}" for s in range(int(block.max()) + 1))
    return RowSignals(names, block, mm.row_nonzero)


def _dense_matrix(name: str, n: int, m: int, spec: CrossbarSpec) -> MappedMatrix:
    """Every tile built and every wire live, without scanning N*M weights."""
    r, c = spec.rows, spec.lcols
    na, nb = -(-n // r), -(-m // c)
    h = np.minimum(r, n - r * np.arange(na))[:, None]  # (A, 1)
    w = np.minimum(c, m - c * np.arange(nb))[None, :]  # (1, B)
    ones = np.ones((na, nb), dtype=np.int64)
    return MappedMatrix(name, np.broadcast_to(np.float32(1), (n, m)), r, c,
                        np.ones((n, nb), dtype=bool), np.ones((na, m), dtype=bool),
                        h * ones, w * ones, h * w)


def _dense_network(net: MappedNetwork) -> MappedNetwork:
    """Each layer as one dense N x M matrix fed like the layer's first matrix."""
    owner = {m.name: layer.name for layer in net.layers for m in layer.matrices}
    layers, sources = [], {}
    for layer in net.layers:
        first = net.sources[layer.matrices[0].name]
        producer = owner.get(first.producer)  # None stays None (IN)
        sources[layer.name] = Matrix(layer.name, first.path, None, None, producer, first.row_source,
                                     net.sources[layer.matrices[-1].name].evaluations)
        mm = _dense_matrix(layer.name, *layer.shape, net.spec)
        layers.append(MappedLayer(layer.name, layer.kind, layer.shape, None, [mm],
                                  layer.crossbar_area_um2, layer.baseline_crossbars))
    dense = MappedNetwork(layers, net.spec, net.input_shape, [], None, sources, None)
    dense.nets = build_nets(dense.matrices, sources, net.spec)
    dense.baseline = Baseline(dense.n_crossbars, dense.cells, dense.area_um2, len(dense.nets),
                              dense.total_wires)
    return dense
