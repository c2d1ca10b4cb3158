"""Which two-pin connections the router lays down for a design's nets.

Hardware-model section 3 makes every producer -> tile bus its own net. On a chip, though, the
row signals a producer sends to the tiles of one row block are the same wires fanning out:
routing them as separate buses counts each signal once per tile (dense LeNet's fc1 sends each
of its 800 rows to 16 tiles). ``connections(design, pin, "steiner")`` therefore groups the
input nets by (producer, matrix, row block) into one multi-pin net and builds a tree over its
pins: a rectilinear minimum spanning tree rooted at the producer, every tree edge a two-pin
connection whose width is the number of distinct rows used by the tiles at or below it.
Output buses (tile -> output unit) carry different signals (partial sums) and stay two-pin.
``"two-pin"`` keeps section 3's nets as they are. See docs/routing.md.

Each design net's route is the chain of connections from its producer down to its tile, so
the route of every net of section 3 is still defined (netlists, routes.json).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from common.errors import ConfigError
from mapping.design import Design

NET_MODELS = ("steiner", "two-pin")


@dataclass
class Connections:
    """Two-pin connections to route, and which of them make up each net of the design."""

    pins: np.ndarray
    """(m, 2, 2) int: [[x0, y0], [x1, y1]] gcells of each connection's ends."""
    widths: np.ndarray
    """(m,) wires of each connection."""
    layers: list[str]
    """Matrix each connection is reported under."""
    net_connections: list[np.ndarray]
    """Per net of ``design.nets``: ids of its connections, in order from its src to its dst."""
    signal_bound: int
    """A lower bound on the wirelength of any routing of these signals with pins anywhere on
    the footprints, trees or not (see _hpwl_signals); output buses count their box distance."""


def connections(design: Design, pin: np.ndarray, src: np.ndarray, dst: np.ndarray,
                width: np.ndarray, model: str = "steiner",
                box: tuple[np.ndarray, np.ndarray] | None = None) -> Connections:
    """Connections for ``design.nets`` and where their ends sit.

    pin: (n_units, 2) centre gcell per unit; src, dst: (n_nets,) unit indices; width: (n_nets,)
    wires; box: (lo, hi) (n_units, 2) inclusive footprint corners where a unit's pins may sit
    (None: only at ``pin``). A two-pin connection joins the nearest gcells of its two
    footprints. A tree taps each unit at one gcell: the root at the point of its footprint
    nearest its children's centres, every other node at the point of its footprint nearest its
    parent's tap, so a branch that passes a tile on to the next one is routed (and counted)
    all the way."""
    if model not in NET_MODELS:
        raise ConfigError(f"net model must be one of {NET_MODELS}, got {model!r}")
    nets = design.nets
    lo, hi = (pin, pin) if box is None else box
    block = {u.name: u.block for u in design.units}
    groups: dict[tuple, list[int]] = {}
    for i, n in enumerate(nets):
        if n.kind == "input":
            groups.setdefault((n.src, n.matrix, block[n.dst][0]), []).append(i)
    rows_of = {key: _row_masks(design, key[0], key[1], key[2], np.array(members), block)
               for key, members in groups.items()}
    bound = sum(_hpwl_signals(lo[np.r_[src[m[0]], dst[m]]], hi[np.r_[src[m[0]], dst[m]]],
                              rows_of[key]) for key, m in groups.items())
    solo = np.array([n.kind != "input" for n in nets], dtype=bool)  # output buses
    gap = np.maximum(np.maximum(lo[src], lo[dst]) - np.minimum(hi[src], hi[dst]), 0)
    bound += int((width[solo] * gap[solo].sum(axis=1)).sum())
    near = np.stack(_nearest(lo[src], hi[src], lo[dst], hi[dst], pin[src]), axis=1)  # (n,2,2)
    if model == "two-pin":  # no trees: the bound above is what trees could reach
        return Connections(near, width.copy(), [n.matrix for n in nets],
                           [np.array([i]) for i in range(len(nets))], bound)
    out_pins, out_w, out_layer = [], [], []
    chains: list[np.ndarray | None] = [None] * len(nets)
    m = 0
    for i, n in enumerate(nets):  # connections in the order of the nets they first serve
        if chains[i] is not None:
            continue
        if solo[i]:
            out_pins.append(near[i][None])
            out_w.append(width[i:i + 1])
            out_layer.append(n.matrix)
            chains[i] = np.array([m])
            m += 1
            continue
        key = (n.src, n.matrix, block[n.dst][0])
        members = groups[key]
        u = np.r_[src[i], dst[np.array(members)]]  # (k + 1,) units, root first
        parent, order, sub = _tree(pin[u], rows_of[key])
        tap = np.empty((len(u), 2), dtype=np.int64)
        kids = pin[u[parent == 0]]  # (c, 2) centres of the root's children
        tap[0] = np.clip(np.median(kids, axis=0).round().astype(np.int64), lo[u[0]], hi[u[0]])
        for v in order[1:]:  # parents before children
            tap[v] = np.clip(tap[parent[v]], lo[u[v]], hi[u[v]])
        conn = np.full(len(u), -1)
        conn[order[1:]] = m + np.arange(len(u) - 1)  # connection parent[v] -> v
        out_pins.append(np.stack([tap[parent[order[1:]]], tap[order[1:]]], axis=1))
        out_w.append(sub[order[1:]].sum(axis=1))
        out_layer += [n.matrix] * (len(u) - 1)
        m += len(u) - 1
        for j, net_id in enumerate(members):
            v, chain = j + 1, []
            while v != 0:
                chain.append(conn[v])
                v = parent[v]
            chains[net_id] = np.array(chain[::-1])
    return Connections(np.concatenate(out_pins).astype(np.int64),
                       np.concatenate(out_w).astype(np.int64), out_layer, chains, bound)


