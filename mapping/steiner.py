"""Which two-pin connections the router lays down for a design's nets.

Hardware-model section 3 makes every producer -> tile bus and every tile -> output-unit bus
its own net. On a chip, though, the row signals a producer sends to the tiles of one row
block are the same wires fanning out (a **broadcast tree**), and the partial sums the tiles
of one column block send to their output unit A(b) can be added on the way, each tile adding
what it receives to its own and forwarding the sum (a **reduction tree**, section 3).
``connections(design, ..., "steiner", reduce=True)`` therefore groups

- the input nets by (producer, matrix, row block) into one multi-pin net rooted at the
  producer, every tree edge carrying the distinct rows used by the tiles at or below it;
- the output nets by output unit A(b) (one matrix's column block) into one multi-pin net
  rooted at A(b), every tree edge carrying the union of the live columns of the tiles at or
  below it (``reduce=False``: output buses stay two-pin);

and builds each tree over its units' placed centres: the rectilinear minimum spanning tree
rooted at the root, or the star when the star needs less wire. Operand buses (output unit ->
output unit) stay two-pin. ``"two-pin"`` keeps section 3's nets as they are (no trees, no
adders). See docs/routing.md.

Each design net's route is the chain of connections from its src to its dst (for a broadcast
net from the producer down to its tile, for a reduced output net from its tile up to A(b)),
so the route of every net of section 3 is still defined (netlists, routes.json).

``signal_bound`` (in ``Connections``) is a lower bound on the wirelength of any routing of the
placement (see ``_group_bound``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from common.errors import ConfigError
from mapping.design import Design

NET_MODELS = ("steiner", "two-pin")
_MST_BUDGET = 20_000_000  # box-distance matrix entries the MST bound may build per call


@dataclass
class Connections:
    """Two-pin connections to route, and which of them make up each net of the design."""

    pins: np.ndarray
    """(m, 2, 2) int: [[x0, y0], [x1, y1]] gcells of each connection's ends (signal flow
    from the first to the second)."""
    widths: np.ndarray
    """(m,) wires of each connection."""
    layers: list[str]
    """Matrix each connection is reported under."""
    net_connections: list[np.ndarray]
    """Per net of ``design.nets``: ids of its connections, in order from its src to its dst."""
    signal_bound: int
    """A lower bound on the wirelength of any routing of these signals with pins anywhere on
    the footprints, trees or not (see _group_bound)."""


def connections(design: Design, pin: np.ndarray, src: np.ndarray, dst: np.ndarray,
                width: np.ndarray, model: str = "steiner",
                box: tuple[np.ndarray, np.ndarray] | None = None, reduce: bool = False,
                tap_limit: int | None = None, lane: int | None = None) -> Connections:
    """Connections for ``design.nets`` and where their ends sit.

    pin: (n_units, 2) centre gcell per unit; src, dst: (n_nets,) unit indices; width: (n_nets,)
    wires; box: (lo, hi) (n_units, 2) inclusive footprint corners where a unit's pins may sit
    (None: only at ``pin``); reduce: output buses as reduction trees (model 'steiner' only).
    A two-pin connection joins the nearest gcells of its two footprints. A tree taps each unit
    at one gcell: the root at the point of its footprint nearest its children's centres, every
    other node at the point of its footprint nearest its parent's tap, so a branch that passes
    a tile on to the next one is routed (and counted) all the way. With ``tap_limit``, a tap
    moves to the next nearest gcell of the footprint while the wires of the trees already
    tapped there plus its own would exceed it (spreads a wide unit's trees over its
    footprint). With ``lane``, a tree carrying more than ``lane`` signals is laid down as
    k = ceil(signals / lane) copies, each carrying a contiguous share of the signals (so
    every edge of a copy carries only signals its subtree uses) and tapping every unit at a
    gcell of its own: parallel lanes, as a router spreads a wide bus's wires. A net's chain
    follows the copy carrying its first signal. Wider two-pin connections are split by the
    caller (mapping.routing)."""
    if model not in NET_MODELS:
        raise ConfigError(f"net model must be one of {NET_MODELS}, got {model!r}")
    reduce = reduce and model == "steiner"
    nets = design.nets
    lo, hi = (pin, pin) if box is None else box
    block = {u.name: u.block for u in design.units}
    groups: dict[tuple, list[int]] = {}
    for i, n in enumerate(nets):
        if n.kind == "input":
            groups.setdefault(("in", n.src, n.matrix, block[n.dst][0]), []).append(i)
        elif n.kind == "output" and reduce:
            groups.setdefault(("out", n.dst), []).append(i)
    masks = {key: (_row_masks(design, key[1], key[2], key[3], np.array(m), block)
                   if key[0] == "in" else _col_masks(design, np.array(m)))
             for key, m in groups.items()}
    members = {key: np.array(m) for key, m in groups.items()}
    roots = {key: (src if key[0] == "in" else dst)[m[0]] for key, m in members.items()}
    leaves = {key: (dst if key[0] == "in" else src)[m] for key, m in members.items()}
    budget = [_MST_BUDGET]
    bound = sum(_group_bound(lo[np.r_[roots[k], leaves[k]]], hi[np.r_[roots[k], leaves[k]]],
                             masks[k], budget) for k in groups)
    solo = np.ones(len(nets), dtype=bool)  # nets routed as two-pin connections
    for m in members.values():
        solo[m] = False
    gap = np.maximum(np.maximum(lo[src], lo[dst]) - np.minimum(hi[src], hi[dst]), 0)
    bound += int((width[solo] * gap[solo].sum(axis=1)).sum())
    near = np.stack(_nearest(lo[src], hi[src], lo[dst], hi[dst], pin[src]), axis=1)  # (n,2,2)
    if model == "two-pin":  # no trees: the bound above is what trees could reach
        return Connections(near, width.copy(), [n.matrix for n in nets],
                           [np.array([i]) for i in range(len(nets))], bound)
    taps = _Taps(lo, hi, tap_limit)
    out_pins, out_w, out_layer = [], [], []
    chains: list[np.ndarray | None] = [None] * len(nets)
    group_of = {int(i): key for key, m in members.items() for i in m.tolist()}
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
        key = group_of[i]
        u = np.r_[roots[key], leaves[key]]  # (k + 1,) units, root first
        parent, order, sub = _tree(pin[u], masks[key], None if key[0] == "in" else int(u[0]))
        v = order[1:]  # edge parent[v] -> v, parents before children
        down = key[0] == "in"  # broadcast: signals flow root -> leaves; reduction: leaves -> root
        copy_of = _lane_of(sub[0], lane)  # (R,) copy carrying each signal
        copies = int(copy_of.max()) + 1
        conn = np.full((copies, len(u)), -1)
        taken: list[np.ndarray] = []
        for c in range(copies):
            wc = sub[:, copy_of == c].sum(axis=1)  # (k + 1,) wires of copy c above each node
            tap = taps.tree(u, parent, order, wc, pin, taken)
            taken.append(tap)
            e = v[wc[v] > 0]
            conn[c, e] = m + np.arange(len(e))
            ends = (tap[parent[e]], tap[e]) if down else (tap[e], tap[parent[e]])
            out_pins.append(np.stack(ends, axis=1).reshape(-1, 2, 2))
            out_w.append(wc[e])
            out_layer += [n.matrix] * len(e)
            m += len(e)
        # a net follows the copy carrying its first signal, which runs all the way to the root
        lead = copy_of[np.argmax(sub[1:], axis=1)]  # (k,)
        for j, net_id in enumerate(members[key].tolist()):
            x, chain = j + 1, []
            while x != 0:
                chain.append(conn[lead[j], x])
                x = parent[x]
            chains[net_id] = np.array(chain[::-1] if down else chain)
    return Connections(np.concatenate(out_pins).astype(np.int64),
                       np.concatenate(out_w).astype(np.int64), out_layer, chains, bound)


def _lane_of(live: np.ndarray, lane: int | None) -> np.ndarray:
    """(R,) copy of every signal: the live signals (live: (R,) bool) in order, cut into
    ceil(live / lane) near-equal contiguous shares (dead signals go with copy 0)."""
    n = int(live.sum())
    k = 1 if lane is None or n <= lane else -(-n // lane)
    rank = np.cumsum(live) - 1  # position among the live signals
    return np.where(live, (rank * k) // max(n, 1), 0)


class _Taps:
    """Tap gcells of tree nodes on their units' footprints, with the wires tapped per gcell."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, limit: int | None):
        self.lo, self.hi, self.limit = lo, hi, limit
        self.load: dict[int, np.ndarray] = {}

    def tree(self, u: np.ndarray, parent: np.ndarray, order: np.ndarray, w: np.ndarray,
             centre: np.ndarray, taken: list[np.ndarray] = ()) -> np.ndarray:
        """(k + 1, 2) tap per node of the tree over units u (w: wires of the edge above each
        node, w[0] unused): the root nearest its children's median centre, each other node
        nearest its parent's tap, never where a copy in ``taken`` tapped the same node
        (unless its footprint has no other gcell)."""
        tap = np.empty((len(u), 2), dtype=np.int64)
        kid = parent >= 0
        wires = np.where(kid, w, 0) + np.bincount(parent[kid], w[kid], minlength=len(u))
        target = np.median(centre[u[parent == 0]], axis=0).round().astype(np.int64)
        busy = np.stack(taken, axis=1) if len(taken) else None  # (k + 1, copies, 2)
        for v in [0] + order[1:].tolist():  # parents before children
            t = target if v == 0 else tap[parent[v]]
            tap[v] = self.place(int(u[v]), t, int(wires[v]), None if busy is None else busy[v])
        return tap

    def place(self, unit: int, target: np.ndarray, wires: int,
              avoid: np.ndarray | None = None) -> np.ndarray:
        lo, hi = self.lo[unit], self.hi[unit]
        near = np.clip(target, lo, hi)
        if (self.limit is None and avoid is None) or (lo == hi).all():
            return near
        shape = tuple((hi - lo + 1).tolist())
        load = self.load.setdefault(unit, np.zeros(shape, dtype=np.int64))
        rel = near - lo
        blocked = avoid is not None and bool((avoid == near).all(axis=1).any())
        if blocked or (self.limit is not None and load[rel[0], rel[1]] + wires > self.limit):
            gx, gy = np.indices(shape)
            dist = np.abs(gx - rel[0]) + np.abs(gy - rel[1])
            full = load + wires > (self.limit if self.limit is not None else np.inf)
            if avoid is not None:
                full[avoid[:, 0] - lo[0], avoid[:, 1] - lo[1]] = True
            # nearest gcell with room; if none, the least loaded (nearest among those)
            score = np.where(full, 10**6 + load * 1000 + dist, dist)
            rel = np.array(np.unravel_index(int(np.argmin(score)), shape))
        load[rel[0], rel[1]] += wires
        return lo + rel


