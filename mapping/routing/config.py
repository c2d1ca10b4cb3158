"""What the router is asked and what it returns: ``RouteConfig`` (validated settings, defaults
from mapping.spec.Technology via ``RouteConfig.for_spec``) and ``Routing`` (per connection its
pins, width and gcell-edge route; usage and capacity per edge; wirelength, bounds, congestion,
overflow and routing area derived from them). The allowed values of the string settings are
``METHODS`` and ``PIN_ACCESS`` (net models: mapping.steiner.NET_MODELS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError, check_ranges
from mapping.routing.grid import Grid
from mapping.spec import tracks_per_edge
from mapping.steiner import NET_MODELS

MAX_GCELLS_PER_SITE = 64  # finer gcells make the grid (and the router's time) explode
METHODS = ("auto", "cpsat", "negotiated")
PIN_ACCESS = ("footprint", "center")


@dataclass(frozen=True)
class RouteConfig:
    """How ``route`` works. Defaults follow mapping.spec.Technology (10 um gcells, 0.1 um
    wire pitch, 2 routing layers -> 200 tracks per gcell edge); see docs/routing.md."""

    net_model: str = "steiner"
    """'steiner': the input buses from one producer to the tiles of one row block form one
    multi-pin net, routed as a tree whose branches carry only the rows used below them;
    'two-pin': every bus of hardware-model section 3 routed on its own (mapping.steiner)."""
    reduction_trees: bool = False
    """With net_model 'steiner': the output buses of one column block form one multi-pin net
    rooted at its output unit A(b), every tile adding the partial sums it receives to its own
    (hardware-model section 3), every edge carrying the union of the live columns below it.
    False (the default, which keeps the published LeNet/ConvNet figures): output buses stay
    two-pin. Big designs need them (mapping.routing.route_routable, docs/routing.md)."""
    pin_access: str = "footprint"
    """'footprint': each connection leaves a unit from the gcell of the unit's footprint (its
    site, or its sub-block of a shared site) nearest the other end, as pin assignment puts a
    block's pins on the side facing the net; 'center': every connection of a unit starts at
    one gcell (the footprint's centre), which caps a unit at 4 x capacity wires."""
    lane_wires: int | None = None
    """Widest bundle routed as one path: a wider connection is split into near-equal lanes
    (same pins, routed independently), as a global router may route a bus's wires apart.
    None = half the track capacity, so that two lanes can share a gcell edge."""
    tap_wires: int | None = None
    """Most wires of tree connections tapped at one gcell of a unit's footprint: a tree whose
    tap would exceed it taps the nearest gcell with room (spreads the trees of a wide unit over
    its footprint). None = the track capacity with reduction_trees (what one edge of the gcell
    holds: a wide producer's lanes all head the same way), else twice the capacity (which
    keeps the published LeNet/ConvNet routes)."""
    method: str = "auto"
    """'negotiated' (any size), 'cpsat' (candidate routes chosen by OR-Tools CP-SAT) or 'auto'
    (cpsat up to ``cpsat_max_nets`` nets, else negotiated)."""
    gcells_per_site: int = 4
    """gcells along one side of a site (a site is gcells_per_site^2 gcells); about the site
    pitch / gcell_um (a 64x64 crossbar with its periphery is ~35 um across: 4 gcells)."""
    gcell_um: float = 10.0
    """Side of one gcell (um): the length one routed edge stands for."""
    wire_pitch_um: float = 0.1
    """Pitch of one routing track (um)."""
    routing_layers: int = 2
    """Metal layers for the inter-crossbar buses (used for the default capacity)."""
    tracks_per_gcell_edge: int | None = None
    """Track capacity of every gcell edge; None = floor(gcell_um / wire_pitch_um) x
    routing_layers."""
    seed: int = 0
    """Seed for the order of equal nets and CP-SAT's random_seed (same seed, same result)."""
    time_limit_s: float = 1.0
    """CP-SAT budget in deterministic seconds (max_deterministic_time: reproducible)."""
    cpsat_max_nets: int = 1000
    """Largest design (two-pin connections routed) that method 'auto' gives to CP-SAT."""
    cpsat_workers: int = 1
    """CP-SAT threads; with more than one, interleaved search keeps the result deterministic."""
    overflow_penalty: int = 100
    """Cost of one track over capacity on one edge, in track-gcell-edges of wire."""
    max_iterations: int = 30
    """Most rip-up-and-reroute rounds of negotiated congestion."""
    z_jogs: int = 3
    """Z-shaped candidates per orientation offered to CP-SAT (besides the two L's)."""
    detour_margin_gcells: int = 8
    """How far (gcells) a maze detour may leave the bounding box of the net's pins."""

    def __post_init__(self) -> None:
        if not isinstance(self.reduction_trees, bool):
            raise ConfigError(f"RouteConfig.reduction_trees must be a bool, got "
                             f"{self.reduction_trees!r}")
        if self.net_model not in NET_MODELS:
            raise ConfigError(f"RouteConfig.net_model must be one of {NET_MODELS}, got "
                             f"{self.net_model!r}")
        if self.pin_access not in PIN_ACCESS:
            raise ConfigError(f"RouteConfig.pin_access must be one of {PIN_ACCESS}, got "
                             f"{self.pin_access!r}")
        if self.method not in METHODS:
            raise ConfigError(f"RouteConfig.method must be one of {METHODS}, got {self.method!r}")
        checks = [("gcells_per_site", 1, MAX_GCELLS_PER_SITE), ("gcell_um", 1e-6, 1e6),
                  ("wire_pitch_um", 1e-6, 1e6), ("routing_layers", 1, 64),
                  ("seed", 0, 2**31 - 1), ("time_limit_s", 1e-3, 1e5),
                  ("cpsat_max_nets", 0, 10**7), ("cpsat_workers", 1, 64),
                  ("overflow_penalty", 1, 10**6), ("max_iterations", 0, 10**4),
                  ("z_jogs", 0, 64), ("detour_margin_gcells", 0, 10**4)]
        for name in ("tracks_per_gcell_edge", "lane_wires", "tap_wires"):
            if getattr(self, name) is not None:
                checks.append((name, 1, 10**9))
        check_ranges("RouteConfig", self, checks)
        if self.capacity < 1:
            raise ConfigError(f"gcell_um ({self.gcell_um}) / wire_pitch_um ({self.wire_pitch_um})"
                             " leaves no track on a gcell edge; use larger gcells or a finer pitch")

    @property
    def capacity(self) -> int:
        """Tracks per gcell edge actually used."""
        if self.tracks_per_gcell_edge is not None:
            return self.tracks_per_gcell_edge
        return tracks_per_edge(self.gcell_um, self.wire_pitch_um, self.routing_layers)

    @property
    def lane_limit(self) -> int:
        """Widest lane actually used (lane_wires, or half the capacity)."""
        return self.lane_wires if self.lane_wires is not None else max(1, self.capacity // 2)

    @property
    def tap_limit(self) -> int:
        """Most tree wires tapped at one gcell actually used (see tap_wires)."""
        if self.tap_wires is not None:
            return self.tap_wires
        return self.capacity if self.reduction_trees else 2 * self.capacity

    @classmethod
    def for_spec(cls, spec, **overrides) -> RouteConfig:
        """Config from a mapping.spec.CrossbarSpec: gcell size, pitch and layers from its
        Technology, gcells_per_site = ceil(sqrt(site area) / gcell_um), a site holding one tile:
        its crossbar, or its ``spec.slices`` crossbars when weights are bit-sliced."""
        tech = spec.tech
        side_um = math.sqrt(spec.crossbar_area_um2 * spec.slices)
        g = max(1, math.ceil(side_um / tech.gcell_um - 1e-9))
        if g > MAX_GCELLS_PER_SITE and "gcells_per_site" not in overrides:
            raise ConfigError(
                f"a {spec.rows}x{spec.cols} crossbar site is {side_um:.1f} um wide, i.e. {g} "
                f"gcells of gcell_um {tech.gcell_um} (at most {MAX_GCELLS_PER_SITE}); use a "
                f"Technology.gcell_um of at least {side_um / MAX_GCELLS_PER_SITE:.3g}")
        kw = {"gcells_per_site": g, "gcell_um": tech.gcell_um,
              "wire_pitch_um": tech.wire_pitch_um, "routing_layers": int(tech.routing_layers)}
        kw.update(overrides)
        return cls(**kw)


@dataclass
class Routing:
    """Routes of every connection and the demand they put on the gcell grid.

    A connection is a two-pin piece of wiring (mapping.steiner): with net_model 'two-pin' it
    is a net of the design; with 'steiner' an edge of a multi-pin net's tree. ``net_path(i)``
    gives the route of net i of the design either way."""

    grid_gcells: tuple[int, int]
    """(GX, GY) gcells."""
    pins: np.ndarray
    """(n_connections, 2, 2) int: [[src x, src y], [dst x, dst y]] pin gcells."""
    widths: np.ndarray
    """(n_connections,) wires per connection."""
    layers: list[str]
    """Matrix of every connection (the layer it is reported under)."""
    edges: list[np.ndarray]
    """Per connection: the gcell-edge ids of its route, in order from src to dst."""
    usage: np.ndarray
    """(n_edges,) tracks used on every gcell edge (sum of the widths of the nets crossing it)."""
    capacity: np.ndarray
    """(n_edges,) tracks available on every gcell edge."""
    config: RouteConfig
    method: str
    """'negotiated' or 'cpsat'."""
    status: str
    """CP-SAT status, or 'negotiated' with the rounds it took."""
    seconds: float = 0.0
    net_connections: list[np.ndarray] | None = None
    """Per net of the design: its connections from src to dst (None: connection i = net i)."""
    signal_bound: int | None = None
    """A lower bound on the wirelength of any routing of the design's signals on this placement
    (trees or not, pins anywhere on the footprints with pin_access 'footprint';
    mapping.steiner); None = lower_bound."""
    net_wires: int | None = None
    """Sum of the widths of the design's nets (hardware-model section 3's wires)."""

    @property
    def n_nets(self) -> int:
        """Nets of the routed design (not connections)."""
        return len(self.edges) if self.net_connections is None else len(self.net_connections)

    def net_path(self, i: int) -> np.ndarray:
        """(length + 1, 2) gcells visited by net i of the design, from its src pin to its dst
        pin (through the taps of the tiles its tree passes on the way)."""
        if self.net_connections is None:
            return self.path(i)
        parts = [self.path(int(c)) for c in self.net_connections[i]]  # each starts at a tap
        return np.concatenate([parts[0]] + [q[1:] for q in parts[1:]]).astype(np.int64)

    @property
    def grid(self) -> Grid:
        return Grid(*self.grid_gcells)

    @property
    def lengths(self) -> np.ndarray:
        """(n_connections,) routed length in gcell edges (a multi-pin net is several connections)."""
        return np.array([len(e) for e in self.edges], dtype=np.int64)

    @property
    def wirelength(self) -> int:
        """Sum over connections of width x routed length (gcell edges)."""
        return int((self.widths * self.lengths).sum())

    @property
    def lower_bound(self) -> int:
        """Sum over connections of width x Manhattan distance of its pin gcells: for two-pin
        nets the bound of hardware-model section 5, for trees the length of the rectilinear
        tree the router was asked to lay down (see signal_bound for one valid for any tree)."""
        return int((self.widths * np.abs(self.pins[:, 0] - self.pins[:, 1]).sum(axis=1)).sum())

    @property
    def congestion(self) -> np.ndarray:
        """(n_edges,) demand / capacity."""
        return self.usage / self.capacity

    @property
    def overflow(self) -> int:
        """Tracks above capacity, summed over edges."""
        return int(np.maximum(self.usage - self.capacity, 0).sum())

    @property
    def max_congestion(self) -> float:
        return float(self.congestion.max()) if len(self.usage) else 0.0

    @property
    def mean_congestion(self) -> float:
        """Mean of demand / capacity over all gcell edges of the grid."""
        return float(self.congestion.mean()) if len(self.usage) else 0.0

    @property
    def routing_area_um2(self) -> float:
        """wirelength x wire pitch x gcell length."""
        return self.wirelength * self.config.wire_pitch_um * self.config.gcell_um

    def path(self, i: int) -> np.ndarray:
        """(length + 1, 2) gcells visited by connection i, from its src pin to its dst pin."""
        return self.grid.path(self.pins[i, 0], self.edges[i])