def _nearest(lo_a, hi_a, lo_b, hi_b, ref) -> tuple[np.ndarray, np.ndarray]:
    """Nearest gcells of two boxes (any leading shape, last axis 2): per axis, where the
    ranges overlap both ends take ``ref`` clipped into the overlap; else the facing sides."""
    top, bot = np.maximum(lo_a, lo_b), np.minimum(hi_a, hi_b)
    shared = np.clip(ref, np.minimum(top, bot), bot)
    a = np.where(top <= bot, shared, np.where(hi_a < lo_b, hi_a, lo_a))
    b = np.where(top <= bot, shared, np.where(hi_b < lo_a, hi_b, lo_b))
    return a, b


def _tree(p: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tree over points p (k + 1, 2) rooted at p[0] carrying rows (k, R) to p[1:]: (parent,
    BFS order, rows at or below each node (k + 1, R)). The rectilinear minimum spanning tree,
    or the star from the root when the star needs less wire (width x length) because the
    members use different rows. Coincident points are joined by zero-length edges."""
    star = np.r_[-1, np.zeros(len(p) - 1, dtype=np.int64)]
    sub = np.r_[rows.any(axis=0, keepdims=True), rows]
    if len(p) <= 2:
        return star, np.arange(len(p)), sub
    d = np.abs(p[:, None, :] - p[None, :, :]).sum(axis=2) + 1.0  # +1: every pair an edge
    np.fill_diagonal(d, 0.0)
    order, parent = breadth_first_order(minimum_spanning_tree(d), 0, directed=False,
                                        return_predecessors=True)
    tsub = np.zeros_like(sub)
    tsub[1:] = rows
    for v in order[:0:-1]:  # children before parents, root last
        tsub[parent[v]] |= tsub[v]
    v = order[1:]
    tree_cost = (tsub[v].sum(axis=1) * np.abs(p[v] - p[parent[v]]).sum(axis=1)).sum()
    star_cost = (rows.sum(axis=1) * np.abs(p[1:] - p[0]).sum(axis=1)).sum()
    if star_cost < tree_cost:
        return star, np.arange(len(p)), sub
    return parent, order, tsub


def _row_masks(design: Design, src: str, mat: str, a: int, idx: np.ndarray,
               block: dict) -> np.ndarray:
    """(k, R) bool: the rows of row block a driven by ``src`` that each member net carries."""
    nets = design.nets
    widths = np.array([nets[i].width for i in idx])
    rs = design.row_signals.get(mat)
    if rs is not None and src in rs.producers:
        r = design.crossbar_rows
        ii = np.arange(a * r, min((a + 1) * r, len(rs.source)))
        ii = ii[rs.source[ii] == rs.producers.index(src)]
        cols = np.array([block[nets[i].dst][1] for i in idx])
        masks = rs.live[ii][:, cols].T  # (k, R)
        if np.array_equal(masks.sum(axis=1), widths):
            return masks
        raise ConfigError(f"design.row_signals[{mat!r}] disagrees with the widths of the nets "
                         f"from {src}; rebuild the design with map_model")
    if widths.min() != widths.max():
        warnings.warn(f"design has no row_signals for {mat!r}: routing the buses from {src} as "
                      "if the narrower carried a subset of the wider's rows (build the design "
                      "with map_model for exact tree widths)", stacklevel=4)
    return np.arange(int(widths.max()))[None, :] < widths[:, None]  # nested rows


def _hpwl_signals(lo: np.ndarray, hi: np.ndarray, rows: np.ndarray) -> int:
    """Sum over signals (columns of rows) of the wire any tree needs to join the footprint of
    the root and of every member using the signal, when the footprints of all the group's
    units are free to cross (a signal's branch may pass a tile that does not use it): per
    axis, the grid edges between the smallest hi and the largest lo of the signal's units
    that no footprint of the group spans. lo, hi: (k + 1, 2) footprints, root first;
    rows: (k, R) bool."""
    pats, counts = np.unique(rows.T, axis=0, return_counts=True)  # (P, k) member patterns
    total = 0
    for pat, c in zip(pats, counts, strict=True):
        if not pat.any():
            continue
        sel = np.r_[True, pat]
        lo_p, hi_p = lo[sel], hi[sel]  # (k', 2)
        for ax in (0, 1):
            x = np.arange(hi_p[:, ax].min(), lo_p[:, ax].max())  # edges x -> x + 1
            spanned = ((lo[:, ax, None] <= x) & (x + 1 <= hi[:, ax, None])).any(axis=0)
            total += int(c) * int((~spanned).sum())
    return total
