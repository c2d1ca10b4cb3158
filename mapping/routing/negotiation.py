"""Negotiated congestion (PathFinder-style rip-up and reroute), method 'negotiated'.

``negotiate`` gives every connection its cheapest pattern route (grid.best_patterns) under
rising present-congestion and history costs, rips up and reroutes the connections on
overflowed edges (patterns first, then Dijkstra maze detours in a window around the pins),
keeps the best round and ends with an exact best response per detoured or overflowing
connection. ``Negotiator`` holds the state (routes, usage, costs, maze search budget); CP-SAT
selection (cpsat.py) reuses it for its maze-detour candidates.
"""

from __future__ import annotations

import numpy as np

from mapping.routing.config import RouteConfig
from mapping.routing.grid import Grid, best_patterns

_CHUNK = 128  # nets routed against one snapshot of the edge costs (at least; <= 64 chunks)
_PRES_START, _PRES_GROW, _HIST_GAIN = 0.5, 1.6, 0.5
_PATTERN_ROUNDS = 4  # rounds of pattern-only rerouting before maze detours
_MAZE_MAX = 1000  # most nets maze-rerouted per round
_MAZE_BUDGET = 20_000_000  # gcells searched by all maze routes of one call (deterministic cap)
_STALL = 0.005  # stop when 3 rounds improved the best objective by less than this (and not
# the overflow)
_EPS = 0.02  # prefer lightly used edges among equally long routes


class Negotiator:
    """Routes, edge usage, history and present costs of one negotiation, and the maze budget."""

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
            kind, jog = best_patterns(hc, vc, self.pins[ch])
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

    def overflow(self) -> int:
        return int(np.maximum(self.usage - self.cap, 0).sum())

    def total(self) -> float:
        wl = sum(int(w) * len(e) for w, e in zip(self.width.tolist(), self.edges, strict=True))
        return wl + self.penalty * int(np.maximum(self.usage - self.cap, 0).sum())


def negotiate(grid: Grid, pins: np.ndarray, width: np.ndarray, cap: np.ndarray,
              cfg: RouteConfig) -> tuple[list[np.ndarray], int]:
    """PathFinder: route all, then rip up and reroute the nets on overflowed edges with rising
    costs; finally each detoured or overflowing net takes its exact best response."""
    n = len(width)
    neg = Negotiator(grid, pins, width, cap, cfg.overflow_penalty)
    if n == 0:
        return [], 0
    order = np.lexsort((np.random.default_rng(cfg.seed).permutation(n), -width))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    neg.route_patterns(order)
    best, best_edges, rounds = neg.total(), list(neg.edges), 0
    totals, overs = [best], [neg.overflow()]
    for rounds in range(1, cfg.max_iterations + 1):
        over = neg.usage > cap
        # stalled: 3 rounds gained < _STALL of the objective and did not lower the overflow
        # (maze detours get 3 rounds before the overflow may count as stalled)
        stalled = (len(totals) > 3 and min(totals[:-3]) - best < _STALL * min(totals[:-3])
                   and (min(overs[-3:]) >= min(overs[:-3]) and rounds > _PATTERN_ROUNDS + 3
                        or overs[-1] == 0))
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
        overs.append(neg.overflow())
        if totals[-1] < best:
            best, best_edges = totals[-1], list(neg.edges)
    neg.edges = best_edges
    neg.usage = grid.usage(best_edges, width)
    neg.budget = max(neg.budget, _MAZE_BUDGET // 4)
    _best_response(neg, rank, cfg.detour_margin_gcells)
    return neg.edges, rounds


def _best_response(neg: Negotiator, rank: np.ndarray, margin: int) -> None:
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