def _nearest(lo_a, hi_a, lo_b, hi_b, ref) -> tuple[np.ndarray, np.ndarray]:
    """Nearest gcells of two boxes (any leading shape, last axis 2): per axis, where the
    ranges overlap both ends take ``ref`` clipped into the overlap; else the facing sides."""
    top, bot = np.maximum(lo_a, lo_b), np.minimum(hi_a, hi_b)
    shared = np.clip(ref, np.minimum(top, bot), bot)
    a = np.where(top <= bot, shared, np.where(hi_a < lo_b, hi_a, lo_a))
    b = np.where(top <= bot, shared, np.where(hi_b < lo_a, hi_b, lo_b))
    return a, b


def _tree(p: np.ndarray, rows: np.ndarray,
          seed: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tree over points p (k + 1, 2) rooted at p[0] joining the signals rows (k, R) of the
    members p[1:] to it: (parent, BFS order, signals at or below each node (k + 1, R)). The
    rectilinear minimum spanning tree, or the star from the root when the star needs less
    wire (width x length) because the members carry different signals. Coincident points are
    joined by zero-length edges. With ``seed``, equally long spanning trees are chosen among
    at random (seeded) rather than by index: the reduction trees of a folded tile grid then
    hop between its strips at rows spread over the strip, not all at its first row."""
    star = np.r_[-1, np.zeros(len(p) - 1, dtype=np.int64)]
    sub = np.r_[rows.any(axis=0, keepdims=True), rows]
    if len(p) <= 2:
        return star, np.arange(len(p)), sub
    d = np.abs(p[:, None, :] - p[None, :, :]).sum(axis=2) + 1.0  # +1: every pair an edge
    if seed is not None:  # ties broken at random: lengths are whole, 1e-3 never outweighs one
        j = np.random.default_rng(seed).random(d.shape) * 1e-3
        d += j + j.T
    np.fill_diagonal(d, 0.0)
    order, parent = breadth_first_order(minimum_spanning_tree(d), 0, directed=False,
                                        return_predecessors=True)
    parent = np.where(parent < 0, -1, parent)
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


def _col_masks(design: Design, idx: np.ndarray) -> np.ndarray:
    """(k, C) bool: the live logical columns of the tile of each member output net (the
    columns of its tile's weights that are not all zero, from ``design.tile_weights``)."""
    nets = design.nets
    widths = np.array([nets[i].width for i in idx])
    tw = design.tile_weights
    if all(nets[i].src in tw for i in idx):
        live = [np.asarray(tw[nets[i].src]).any(axis=0) for i in idx]
        if len({len(x) for x in live}) == 1:
            masks = np.stack(live)
            if np.array_equal(masks.sum(axis=1), widths):
                return masks
        raise ConfigError(f"design.tile_weights disagree with the widths of the output nets "
                          f"into {nets[idx[0]].dst}; rebuild the design with map_model")
    if widths.min() != widths.max():
        warnings.warn(f"design has no tile weights for the tiles of {nets[idx[0]].dst}: "
                      "reducing their partial sums as if the narrower bus carried a subset of "
                      "the wider's columns (build the design with map_model for exact tree "
                      "widths)", stacklevel=4)
    return np.arange(int(widths.max()))[None, :] < widths[:, None]  # nested columns


def _group_bound(lo: np.ndarray, hi: np.ndarray, sig: np.ndarray, budget: list[int]) -> int:
    """Lower bound on the wire any routing needs to join, for every signal (column of sig),
    the footprint of the root and of every member carrying it. lo, hi: (k + 1, 2) inclusive
    footprints, root first; sig: (k, R) bool.

    Per signal with terminal footprints R (the root's) and B_1..B_t (pins anywhere on them):
    the gcell edges W a routing lays down for the signal touch every terminal, and W plus R
    is connected (a tree's branches meet at its taps; two-pin buses from one producer, or
    into one output unit, meet only in the root's footprint, which is why R, and only R,
    counts as free). Every edge of W counts. So |W| is at least

    - the projection bound: per axis, the unit intervals between min(hi) and max(lo) of the
      terminals that R does not span (W's projection plus R's is an interval meeting every
      terminal's, and only W's edges cover what R does not);
    - the spanning-tree bound: ceil(2/3 x the minimum spanning tree of the terminals under the
      box distance (the fewest grid edges between two footprints)). Each connected piece C of
      W touches terminals S_C and, picking one touching gcell per terminal, contains a
      rectilinear Steiner tree of those points, so |C| >= 2/3 RMST(points) (Hwang 1976)
      >= 2/3 MST_box(S_C); the pieces' terminal sets connect all terminals (through R), so
      their spanning trees together span them all: sum |C| >= 2/3 MST_box(all).

    The larger of the two per signal. Signals used by the same members share the figure."""
    pats, counts = np.unique(sig.T, axis=0, return_counts=True)  # (P, k) member patterns
    total = 0
    for pat, c in zip(pats, counts, strict=True):
        if not pat.any():
            continue
        sel = np.r_[True, pat]
        lo_p, hi_p = lo[sel], hi[sel]  # (t, 2) terminal footprints
        proj = 0
        for ax in (0, 1):
            x = np.arange(hi_p[:, ax].min(), lo_p[:, ax].max())  # edges x -> x + 1
            spanned = (lo[0, ax] <= x) & (x + 1 <= hi[0, ax])  # inside the root's footprint
            proj += int((~spanned).sum())
        mst = 0
        t = len(lo_p)
        if t >= 3 and budget[0] >= t * t:
            budget[0] -= t * t
            gap = np.maximum(np.maximum(lo_p[:, None] - hi_p[None], lo_p[None] - hi_p[:, None]),
                             0).sum(axis=2).astype(np.float64)  # (t, t) box distances
            # touching or overlapping boxes (distance 0) are joined at no cost: a tiny weight
            # keeps them an edge of the graph (0 means none), rounded away below
            gap = np.where(gap > 0, gap, 1e-9)
            np.fill_diagonal(gap, 0.0)
            tree = minimum_spanning_tree(gap)
            mst = -(-2 * int(round(tree.sum())) // 3)
        total += int(c) * max(proj, mst)
    return total
