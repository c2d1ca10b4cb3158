"""Global routing of a placed Design on a grid of gcells (hardware-model.md section 5).

    >>> rt = route(design, placement, RouteConfig())
    >>> rt.wirelength, rt.lower_bound, rt.overflow, rt.max_congestion, rt.routing_area_um2

Each site is ``gcells_per_site`` x ``gcells_per_site`` gcells; a unit's footprint is its site
(a tile) or its sub-block of a shared site (small units). A connection joins the nearest gcells
of its two units' footprints (pin_access 'footprint') or their centres ('center'); nets are
two-pin buses or multi-pin trees of connections (net_model, mapping.steiner). Every gcell edge holds
``tracks_per_gcell_edge`` tracks and a net of width w takes w tracks on every edge it crosses.

- negotiated (any size): PathFinder-style negotiated congestion. Each net takes its cheapest
  pattern route (every H-V-H and V-H-V shape: both L's and all Z's, costed in O(1) per shape by
  prefix sums over numpy edge-cost arrays, a chunk of nets at a time); nets crossing an
  overflowed edge are ripped up and rerouted with rising present-congestion and history
  costs, after a few rounds by a Dijkstra maze search in a window around the net (detours).
- cpsat (small/medium designs): candidate routes per net (two L's, Z's, the negotiated route
  and a maze detour), one chosen per net by OR-Tools CP-SAT minimizing
  width x length + overflow_penalty x overflow, warm-started with the negotiated routes.
  Bigger designs that negotiation leaves with overflow get the same selection for the
  connections crossing overflowed edges, the others fixed (repair_cpsat).

Files: config.py (RouteConfig, Routing), grid.py (Grid, footprints, pattern routes),
negotiation.py (negotiate), cpsat.py (select_cpsat); ``route`` below drives them;
routable.py (``route_routable``: place and route, growing whitespace until zero overflow,
the routable die area; trees on arrays for big designs).
"""

from __future__ import annotations

import time

import numpy as np

from common.errors import ConfigError
from mapping.design import Design
from mapping.placement import Placement, net_arrays
from mapping.routing.config import MAX_GCELLS_PER_SITE, METHODS, PIN_ACCESS, RouteConfig, Routing
from mapping.routing.cpsat import repair_cpsat, select_cpsat
from mapping.routing.grid import Grid, footprints, pin_gcells
from mapping.routing.negotiation import negotiate
from mapping.routing.routable import Routable, route_routable, wants_trees
from mapping.steiner import Connections, connections

__all__ = [
    "MAX_GCELLS_PER_SITE",
    "METHODS",
    "PIN_ACCESS",
    "Grid",
    "RouteConfig",
    "Routable",
    "Routing",
    "footprints",
    "negotiate",
    "pin_gcells",
    "route",
    "route_routable",
    "select_cpsat",
    "wants_trees",
]


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
    con = connections(design, pin, arr.src, arr.dst, arr.width, cfg.net_model, box,
                      cfg.reduction_trees, cfg.tap_limit, cfg.lane_limit)
    con, chains = _lanes(con, cfg.lane_limit, cfg.net_model == "two-pin")
    long = np.flatnonzero((con.pins[:, 0] != con.pins[:, 1]).any(axis=1))  # length > 0
    pins, width = con.pins[long], con.widths[long]
    cap = np.full(grid.n_edges, cfg.capacity, dtype=np.int64)
    routed, rounds = negotiate(grid, pins, width, cap, cfg)
    method, status = "negotiated", f"negotiated ({rounds} rounds)"
    if cfg.method == "cpsat" or (cfg.method == "auto" and len(width) <= cfg.cpsat_max_nets):
        routed, status = select_cpsat(grid, pins, width, cap, routed, cfg)
        method = "cpsat"
    elif (grid.usage(routed, width) > cap).any():  # congested windows left: CP-SAT repair
        routed, how = repair_cpsat(grid, pins, width, cap, routed, cfg)
        status += f", CP-SAT repair {how}"
    edges = [np.zeros(0, dtype=np.int64)] * len(con.widths)
    for j, e in zip(long.tolist(), routed, strict=True):
        edges[j] = e
    usage = grid.usage(edges, con.widths)
    return Routing((grid.gx, grid.gy), con.pins, con.widths, con.layers, edges, usage, cap, cfg,
                   method, status, time.perf_counter() - t0,
                   chains, con.signal_bound, int(arr.width.sum()))


def _lanes(con: Connections, lane: int, two_pin: bool) -> tuple[Connections, list | None]:
    """Split every connection wider than ``lane`` into near-equal lanes with its pins; a
    net's chain names the first lane of each of its connections (the lanes of one
    connection share their pins). Returns the lanes and the chains (None: lane i = net i)."""
    k = -(-con.widths // lane)  # lanes per connection
    if (k == 1).all():
        return con, None if two_pin else con.net_connections
    first = np.r_[0, np.cumsum(k)[:-1]]
    owner = np.repeat(np.arange(len(k)), k)
    j = np.arange(int(k.sum())) - first[owner]  # lane index within its connection
    w = con.widths[owner] // k[owner] + (j < con.widths[owner] % k[owner])
    chains = [first[c] for c in con.net_connections]
    return Connections(con.pins[owner], w.astype(np.int64), [con.layers[o] for o in owner],
                       chains, con.signal_bound), chains
