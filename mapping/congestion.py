"""Routing reports: wirelength against its lower bound, congestion, per-layer break-down, plots.

    >>> rep = report(routing, dense=dense_routing)     # dense: the dense baseline, or None
    >>> rep.to_dict()["routing_area_ratio"], rep.max_congestion, rep.layers["fc1"]
    >>> plot_floorplan(design, placement, routing, "floorplan.png")
    >>> plot_congestion(routing, "congestion.png")

Figures follow hardware-model.md section 5: wirelength = sum of width x routed gcell edges,
routing_area_um2 = wirelength x wire_pitch_um x gcell_um, congestion = demand / capacity per
gcell edge, overflow = tracks above capacity summed over edges.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from common.errors import ConfigError
from common.io import save_figure
from mapping.design import Design
from mapping.placement import Placement
from mapping.routing import Routing


def lower_bound(routing: Routing) -> int:
    """Sum over connections of width x Manhattan distance of their placed pin gcells: the
    section 5 bound for two-pin nets, the length of the Steiner trees laid down for multi-pin
    nets (Routing.signal_bound is the bound valid for any tree)."""
    return routing.lower_bound


def routing_area_ratio(compressed: Routing, dense: Routing) -> float:
    """routing_area(compressed) / routing_area(dense baseline); both must share the router
    settings (gcell size, wire pitch, gcells per site, capacity)."""
    for name, r in (("compressed", compressed), ("dense", dense)):
        if not isinstance(r, Routing):
            raise TypeError(f"{name} must be a Routing, got {type(r).__name__}")
    keys = ("gcell_um", "wire_pitch_um", "gcells_per_site", "capacity", "net_model",
            "pin_access", "reduction_trees")
    diff = [k for k in keys if getattr(compressed.config, k) != getattr(dense.config, k)]
    if diff:
        raise ConfigError(f"routing_area_ratio compares routings made with different {diff}; "
                         "route the dense baseline with the same RouteConfig")
    if dense.routing_area_um2 == 0:
        raise ConfigError("the dense baseline has zero routing area; nothing to compare with")
    return compressed.routing_area_um2 / dense.routing_area_um2


def overflow_lower_bound(routing: Routing) -> int:
    """Overflow (tracks) no router can avoid for this placement. For a pin gcell p and r >= 0,
    every net with an end at p and the other outside the square of radius r around p crosses
    the square's boundary; the boundaries for r = 0, 1, ... are disjoint edge sets, so
    sum_r max(0, demand_r - capacity_r) is a bound for p. Pins whose squares (grown by one)
    do not overlap add up; they are taken greedily, largest bound first."""
    gx, gy = routing.grid_gcells
    cap = int(routing.capacity.max()) if len(routing.capacity) else 0
    ends = np.r_[routing.pins[:, 0], routing.pins[:, 1]]  # (2n, 2) pin, other end below
    other = np.r_[routing.pins[:, 1], routing.pins[:, 0]]
    w = np.r_[routing.widths, routing.widths]
    key = ends[:, 0] * gy + ends[:, 1]
    need = np.bincount(key, w, minlength=gx * gy)
    order = np.argsort(key, kind="stable")
    start = np.searchsorted(key[order], np.arange(gx * gy + 1))
    cands = []
    for p in np.flatnonzero(need > cap).tolist():  # a pin needing <= cap fits any ring
        px, py = divmod(p, gy)
        m = order[start[p]:start[p + 1]]
        d = np.abs(other[m] - (px, py)).max(axis=1)  # Chebyshev distance of the other ends
        r = np.arange(int(d.max()))
        demand = np.bincount(d, w[m], minlength=len(r) + 1)[::-1].cumsum()[::-1][1:]  # d > r
        x0, x1 = np.maximum(px - r, 0), np.minimum(px + r, gx - 1)
        y0, y1 = np.maximum(py - r, 0), np.minimum(py + r, gy - 1)
        h, wd = y1 - y0 + 1, x1 - x0 + 1
        edges = (x0 > 0) * h + (x1 < gx - 1) * h + (y0 > 0) * wd + (y1 < gy - 1) * wd
        over = np.maximum(demand - cap * edges, 0)
        if over.sum() > 0:
            reach = int(np.flatnonzero(over).max()) + 1  # radius of the box it needs
            cands.append((int(over.sum()), px, py, reach))
    total, taken = 0, []
    for b, px, py, reach in sorted(cands, reverse=True):
        if all(abs(px - qx) > reach + rq + 1 or abs(py - qy) > reach + rq + 1
               for qx, qy, rq in taken):
            total += b
            taken.append((px, py, reach))
    return total


@dataclass
class RoutingReport:
    """The figures of one placed and routed design (see to_dict for routing.json)."""

    wirelength: int
    """Sum over connections of width x routed length (gcell edges)."""
    lower_bound: int
    """Sum over connections of width x Manhattan distance of its pin gcells (for multi-pin
    nets: the rectilinear length of the trees routed, so wirelength / lower_bound measures
    the router's detours)."""
    signal_bound: int
    """Sum over signals of the half-perimeter of the pins each must reach: a lower bound on
    the wirelength of any routing of this placement (equal to lower_bound for two-pin nets)."""
    routing_area_um2: float
    routing_area_ratio: float | None
    """routing_area / routing_area of the dense baseline (None without a baseline)."""
    max_congestion: float
    mean_congestion: float
    """Mean over all gcell edges of demand / capacity."""
    overflow: int
    """Tracks above capacity, summed over gcell edges."""
    overflow_lower_bound: int
    """Overflow no router can avoid with this placement and these connection pins (pin-cut
    bound)."""
    overflowed_edges: int
    nets: int
    """Nets of the design (hardware-model section 3)."""
    connections: int
    """Two-pin connections routed (the nets themselves, or the edges of multi-pin trees)."""
    wires: int
    """Sum of the widths of the design's nets (section 3's wires)."""
    connection_wires: int
    """Sum of the widths of the connections routed."""
    net_model: str
    grid_gcells: tuple[int, int]
    tracks_per_gcell_edge: int
    method: str
    status: str
    seconds: float
    layers: dict[str, dict] = field(default_factory=dict)
    """Per matrix (net.matrix): connections, wires, wirelength, lower_bound, routing_area_um2,
    overflow (each edge's overflow shared by the layers in proportion to their demand on it),
    max_congestion (over the edges its routes use), overflowed_connections."""
    dense: dict | None = None
    """Headline figures of the dense baseline's routing, if given."""

    @property
    def gap(self) -> float:
        """wirelength / lower_bound - 1 (0 for a perfect router)."""
        return self.wirelength / self.lower_bound - 1 if self.lower_bound else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid_gcells"] = list(self.grid_gcells)
        d["gap"] = self.gap
        head = ["wirelength", "lower_bound", "routing_area_um2", "routing_area_ratio",
                "max_congestion", "overflow", "layers"]
        return {k: d[k] for k in head} | {k: v for k, v in d.items() if k not in head}


def report(routing: Routing, dense: Routing | None = None) -> RoutingReport:
    """Figures of ``routing``; with ``dense`` (the dense baseline routed with the same
    settings) also routing_area_ratio and the baseline's headline figures."""
    if not isinstance(routing, Routing):
        raise TypeError(f"routing must be a Routing, got {type(routing).__name__}")
    cong, over = routing.congestion, np.maximum(routing.usage - routing.capacity, 0)
    n = len(routing.widths)
    lens = routing.lengths
    manh = np.abs(routing.pins[:, 0] - routing.pins[:, 1]).sum(axis=1)
    flat = np.concatenate(routing.edges) if lens.sum() else np.zeros(0, dtype=np.int64)
    owner = np.repeat(np.arange(n), lens)
    hot = np.zeros(n, dtype=bool)
    hot[owner[over[flat] > 0]] = True  # connections crossing an overflowed edge
    index = {name: j for j, name in enumerate(dict.fromkeys(routing.layers))}
    lid = np.array([index[m] for m in routing.layers], dtype=np.int64)
    share = np.divide(over, routing.usage, out=np.zeros(len(over)), where=routing.usage > 0)
    layers = {}
    for name, j in index.items():
        m = lid == j
        sel = m[owner]
        use = np.bincount(flat[sel], routing.widths[owner[sel]], minlength=len(over))
        wl = int((routing.widths[m] * lens[m]).sum())
        layers[name] = {
            "connections": int(m.sum()), "wires": int(routing.widths[m].sum()), "wirelength": wl,
            "lower_bound": int((routing.widths[m] * manh[m]).sum()),
            "routing_area_um2": wl * routing.config.wire_pitch_um * routing.config.gcell_um,
            "overflow": float((use * share).sum()),
            "max_congestion": float(cong[use > 0].max()) if (use > 0).any() else 0.0,
            "overflowed_connections": int(hot[m].sum())}
    base = None
    if dense is not None:
        base = {"wirelength": dense.wirelength, "lower_bound": dense.lower_bound,
                "routing_area_um2": dense.routing_area_um2, "overflow": dense.overflow,
                "max_congestion": dense.max_congestion, "nets": dense.n_nets,
                "connections": len(dense.widths)}
    bound = routing.lower_bound if routing.signal_bound is None else routing.signal_bound
    return RoutingReport(
        routing.wirelength, routing.lower_bound, bound, routing.routing_area_um2,
        routing_area_ratio(routing, dense) if dense is not None else None,
        routing.max_congestion, routing.mean_congestion, routing.overflow,
        overflow_lower_bound(routing), int((over > 0).sum()), routing.n_nets,
        len(routing.widths),
        int(routing.widths.sum()) if routing.net_wires is None else routing.net_wires,
        int(routing.widths.sum()), routing.config.net_model,
        tuple(routing.grid_gcells), routing.config.capacity,
        routing.method, routing.status, round(routing.seconds, 3), layers, base)


# ------------------------------------------------------------------------- routes and plots

def route_corners(routing: Routing, i: int, nodes: np.ndarray | None = None) -> np.ndarray:
    """(k, 2) gcells where connection i's route (or the path ``nodes``) starts, turns and
    ends."""
    nodes = routing.path(i) if nodes is None else nodes
    if len(nodes) < 3:
        return nodes
    d = np.diff(nodes, axis=0)
    return nodes[np.r_[True, (d[1:] != d[:-1]).any(axis=1), True]]


def routes_to_dict(design: Design, routing: Routing) -> dict:
    """routes.json: every net with the corner gcells of its route (from its producer, through
    the tree's branch points for a multi-pin net, to its unit) and the connections it uses;
    every connection with its width, length and corners."""
    lens = routing.lengths
    if routing.n_nets != len(design.nets):
        raise ConfigError(f"routing has {routing.n_nets} nets but the design has "
                         f"{len(design.nets)}; route this design first")
    chains = routing.net_connections or [np.array([i]) for i in range(len(design.nets))]
    return {"grid_gcells": list(routing.grid_gcells),
            "gcells_per_site": routing.config.gcells_per_site,
            "tracks_per_gcell_edge": routing.config.capacity,
            "net_model": routing.config.net_model,
            "nets": [{"src": n.src, "dst": n.dst, "width": n.width, "layer": n.matrix,
                      "length": int(lens[chains[i]].sum()),
                      "corners": route_corners(routing, i, routing.net_path(i)).tolist(),
                      "connections": chains[i].tolist()}
                     for i, n in enumerate(design.nets)],
            "connections": [{"width": int(routing.widths[j]), "layer": routing.layers[j],
                             "length": int(lens[j]),
                             "corners": route_corners(routing, j).tolist()}
                            for j in range(len(routing.widths))]}


def _save(fig, path: str | os.PathLike) -> Path:
    return save_figure(fig, path, bbox_inches="tight")


def plot_floorplan(design: Design, placement: Placement, routing: Routing | None,
                   path: str | os.PathLike) -> Path:
    """Sites with crossbars coloured by layer, output/input units as small squares in their
    slot of a shared site, and (if given) every route, coloured by layer, width ~ sqrt(wires)."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch, Rectangle

    w, h = placement.grid_sites
    mats = list(dict.fromkeys(u.matrix for u in design.units if u.matrix is not None))
    cmap = colormaps["tab20"]
    color = {m: cmap(i % 20) for i, m in enumerate(mats)}
    k = placement.output_units_per_site
    q = int(np.ceil(np.sqrt(k)))
    fig = Figure(figsize=(min(16, 4 + w / 6), min(16, 4 + h / 6)))
    ax = fig.add_subplot()
    tiles, small, tile_c, small_c = [], [], [], []
    for u in design.units:
        x, y = placement.positions[u.name]
        if u.kind == "tile":
            tiles.append(Rectangle((x + 0.05, y + 0.05), 0.9, 0.9))
            tile_c.append(color[u.matrix])
        else:
            j = placement.slots[u.name]
            small.append(Rectangle((x + (j % q + 0.1) / q, y + ((j // q) % q + 0.1) / q),
                                   0.8 / q, 0.8 / q))
            small_c.append("black" if u.kind == "output" else "red")
    ax.add_collection(PatchCollection(tiles, facecolors=tile_c, edgecolors="none", alpha=0.45))
    ax.add_collection(PatchCollection(small, facecolors=small_c, edgecolors="white",
                                      linewidths=0.3))
    if routing is not None and len(routing.widths):
        g = routing.config.gcells_per_site
        lines = [(route_corners(routing, i) + 0.5) / g for i in range(len(routing.widths))]
        lw = 0.2 + 1.2 * np.sqrt(routing.widths / routing.widths.max())
        ax.add_collection(LineCollection(lines, colors=[color[m] for m in routing.layers],
                                         linewidths=lw, alpha=0.8))
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_aspect("equal")
    ax.set_xlabel("site x")
    ax.set_ylabel("site y")
    ax.set_title(f"{len(design.units)} units on {w} x {h} sites"
                 + (f", wirelength {routing.wirelength}" if routing is not None else ""))
    handles = [Patch(color=color[m], alpha=0.45, label=m) for m in mats[:20]]  # as the tiles
    handles += [Patch(color="black", label="output unit"), Patch(color="red", label="input")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return _save(fig, path)


def gcell_congestion(routing: Routing) -> np.ndarray:
    """(gx, gy) demand / capacity of the worst of each gcell's edges."""
    gx, gy = routing.grid_gcells
    nh, c = (gx - 1) * gy, routing.congestion  # horizontal edges first, then vertical
    hc, vc = c[:nh].reshape(gx - 1, gy), c[nh:].reshape(gx, gy - 1)
    m = np.zeros((gx, gy))
    # one statement each: a tuple assignment would compute both sides from the old m
    m[:-1] = np.maximum(m[:-1], hc)  # left gcell of each horizontal edge
    m[1:] = np.maximum(m[1:], hc)  # right gcell
    m[:, :-1] = np.maximum(m[:, :-1], vc)  # lower gcell of each vertical edge
    m[:, 1:] = np.maximum(m[:, 1:], vc)  # upper gcell
    return m


def plot_congestion(routing: Routing, path: str | os.PathLike) -> Path:
    """Heat map of demand / capacity: each gcell shows the worst of its edges (green < 1 <
    red; above 1 is overflow)."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    gx, gy = routing.grid_gcells
    g, m = routing.config.gcells_per_site, gcell_congestion(routing)
    fig = Figure(figsize=(min(14, 3 + gx / g / 6), min(12, 2.5 + gy / g / 6)))
    ax = fig.add_subplot()
    top = max(routing.max_congestion, 1.5)
    im = ax.imshow(m.T, origin="lower", extent=(0, gx / g, 0, gy / g), cmap="RdYlGn_r",
                   norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=top), interpolation="nearest")
    fig.colorbar(im, ax=ax, label="demand / capacity (worst edge of the gcell)", shrink=0.8)
    ax.set_xlabel("site x")
    ax.set_ylabel("site y")
    ax.set_title(f"congestion: max {routing.max_congestion:.2f}, mean "
                 f"{routing.mean_congestion:.3f}\noverflow {routing.overflow} tracks "
                 f"({routing.config.capacity} tracks per gcell edge)", fontsize=10)
    return _save(fig, path)
