"""The gcell grid and pattern routes on it.

- ``Grid``: edge ids of a gx x gy gcell grid (horizontal edges first, then vertical), the
  gcells along a route and back, per-edge usage of a set of routes, and the edge lists of
  H-V-H / V-H-V pattern routes (``Grid.segments``; L's and Z's are special cases).
- ``footprints`` / ``pin_gcells``: where a placed unit sits on the grid (its site, or its
  sub-block of a shared site) and its pin gcell.
- ``best_patterns``: the cheapest pattern route per net under given per-edge costs, in O(1)
  per shape from prefix sums (used by negotiated congestion).

Every gcell edge has the same capacity (RouteConfig.capacity tracks); the router keeps it as a
per-edge array so that usage / capacity is one division.
"""

from __future__ import annotations

import math

import numpy as np

from mapping.placement import Placement, ranges


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
    spans = getattr(placement, "spans", None)
    if spans:  # a unit spanning s sites upwards owns all of them
        j = np.array([i for i, n in enumerate(arr.names) if n in spans], dtype=np.int64)
        s = np.array([spans[arr.names[i]] for i in j], dtype=np.int64)
        lo[j] = site[j] * g
        hi[j] = site[j] * g + np.stack([np.full(len(j), g), s * g], axis=1) - 1
        centre[j] = (lo[j] + hi[j]) // 2
    return centre, np.minimum(lo, centre), np.maximum(hi, centre)


def best_patterns(hc: np.ndarray, vc: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
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
