"""CP-SAT route selection, method 'cpsat' (small/medium designs).

``select_cpsat`` offers every connection a few candidate routes (its negotiated route, both
L's, ``z_jogs`` Z's per orientation, a maze detour if it crosses a full edge) and lets OR-Tools
CP-SAT choose one per connection minimizing width x length + overflow_penalty x overflow,
warm-started with the negotiated routes; the negotiated routes are kept unless CP-SAT beats
them.

``repair_cpsat`` (any size, after negotiation left overflow): the same selection for the
connections crossing overflowed edges only (at most cpsat_max_nets, those on the most
overflowed edges first), every other connection fixed, its tracks taken off the capacity:
rip-up and reroute of the congested windows by CP-SAT.
"""

from __future__ import annotations

import numpy as np

from mapping.placement import cpsat_solver
from mapping.routing.config import RouteConfig
from mapping.routing.grid import Grid
from mapping.routing.negotiation import Negotiator


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
    neg = Negotiator(grid, pins, width, cap, cfg.overflow_penalty)
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
    solver = cpsat_solver(cfg)
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return base, "HINT"
    chosen = [flat[j] for j in range(len(flat)) if solver.boolean_value(b[j])]
    if _objective(grid, chosen, width, cap, cfg.overflow_penalty) > \
            _objective(grid, base, width, cap, cfg.overflow_penalty):
        return base, "HINT"
    return chosen, solver.status_name(status)


def repair_cpsat(grid: Grid, pins: np.ndarray, width: np.ndarray, cap: np.ndarray,
                 base: list[np.ndarray], cfg: RouteConfig) -> tuple[list[np.ndarray], str]:
    """Re-select, by CP-SAT, the routes of the connections crossing overflowed edges, the
    others fixed (see the module docstring). Returns all routes and a status."""
    usage = grid.usage(base, width)
    over = np.maximum(usage - cap, 0)
    if not over.any():
        return base, "no overflow"
    lens = np.array([len(e) for e in base], dtype=np.int64)
    owner = np.repeat(np.arange(len(base)), lens)
    flat = np.concatenate(base)
    hit = over[flat] > 0
    worst = np.zeros(len(base))
    np.maximum.at(worst, owner[hit], over[flat[hit]])
    victims = np.flatnonzero(worst > 0)
    victims = victims[np.argsort(-worst[victims], kind="stable")][:max(1, cfg.cpsat_max_nets)]
    sub = [base[i] for i in victims]
    rest = cap - (usage - grid.usage(sub, width[victims]))  # tracks left for the victims
    chosen, status = select_cpsat(grid, pins[victims], width[victims], rest, sub, cfg)
    out = list(base)
    for i, e in zip(victims.tolist(), chosen, strict=True):
        out[i] = e
    after = int(np.maximum(grid.usage(out, width) - cap, 0).sum())
    return out, f"{status} on {len(victims)} connections, overflow {int(over.sum())} -> {after}"
