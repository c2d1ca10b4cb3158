"""Global routing of a placed Design on a grid of gcells (hardware-model.md section 5).

    >>> rt = route(design, placement, RouteConfig())
    >>> rt.wirelength, rt.lower_bound, rt.overflow, rt.max_congestion, rt.routing_area_um2

Each site is ``gcells_per_site`` x ``gcells_per_site`` gcells; a net goes from the pin gcell of
its source unit to that of its destination (a tile's pin is its site's centre gcell; the small
units sharing a site each own one sub-block of it). Every gcell edge holds
``tracks_per_gcell_edge`` tracks and a net of width w takes w tracks on every edge it crosses.

- negotiated (any size): PathFinder-style negotiated congestion. Each net takes its cheapest
  pattern route (every H-V-H and V-H-V shape: both L's and all Z's, costed in O(1) per shape by
  prefix sums over numpy edge-cost arrays, a chunk of nets at a time); nets crossing an
  overflowed edge are ripped up and rerouted with rising present-congestion and history
  costs, after a few rounds by a Dijkstra maze search in a window around the net (detours).
- cpsat (small/medium designs): candidate routes per net (two L's, Z's, the negotiated route
  and a maze detour), one chosen per net by OR-Tools CP-SAT minimizing
  width x length + overflow_penalty x overflow, warm-started with the negotiated routes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from common.errors import ConfigError
from mapping.design import Design
from mapping.placement import Placement, net_arrays, ranges
from mapping.spec import tracks_per_edge
from mapping.steiner import NET_MODELS, connections

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
    pin_access: str = "footprint"
    """'footprint': each connection leaves a unit from the gcell of the unit's footprint (its
    site, or its sub-block of a shared site) nearest the other end, as pin assignment puts a
    block's pins on the side facing the net; 'center': every connection of a unit starts at
    one gcell (the footprint's centre), which caps a unit at 4 x capacity wires."""
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
        if self.tracks_per_gcell_edge is not None:
            checks.append(("tracks_per_gcell_edge", 1, 10**9))
        for name, lo, hi in checks:
            v = getattr(self, name)
            whole = isinstance(lo, int)
            if isinstance(v, bool) or not isinstance(v, int if whole else (int, float)):
                kind = "an int" if whole else "a number"
                raise ConfigError(f"RouteConfig.{name} must be {kind}, got {v!r}")
            if not (lo <= v <= hi) or (not whole and not math.isfinite(v)):
                raise ConfigError(f"RouteConfig.{name} must be in [{lo}, {hi}], got {v!r}")
        if self.capacity < 1:
            raise ConfigError(f"gcell_um ({self.gcell_um}) / wire_pitch_um ({self.wire_pitch_um})"
                             " leaves no track on a gcell edge; use larger gcells or a finer pitch")

    @property
    def capacity(self) -> int:
        """Tracks per gcell edge actually used."""
        if self.tracks_per_gcell_edge is not None:
            return self.tracks_per_gcell_edge
        return tracks_per_edge(self.gcell_um, self.wire_pitch_um, self.routing_layers)

    @classmethod
    def for_spec(cls, spec, **overrides) -> RouteConfig:
        """Config from a mapping.spec.CrossbarSpec: gcell size, pitch and layers from its
        Technology, gcells_per_site = ceil(sqrt(crossbar area) / gcell_um)."""
        tech = spec.tech
        side_um = math.sqrt(spec.crossbar_area_um2)
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


def pin_gcells(arr, placement: Placement, g: int) -> np.ndarray:
    """(n_units, 2) pin gcell of every unit: a tile's site centre; small unit in slot j of a
    site the centre of sub-block j of a ceil(sqrt(k)) x ceil(sqrt(k)) split of the site."""
    return footprints(arr, placement, g)[0]


def footprints(arr, placement: Placement, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(centre, lo, hi), each (n_units, 2) gcells: every unit's pin gcell and the corners of
    its footprint (a tile's site; a small unit's sub-block of its shared site)."""
    k = placement.output_units_per_site
    q = math.ceil(math.sqrt(k))
    site = np.array([placement.positions[n] for n in arr.names], dtype=np.int64).reshape(-1, 2)
    slot = np.array([placement.slots[n] for n in arr.names], dtype=np.int64)
    sub = np.stack([slot % q, (slot // q) % q], axis=1)  # (n, 2) sub-block of the site
    small = arr.small[:, None]
    centre = site * g + np.where(small, ((2 * sub + 1) * g) // (2 * q), g // 2)
    lo = site * g + np.where(small, (sub * g) // q, 0)
    hi = site * g + np.where(small, ((sub + 1) * g) // q - 1, g - 1)
    return centre, np.minimum(lo, centre), np.maximum(hi, centre)


def route(design: Design, placement: Placement, config: RouteConfig | None = None) -> Routing:
    """Route every net of ``design`` placed by ``placement``; see the module docstring."""
    cfg = RouteConfig() if config is None else config
    if not isinstance(cfg, RouteConfig):
        raise TypeError(f"config must be a RouteConfig, got {type(cfg).__name__}")
    if not isinstance(placement, Placement):
        raise TypeError(f"placement must be a Placement, got {type(placement).__name__}")
    arr = net_arrays(design)
    missing = [n for n in arr.names if n not in placement.positions]
    if missing:
        raise ConfigError(f"placement has no site for unit(s) {missing[:3]}; place this design "
                         "with place(design) before routing it")
    t0 = time.perf_counter()
    g = cfg.gcells_per_site
    grid = Grid(placement.grid_sites[0] * g, placement.grid_sites[1] * g)
    pin, lo, hi = footprints(arr, placement, g)
    box = (lo, hi) if cfg.pin_access == "footprint" else None
    con = connections(design, pin, arr.src, arr.dst, arr.width, cfg.net_model, box)
    long = np.flatnonzero((con.pins[:, 0] != con.pins[:, 1]).any(axis=1))  # length > 0
    pins, width = con.pins[long], con.widths[long]
    cap = np.full(grid.n_edges, cfg.capacity, dtype=np.int64)
    routed, rounds = negotiate(grid, pins, width, cap, cfg)
    method, status = "negotiated", f"negotiated ({rounds} rounds)"
    if cfg.method == "cpsat" or (cfg.method == "auto" and len(width) <= cfg.cpsat_max_nets):
        routed, status = select_cpsat(grid, pins, width, cap, routed, cfg)
        method = "cpsat"
    edges = [np.zeros(0, dtype=np.int64)] * len(con.widths)
    for j, e in zip(long.tolist(), routed, strict=True):
        edges[j] = e
    usage = grid.usage(edges, con.widths)
    return Routing((grid.gx, grid.gy), con.pins, con.widths, con.layers, edges, usage, cap, cfg,
                   method, status, time.perf_counter() - t0,
                   None if cfg.net_model == "two-pin" else con.net_connections,
                   con.signal_bound, int(arr.width.sum()))


# ------------------------------------------------------------------------------ the grid

class Grid:
    """Edge ids of a gx x gy gcell grid: horizontal edge (x, y)-(x+1, y) is x*gy + y, vertical
    edge (x, y)-(x, y+1) is nh + x*(gy-1) + y with nh = (gx-1)*gy."""

    def __init__(self, gx: int, gy: int):
        self.gx, self.gy = int(gx), int(gy)
        self.nh = (self.gx - 1) * self.gy
        self.n_edges = self.nh + self.gx * (self.gy - 1)

    def endpoints(self, e: np.ndarray) -> np.ndarray:
        """(L, 2, 2) the two gcells of every edge, lower one first."""
        e = np.asarray(e, dtype=np.int64)
        h = e < self.nh
        v = e - self.nh
        x = np.where(h, e // self.gy, v // max(self.gy - 1, 1))
        y = np.where(h, e % self.gy, v % max(self.gy - 1, 1))
        a = np.stack([x, y], axis=-1)
        return np.stack([a, a + np.stack([h, ~h], axis=-1)], axis=1)

    def path(self, start: np.ndarray, e: np.ndarray) -> np.ndarray:
        """(L + 1, 2) gcells along edges e (in order) starting at gcell ``start``."""
        nodes = np.empty((len(e) + 1, 2), dtype=np.int64)
        nodes[0] = start
        if len(e):
            ends = self.endpoints(e)
            if len(e) > 1:  # node i (1 <= i < L) = the end edge i shares with edge i - 1
                shared = (ends[1:, 0, None] == ends[:-1]).all(-1).any(-1)  # (L-1,)
                nodes[1:-1] = np.where(shared[:, None], ends[1:, 0], ends[1:, 1])
            nodes[-1] = ends[-1].sum(0) - nodes[-2]
        return nodes

    def from_nodes(self, nodes: np.ndarray) -> np.ndarray:
        """Edge ids between consecutive gcells of a path (L + 1, 2) -> (L,)."""
        lo = np.minimum(nodes[1:], nodes[:-1])
        horiz = nodes[1:, 1] == nodes[:-1, 1]
        return np.where(horiz, lo[:, 0] * self.gy + lo[:, 1],
                        self.nh + lo[:, 0] * (self.gy - 1) + lo[:, 1])

    def usage(self, edges: list[np.ndarray], width: np.ndarray) -> np.ndarray:
        """(n_edges,) sum of the widths of the routes crossing each edge."""
        n = np.array([len(e) for e in edges], dtype=np.int64)
        if n.sum() == 0:
            return np.zeros(self.n_edges, dtype=np.int64)
        flat = np.concatenate(edges)
        return np.bincount(flat, np.repeat(width, n), minlength=self.n_edges).astype(np.int64)

    def segments(self, kind: np.ndarray, jog: np.ndarray, pins: np.ndarray) -> list[np.ndarray]:
        """Edge lists of pattern routes: kind 0 = H-V-H with the vertical run at x = jog,
        kind 1 = V-H-V with the horizontal run at y = jog (both L's are special cases)."""
        x1, y1, x2, y2 = pins[:, 0, 0], pins[:, 0, 1], pins[:, 1, 0], pins[:, 1, 1]
        hvh = kind == 0
        # three segments per net: (horizontal?, fixed coordinate, from, to)
        horiz = np.stack([hvh, ~hvh, hvh], axis=1)
        fixed = np.stack([np.where(hvh, y1, x1), jog, np.where(hvh, y2, x2)], axis=1)
        a = np.stack([np.where(hvh, x1, y1), np.where(hvh, y1, x1), jog], axis=1)
        b = np.stack([jog, np.where(hvh, y2, x2), np.where(hvh, x2, y2)], axis=1)
        horiz, fixed, a, b = horiz.ravel(), fixed.ravel(), a.ravel(), b.ravel()
        step = np.sign(b - a)
        seg, k = ranges(np.zeros(len(a), dtype=np.int64), np.abs(b - a))
        p = a[seg] + step[seg] * k
        lo = np.where(step[seg] > 0, p, p - 1)
        ids = np.where(horiz[seg], lo * self.gy + fixed[seg],
                       self.nh + fixed[seg] * (self.gy - 1) + lo)
        per_net = np.bincount(seg // 3, minlength=len(kind))
        return np.split(ids, np.cumsum(per_net)[:-1])


# ------------------------------------------------------------------ negotiated congestion

_CHUNK = 128  # nets routed against one snapshot of the edge costs (at least; <= 64 chunks)
_PRES_START, _PRES_GROW, _HIST_GAIN = 0.5, 1.6, 0.5
_PATTERN_ROUNDS = 4  # rounds of pattern-only rerouting before maze detours
_MAZE_MAX = 1000  # most nets maze-rerouted per round
_MAZE_BUDGET = 20_000_000  # gcells searched by all maze routes of one call (deterministic cap)
_STALL = 0.005  # stop negotiating when 3 rounds improved the best objective by less than this
_EPS = 0.02  # prefer lightly used edges among equally long routes


def _best_patterns(hc: np.ndarray, vc: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cheapest H-V-H / V-H-V route per net from prefix sums hc[x, y] = cost of the
    horizontal edges left of x in row y, vc[x, y] = cost of the vertical edges below y."""
    x1, y1, x2, y2 = p[:, 0, 0], p[:, 0, 1], p[:, 1, 0], p[:, 1, 1]

    def hs(y, a, b):
        return np.abs(hc[b, y] - hc[a, y])

    def vs(x, a, b):
        return np.abs(vc[x, b] - vc[x, a])

    n1, n2 = np.abs(x2 - x1) + 1, np.abs(y2 - y1) + 1  # (c,) shapes of each family
    o1, m1 = ranges(np.minimum(x1, x2), n1)  # H-V-H, vertical run at x = m1
    c1 = hs(y1[o1], x1[o1], m1) + vs(m1, y1[o1], y2[o1]) + hs(y2[o1], m1, x2[o1])
    o2, m2 = ranges(np.minimum(y1, y2), n2)  # V-H-V, horizontal run at y = m2
    c2 = vs(x1[o2], y1[o2], m2) + hs(m2, x1[o2], x2[o2]) + vs(x2[o2], m2, y2[o2])
    j1, best1 = _argmin_groups(c1, n1)
    j2, best2 = _argmin_groups(c2, n2)
    hvh = best1 <= best2
    return np.where(hvh, 0, 1), np.where(hvh, m1[j1], m2[j2])


def _argmin_groups(cost: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First index and value of the minimum of each consecutive group of ``counts`` values."""
    starts = np.cumsum(counts) - counts
    low = np.minimum.reduceat(cost, starts)
    hit = np.flatnonzero(cost == np.repeat(low, counts))
    group = np.repeat(np.arange(len(counts)), counts)[hit]
    return hit[np.r_[True, group[1:] != group[:-1]]], low


class _Negotiator:
    def __init__(self, grid: Grid, pins: np.ndarray, width: np.ndarray, cap: np.ndarray,
                 penalty: int):
        self.grid, self.pins, self.width, self.cap, self.penalty = grid, pins, width, cap, penalty
        self.usage = np.zeros(grid.n_edges, dtype=np.int64)
        self.hist = np.zeros(grid.n_edges)
        self.pres = _PRES_START
        self.edges = [np.zeros(0, dtype=np.int64)] * len(width)
        self.budget = _MAZE_BUDGET

    def cost(self, w: int, ids: np.ndarray | slice = slice(None), exact: bool = False):
        """Per-track cost of adding w tracks to edges ``ids``: length + history + present
        congestion (exact: 1 + penalty x overflow added / w, the true objective)."""
        u, c = self.usage[ids], self.cap[ids]
        over = np.clip((u + w - c) / w, 0.0, 1.0)
        if exact:
            return 1.0 + self.penalty * over
        return 1.0 + self.hist[ids] + self.pres * over + _EPS * np.minimum(u / c, 1.0)

    def add(self, idx: np.ndarray, sign: int) -> None:
        if len(idx) == 1:
            np.add.at(self.usage, self.edges[idx[0]], sign * int(self.width[idx[0]]))
        elif len(idx):
            self.usage += sign * self.grid.usage([self.edges[i] for i in idx], self.width[idx])

    def route_patterns(self, idx: np.ndarray) -> None:
        g, size = self.grid, max(_CHUNK, -(-len(idx) // 64))
        for c in range(0, len(idx), size):
            ch = idx[c:c + size]
            cost = self.cost(int(self.width[ch].max()))
            hc, vc = np.zeros((g.gx, g.gy)), np.zeros((g.gx, g.gy))
            hc[1:] = np.cumsum(cost[:g.nh].reshape(g.gx - 1, g.gy), axis=0)
            vc[:, 1:] = np.cumsum(cost[g.nh:].reshape(g.gx, g.gy - 1), axis=1)
            kind, jog = _best_patterns(hc, vc, self.pins[ch])
            for i, e in zip(ch.tolist(), g.segments(kind, jog, self.pins[ch]), strict=True):
                self.edges[i] = e
            self.add(ch, +1)

    def maze(self, i: int, margin: int, exact: bool) -> np.ndarray:
        """Cheapest route of net i (ripped up) inside its pin box grown by ``margin``; no
        worse than its current route under the same costs. Spends the search budget."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import dijkstra

        g, (p, q) = self.grid, self.pins[i]
        x0, y0 = np.maximum(np.minimum(p, q) - margin, 0)
        x1, y1 = np.minimum(np.maximum(p, q) + margin, [g.gx - 1, g.gy - 1])
        ny = y1 - y0 + 1
        hx, hy = (a.ravel() for a in np.meshgrid(np.arange(x0, x1), np.arange(y0, y1 + 1),
                                                 indexing="ij"))
        vx, vy = (a.ravel() for a in np.meshgrid(np.arange(x0, x1 + 1), np.arange(y0, y1),
                                                 indexing="ij"))
        ids = np.r_[hx * g.gy + hy, g.nh + vx * (g.gy - 1) + vy]
        a = np.r_[(hx - x0) * ny + hy - y0, (vx - x0) * ny + vy - y0]
        b = a + np.r_[np.full(len(hx), ny), np.ones(len(vx), dtype=np.int64)]
        n_nodes = (x1 - x0 + 1) * ny
        self.budget -= n_nodes
        cost = self.cost(int(self.width[i]), ids, exact)
        old = self.edges[i]
        limit = self.cost(int(self.width[i]), old, exact).sum() + 1e-6 if len(old) else np.inf
        graph = coo_matrix((cost, (a, b)), shape=(n_nodes, n_nodes)).tocsr()
        s, t = (p[0] - x0) * ny + p[1] - y0, (q[0] - x0) * ny + q[1] - y0
        _, pred = dijkstra(graph, directed=False, indices=s, return_predecessors=True,
                           limit=limit)
        if t != s and pred[t] < 0:  # nothing within the limit (e.g. old route left the box)
            return old
        nodes = [t]
        while nodes[-1] != s:
            nodes.append(pred[nodes[-1]])
        nodes = np.array(nodes[::-1])
        return g.from_nodes(np.stack([x0 + nodes // ny, y0 + nodes % ny], axis=1))

    def score(self, i: int, e: np.ndarray) -> float:
        """width x length + penalty x overflow that route e of net i adds (net i ripped up)."""
        w, u, c = int(self.width[i]), self.usage[e], self.cap[e]
        added = np.maximum(u + w - c, 0) - np.maximum(u - c, 0)
        return w * len(e) + self.penalty * int(added.sum())

    def owners_of(self, mask: np.ndarray) -> np.ndarray:
        """Nets whose route crosses an edge where mask is True."""
        lens = np.array([len(e) for e in self.edges], dtype=np.int64)
        if lens.sum() == 0:
            return np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(lens)), lens)
        return np.unique(owner[mask[np.concatenate(self.edges)]])

    def total(self) -> float:
        wl = sum(int(w) * len(e) for w, e in zip(self.width.tolist(), self.edges, strict=True))
        return wl + self.penalty * int(np.maximum(self.usage - self.cap, 0).sum())


def negotiate(grid: Grid, pins: np.ndarray, width: np.ndarray, cap: np.ndarray,
              cfg: RouteConfig) -> tuple[list[np.ndarray], int]:
    """PathFinder: route all, then rip up and reroute the nets on overflowed edges with rising
    costs; finally each detoured or overflowing net takes its exact best response."""
    n = len(width)
    neg = _Negotiator(grid, pins, width, cap, cfg.overflow_penalty)
    if n == 0:
        return [], 0
    order = np.lexsort((np.random.default_rng(cfg.seed).permutation(n), -width))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    neg.route_patterns(order)
    best, best_edges, rounds = neg.total(), list(neg.edges), 0
    totals = [best]
    for rounds in range(1, cfg.max_iterations + 1):
        over = neg.usage > cap
        stalled = len(totals) > 3 and min(totals[:-3]) - best < _STALL * min(totals[:-3])
        if not over.any() or neg.budget <= 0 or stalled:
            break
        neg.hist += _HIST_GAIN * np.minimum((neg.usage - cap).clip(0) / cap, 1.0)
        neg.pres *= _PRES_GROW
        victims = neg.owners_of(over)
        victims = victims[np.argsort(rank[victims])]
        if rounds <= _PATTERN_ROUNDS:
            neg.add(victims, -1)
            neg.route_patterns(victims)
        else:
            for i in victims[:_MAZE_MAX].tolist():
                if neg.budget <= 0:
                    break
                neg.add(np.array([i]), -1)
                neg.edges[i] = neg.maze(i, cfg.detour_margin_gcells, exact=False)
                neg.add(np.array([i]), +1)
        totals.append(neg.total())
        if totals[-1] < best:
            best, best_edges = totals[-1], list(neg.edges)
    neg.edges = best_edges
    neg.usage = grid.usage(best_edges, width)
    neg.budget = max(neg.budget, _MAZE_BUDGET // 4)
    _best_response(neg, rank, cfg.detour_margin_gcells)
    return neg.edges, rounds


def _best_response(neg: _Negotiator, rank: np.ndarray, margin: int) -> None:
    """Each net that is detoured or crosses an overflowed edge is rerouted by an exact
    shortest path (the true objective, other nets fixed) if that lowers the objective."""
    manhattan = np.abs(neg.pins[:, 0] - neg.pins[:, 1]).sum(axis=1)
    lens = np.array([len(e) for e in neg.edges], dtype=np.int64)
    todo = np.union1d(np.flatnonzero(lens > manhattan), neg.owners_of(neg.usage > neg.cap))
    for i in todo[np.argsort(rank[todo])][:_MAZE_MAX].tolist():
        if neg.budget <= 0:
            break
        one = np.array([i])
        neg.add(one, -1)
        old = neg.edges[i]
        new = neg.maze(i, margin, exact=True)
        if neg.score(i, new) < neg.score(i, old):
            neg.edges[i] = new
        neg.add(one, +1)


# ------------------------------------------------------------------- CP-SAT route selection

def _objective(grid: Grid, edges: list[np.ndarray], width: np.ndarray, cap: np.ndarray,
               penalty: int) -> int:
    wl = int(sum(int(w) * len(e) for w, e in zip(width.tolist(), edges, strict=True)))
    return wl + penalty * int(np.maximum(grid.usage(edges, width) - cap, 0).sum())


def _candidates(grid: Grid, pins: np.ndarray, width: np.ndarray, cap: np.ndarray,
                base: list[np.ndarray], cfg: RouteConfig) -> list[list[np.ndarray]]:
    """Per net: its negotiated route first, then both L's, Z's with evenly spaced jogs, and a
    maze detour (exact best response) for nets that cross a full edge."""
    n, z = len(width), cfg.z_jogs
    x1, y1, x2, y2 = pins[:, 0, 0], pins[:, 0, 1], pins[:, 1, 0], pins[:, 1, 1]
    frac = np.arange(1, z + 1) / (z + 1)  # (z,)
    kind = np.r_[np.zeros(n), np.ones(n), np.zeros(n * z), np.ones(n * z)].astype(np.int64)
    jog = np.r_[x2, y2, np.rint(x1[:, None] + frac * (x2 - x1)[:, None]).ravel(),
                np.rint(y1[:, None] + frac * (y2 - y1)[:, None]).ravel()].astype(np.int64)
    owner = np.r_[np.arange(n), np.arange(n), np.repeat(np.arange(n), z),
                  np.repeat(np.arange(n), z)]
    routes = grid.segments(kind, jog, pins[owner])
    cands: list[list[np.ndarray]] = [[e] for e in base]
    neg = _Negotiator(grid, pins, width, cap, cfg.overflow_penalty)
    neg.edges, neg.usage = list(base), grid.usage(base, width)
    for i in neg.owners_of(neg.usage >= cap).tolist():
        neg.add(np.array([i]), -1)
        cands[i].append(neg.maze(i, cfg.detour_margin_gcells, exact=True))
        neg.add(np.array([i]), +1)
    for o, e in zip(owner.tolist(), routes, strict=True):
        cands[o].append(e)
    out = []
    for cs in cands:  # drop duplicates, keep the first (the negotiated route stays index 0)
        seen, keep = set(), []
        for e in cs:
            key = np.sort(e).tobytes()
            if key not in seen:
                seen.add(key)
                keep.append(e)
        out.append(keep)
    return out


def select_cpsat(grid: Grid, pins: np.ndarray, width: np.ndarray, cap: np.ndarray,
                 base: list[np.ndarray], cfg: RouteConfig) -> tuple[list[np.ndarray], str]:
    """One candidate per net minimizing sum width x length + penalty x overflow (CP-SAT),
    warm-started with ``base``; returns base if CP-SAT finds nothing better."""
    from ortools.sat.python import cp_model

    cands = _candidates(grid, pins, width, cap, base, cfg)
    net = np.repeat(np.arange(len(cands)), [len(c) for c in cands])  # (C,) net of candidate
    flat = [e for c in cands for e in c]
    m = cp_model.CpModel()
    b = [m.new_bool_var(f"c{j}") for j in range(len(flat))]
    first = np.r_[0, np.cumsum([len(c) for c in cands])[:-1]]
    for i, c in enumerate(cands):
        m.add_exactly_one(b[first[i]:first[i] + len(c)])
        for j in range(len(c)):
            m.add_hint(b[first[i] + j], j == 0)
    lens = np.array([len(e) for e in flat], dtype=np.int64)
    ce_edge = np.concatenate(flat) if lens.sum() else np.zeros(0, dtype=np.int64)
    ce_cand = np.repeat(np.arange(len(flat)), lens)
    pair = np.unique(np.stack([net[ce_cand], ce_edge], axis=1), axis=0)  # (net, edge) possible
    possible = np.bincount(pair[:, 1], width[pair[:, 0]], minlength=grid.n_edges) \
        if len(pair) else np.zeros(grid.n_edges)
    hot = possible > cap
    sel = hot[ce_edge]
    he, hc = ce_edge[sel], ce_cand[sel]
    order = np.argsort(he, kind="stable")
    he, hc = he[order], hc[order]
    base_usage = grid.usage(base, width)
    ovf_terms = []
    starts = np.r_[np.flatnonzero(np.r_[True, he[1:] != he[:-1]]), len(he)] if len(he) else []
    for s0, s1 in zip(starts[:-1], starts[1:], strict=True):
        e = int(he[s0])
        ovf = m.new_int_var(0, int(possible[e] - cap[e]), f"o{e}")
        m.add(ovf >= sum(int(width[net[j]]) * b[j] for j in hc[s0:s1].tolist()) - int(cap[e]))
        m.add_hint(ovf, int(max(0, base_usage[e] - cap[e])))
        ovf_terms.append(ovf)
    m.minimize(sum(int(width[net[j]] * lens[j]) * b[j] for j in range(len(flat)))
               + cfg.overflow_penalty * sum(ovf_terms))
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.random_seed, p.num_workers = cfg.seed, cfg.cpsat_workers
    p.interleave_search = cfg.cpsat_workers > 1
    p.max_deterministic_time = cfg.time_limit_s
    p.max_time_in_seconds = 10 * cfg.time_limit_s + 30  # safety net only
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return base, "HINT"
    chosen = [flat[j] for j in range(len(flat)) if solver.boolean_value(b[j])]
    if _objective(grid, chosen, width, cap, cfg.overflow_penalty) > \
            _objective(grid, base, width, cap, cfg.overflow_penalty):
        return base, "HINT"
    return chosen, solver.status_name(status)
