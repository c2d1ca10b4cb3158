"""Placement: every unit of a Design on a 2-D grid of sites (hardware-model.md section 5).

    >>> pl = place(design, PlaceConfig())          # fast for big designs, CP-SAT for small ones
    >>> pl.positions["fc1/T0_3"], pl.grid_sites, pl.cost

A site holds one crossbar tile with its periphery, or up to ``output_units_per_site`` small
units (output units A(b) and the input unit IN). Cost = sum over nets of width x Manhattan
distance between the sites of its two units, in site pitches.

- fast:  matrices in dataflow order fill a serpentine of sites (layers left to right); inside a
         matrix, the tiles of k output units are consecutive along a Hilbert curve with their
         shared output site in the middle; then greedy median swaps (tiles, vectorized) and
         output-unit / output-site moves until no move gains.
- cpsat: an exact site-assignment model in OR-Tools CP-SAT, warm-started from the fast result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from common.errors import ConfigError, check_ranges
from mapping.design import Design

METHODS = ("auto", "cpsat", "fast")
LAYOUTS = ("blobs", "arrays")


@dataclass(frozen=True)
class PlaceConfig:
    """How ``place`` works. All fields are validated."""

    method: str = "auto"
    """'fast' (any size), 'cpsat' (OR-Tools CP-SAT, small designs) or 'auto' (cpsat when the
    design has at most ``cpsat_max_units`` units, else fast)."""
    layout: str = "blobs"
    """How the fast method lays the matrices out. 'blobs': the tiles of each output unit in
    a compact blob around it (minimizes section 5's two-pin buses); 'arrays': every matrix as
    its tile grid, so that broadcast and reduction trees (RouteConfig net_model 'steiner' with
    reduction_trees) run along its rows and columns one site per edge (mapping.floorplan);
    small units then take the free sites nearest the trees they root. 'arrays' is never
    handed to CP-SAT (its objective is the two-pin one)."""
    site_wires: int | None = None
    """With layout 'arrays': the tracks one site's boundary holds (4 x gcells per site x
    tracks per gcell edge; mapping.routing.route_routable sets it). A small unit whose trees
    and buses need more than half of what its footprint's boundary holds spans several sites
    of a column (Placement.spans). None: every small unit takes one site (or slot)."""
    site_grid_aspect: float = 1.0
    """Width / height of the site grid (0.1 .. 10)."""
    whitespace_frac: float = 0.05
    """Empty sites added, as a fraction of the sites the units need (0 .. 1); room for moves."""
    output_units_per_site: int = 1
    """Small units (output units A, input IN) sharing one site (1 .. 16). 1 (the default)
    gives an output unit (accumulators, ADC share, neurons, line buffer) a crossbar's site,
    which also gives its wide buses room to leave it (docs/routing.md)."""
    seed: int = 0
    """Tie-breaking seed of the fast method and CP-SAT's random_seed (same seed, same result)."""
    time_limit_s: float = 2.0
    """CP-SAT budget in deterministic seconds (max_deterministic_time: reproducible)."""
    cpsat_max_units: int = 40
    """Largest design (units) that method 'auto' gives to CP-SAT."""
    cpsat_workers: int = 1
    """CP-SAT threads; with more than one, interleaved search keeps the result deterministic."""
    refine_passes: int = 40
    """Most improvement passes of the fast method (it stops earlier when no move gains)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"PlaceConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"PlaceConfig.layout must be one of {LAYOUTS}, got {self.layout!r}")
        checks = [("site_grid_aspect", 0.1, 10.0), ("whitespace_frac", 0.0, 1.0),
                  ("output_units_per_site", 1, 16), ("seed", 0, 2**31 - 1),
                  ("time_limit_s", 1e-3, 1e5), ("cpsat_max_units", 0, 10**5),
                  ("cpsat_workers", 1, 64), ("refine_passes", 0, 10**4)]
        if self.site_wires is not None:
            checks.append(("site_wires", 1, 10**9))
        check_ranges("PlaceConfig", self, checks)


@dataclass
class Placement:
    """Sites of the units: ``positions[name] = (x, y)`` with 0 <= x < width, 0 <= y < height."""

    positions: dict[str, tuple[int, int]]
    """Unit name -> (x, y) site."""
    slots: dict[str, int]
    """Unit name -> slot inside its site (0 for a tile; 0..k-1 for small units sharing a site)."""
    grid_sites: tuple[int, int]
    """(width, height) of the site grid."""
    cost: int
    """Sum over nets of width x Manhattan site distance (wire-site-pitches)."""
    method: str
    """'fast' or 'cpsat'."""
    status: str
    """'heuristic' (fast), or CP-SAT's 'OPTIMAL' / 'FEASIBLE' / 'HINT' (kept the warm start)."""
    output_units_per_site: int = 4
    spans: dict[str, int] = field(default_factory=dict)
    """Small units whose footprint is a column of several sites: name -> sites, from its
    site upwards (layout 'arrays' with site_wires); every other unit spans one site."""

    def to_dict(self) -> dict:
        d = {"grid_sites": list(self.grid_sites), "cost": self.cost, "method": self.method,
             "status": self.status, "output_units_per_site": self.output_units_per_site,
             "units": {n: {"x": p[0], "y": p[1], "slot": self.slots[n]}
                       for n, p in self.positions.items()}}
        if self.spans:
            d["spans"] = dict(self.spans)
        return d


def place(design: Design, config: PlaceConfig | None = None) -> Placement:
    """Place every unit of ``design`` on a site grid, minimizing width-weighted wirelength."""
    cfg = PlaceConfig() if config is None else config
    if not isinstance(cfg, PlaceConfig):
        raise TypeError(f"config must be a PlaceConfig, got {type(cfg).__name__}")
    arr = net_arrays(design)
    k = cfg.output_units_per_site
    if cfg.layout == "arrays":
        from mapping.floorplan import array_layout

        pos, w, h, spans = array_layout(arr, design, cfg.site_grid_aspect, cfg.whitespace_frac,
                                        k, cfg.site_wires)
        out = _result(arr, pos, (w, h), k, "fast", "arrays")
        out.spans = {arr.names[u]: s for u, s in spans.items()}
        return out
    pos, (w, h) = fast_place(arr, design, k, cfg.site_grid_aspect, cfg.whitespace_frac,
                             cfg.refine_passes, cfg.seed)
    method, status = "fast", "heuristic"
    use_cpsat = cfg.method == "cpsat" or (cfg.method == "auto"
                                          and len(arr.names) <= cfg.cpsat_max_units)
    if use_cpsat:
        pos, status = _place_cpsat(arr, k, w, h, pos, cfg)
        method = "cpsat"
    return _result(arr, pos, (w, h), k, method, status)


def _result(arr: NetArrays, pos: np.ndarray, grid: tuple[int, int], k: int, method: str,
            status: str) -> Placement:
    site = pos[:, 0] * grid[1] + pos[:, 1]  # (n,)
    order = np.lexsort((np.arange(len(site)), site))  # units by site, then design order
    slot = np.zeros(len(site), dtype=np.int64)
    first = np.r_[True, site[order][1:] != site[order][:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(site)), 0))
    slot[order] = np.arange(len(site)) - start
    return Placement({n: (int(pos[i, 0]), int(pos[i, 1])) for i, n in enumerate(arr.names)},
                     {n: int(slot[i]) for i, n in enumerate(arr.names)}, grid,
                     placement_cost(arr, pos), method, status, k)


def cpsat_solver(cfg):
    """A CP-SAT solver set up from a config's seed, cpsat_workers and time_limit_s (placement
    and routing alike): deterministic time, so the same seed gives the same result."""
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    p = solver.parameters
    p.random_seed, p.num_workers = cfg.seed, cfg.cpsat_workers
    p.interleave_search = cfg.cpsat_workers > 1  # keeps several workers deterministic
    p.max_deterministic_time = cfg.time_limit_s
    p.max_time_in_seconds = 10 * cfg.time_limit_s + 30  # safety net only
    return solver


def _place_cpsat(arr: NetArrays, k: int, w: int, h: int, hint: np.ndarray,
                 cfg: PlaceConfig) -> tuple[np.ndarray, str]:
    """Exact model: z[u, s] = unit u on site s; sum_tiles k*z + sum_small z <= k per site;
    |dx|, |dy| per net by two inequalities each; minimize sum width * (dx + dy)."""
    from ortools.sat.python import cp_model

    n, n_sites = len(arr.names), w * h
    sx, sy = np.divmod(np.arange(n_sites), h)  # site s = x * h + y
    m = cp_model.CpModel()
    z = [[m.new_bool_var(f"z{u}_{s}") for s in range(n_sites)] for u in range(n)]
    for u in range(n):
        m.add_exactly_one(z[u])
    for s in range(n_sites):
        m.add(sum((1 if arr.small[u] else k) * z[u][s] for u in range(n)) <= k)
    x = [m.new_int_var(0, w - 1, f"x{u}") for u in range(n)]
    y = [m.new_int_var(0, h - 1, f"y{u}") for u in range(n)]
    for u in range(n):
        m.add(x[u] == sum(int(sx[s]) * z[u][s] for s in range(n_sites)))
        m.add(y[u] == sum(int(sy[s]) * z[u][s] for s in range(n_sites)))
    terms = []
    for i, (a, b) in enumerate(zip(arr.src.tolist(), arr.dst.tolist(), strict=True)):
        dx, dy = m.new_int_var(0, w - 1, f"dx{i}"), m.new_int_var(0, h - 1, f"dy{i}")
        m.add(dx >= x[a] - x[b])
        m.add(dx >= x[b] - x[a])
        m.add(dy >= y[a] - y[b])
        m.add(dy >= y[b] - y[a])
        terms.append(int(arr.width[i]) * (dx + dy))
        m.add_hint(dx, int(abs(hint[a, 0] - hint[b, 0])))
        m.add_hint(dy, int(abs(hint[a, 1] - hint[b, 1])))
    m.minimize(sum(terms))
    hint_site = hint[:, 0] * h + hint[:, 1]
    for u in range(n):
        m.add_hint(x[u], int(hint[u, 0]))
        m.add_hint(y[u], int(hint[u, 1]))
        for s in range(n_sites):
            m.add_hint(z[u][s], bool(hint_site[u] == s))
    solver = cpsat_solver(cfg)
    status = solver.solve(m)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return hint, "HINT"
    pos = np.array([[solver.value(x[u]), solver.value(y[u])] for u in range(n)], dtype=np.int64)
    if placement_cost(arr, pos) > placement_cost(arr, hint):
        return hint, "HINT"
    return pos, solver.status_name(status)


# ------------------------------------------------------------ design as arrays (also routing)

@dataclass(frozen=True)
class NetArrays:
    """A Design as index arrays; units in design order."""

    names: list[str]
    small: np.ndarray
    """(n_units,) bool: an input/output unit (shares a site) rather than a tile."""
    src: np.ndarray
    """(n_nets,) int64 index of the source unit."""
    dst: np.ndarray
    """(n_nets,) int64 index of the destination unit."""
    width: np.ndarray
    """(n_nets,) int64 wires."""


def net_arrays(design: Design) -> NetArrays:
    """Check ``design`` (unique unit names, nets between known, distinct units) -> arrays."""
    if not isinstance(design, Design):
        raise TypeError(f"design must be a mapping.design.Design, got {type(design).__name__}")
    if not design.units:
        raise ConfigError("design has no units; build it with map_model(...).design")
    names = [u.name for u in design.units]
    index = {n: i for i, n in enumerate(names)}
    if len(index) != len(names):
        dup = next(n for i, n in enumerate(names) if index[n] != i)
        raise ConfigError(f"unit name {dup!r} appears twice in design.units; names must be unique")
    ends = np.empty((len(design.nets), 2), dtype=np.int64)
    for i, n in enumerate(design.nets):
        for j, end in enumerate((n.src, n.dst)):
            if end not in index:
                raise ConfigError(f"net {n.src}->{n.dst} names unit {end!r}, which is not in "
                                 "design.units; add the unit or drop the net")
            ends[i, j] = index[end]
        if n.src == n.dst:
            raise ConfigError(f"net {n.src}->{n.dst} connects a unit to itself; drop it")
    width = np.array([n.width for n in design.nets], dtype=np.int64)
    small = np.array([u.kind != "tile" for u in design.units], dtype=bool)
    return NetArrays(names, small, ends[:, 0], ends[:, 1], width)


def placement_cost(arr: NetArrays, pos: np.ndarray) -> int:
    """Sum over nets of width x Manhattan distance between the sites of its units."""
    d = np.abs(pos[arr.src] - pos[arr.dst]).sum(axis=1)
    return int((arr.width * d).sum())


def ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated aranges: (owner of each element, starts[o] + 0..counts[o]-1)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    offset = np.repeat(np.cumsum(counts) - counts, counts)
    return owner, np.arange(int(counts.sum())) - offset + np.repeat(starts, counts)


def _adjacency(arr: NetArrays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of neighbours: unit u's neighbours are nbr[ptr[u]:ptr[u+1]] with weights nw."""
    n = len(arr.names)
    u, v = np.r_[arr.src, arr.dst], np.r_[arr.dst, arr.src]
    w = np.r_[arr.width, arr.width]
    order = np.argsort(u, kind="stable")
    ptr = np.r_[0, np.cumsum(np.bincount(u, minlength=n))]
    return ptr, v[order], w[order]


def _wmedian(owner: np.ndarray, vals: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """Lower weighted median of vals per owner (every owner 0..n-1 has >= 1 value)."""
    order = np.lexsort((vals, owner))
    v, cw, o = vals[order], np.cumsum(w[order]), owner[order]
    start = np.searchsorted(o, np.arange(n))
    before = np.where(start > 0, cw[np.maximum(start - 1, 0)], 0)
    half = (np.bincount(o, w[order], minlength=n).astype(np.int64) + 1) // 2
    return v[np.minimum(np.searchsorted(cw, before + half), len(v) - 1)]


def _hilbert(x: np.ndarray, y: np.ndarray, n: int) -> np.ndarray:
    """Index along a Hilbert curve of side n (a power of two) of points (x, y)."""
    x, y, d, s = x.copy(), y.copy(), np.zeros(len(x), dtype=np.int64), n // 2
    while s > 0:
        rx, ry = (x & s) > 0, (y & s) > 0
        d += s * s * ((3 * rx) ^ ry)
        flip = ~ry & rx
        x[flip], y[flip] = n - 1 - x[flip], n - 1 - y[flip]
        x[~ry], y[~ry] = y[~ry], x[~ry].copy()
        s //= 2
    return d


def _initial_layout(arr: NetArrays, design: Design, k: int, aspect: float,
                    ws: float) -> tuple[np.ndarray, int, int]:
    """Matrices in dataflow order along a serpentine of sites; in each, the tiles of k output
    units consecutive along a Hilbert curve with their shared output site in the middle."""
    n = len(arr.names)
    owner = np.full(n, -1)
    drives = ~arr.small[arr.src] & arr.small[arr.dst]  # tile -> output unit
    owner[arr.src[drives][::-1]] = arr.dst[drives][::-1]  # first such net wins
    groups: dict[str, list[int]] = {}
    for i, u in enumerate(design.units):
        groups.setdefault(u.matrix or "", []).append(i)
    layouts = []  # per group: list of items, an item = the units of one site
    for members in groups.values():
        smalls = [i for i in members if arr.small[i]]
        by_owner: dict[int, list[int]] = {}
        for i in members:
            if not arr.small[i]:
                by_owner.setdefault(int(owner[i]) if owner[i] in smalls else -1, []).append(i)
        items = []
        for c in range(0, len(smalls), k):
            chunk = smalls[c:c + k]
            ts = [[t] for o in chunk for t in by_owner.get(o, [])]
            items += ts[:len(ts) // 2] + [chunk] + ts[len(ts) // 2:]
        layouts.append(items + [[t] for t in by_owner.get(-1, [])])
    sizes = [len(it) + math.ceil(len(it) * ws) for it in layouts]
    h = max(1, round(math.sqrt(sum(sizes) / aspect)))
    w = -(-sum(sizes) // h)
    lin = np.arange(w * h)
    sx, sy = lin // h, lin % h
    sy = np.where(sx % 2 == 1, h - 1 - sy, sy)  # serpentine: down one column, up the next
    side = 1 << max(w, h).bit_length()
    pos, off = np.zeros((n, 2), dtype=np.int64), 0
    for items, size in zip(layouts, sizes, strict=True):
        seg = np.arange(off, off + size)
        seg = seg[np.argsort(_hilbert(sx[seg], sy[seg], side), kind="stable")]
        for j, units in enumerate(items):
            s = seg[j * size // len(items)]
            pos[units] = (sx[s], sy[s])
        off += size
    return pos, w, h


# ------------------------------------------------------------------------ fast refinement

class _Refiner:
    """Greedy improvement of a legal placement; every accepted move lowers the cost."""

    def __init__(self, arr: NetArrays, pos: np.ndarray, w: int, h: int, k: int, seed: int):
        from scipy.sparse import csr_matrix

        self.arr, self.pos, self.w, self.h, self.k = arr, pos, w, h, k
        n = len(arr.names)
        self.ptr, self.nbr, self.nw = _adjacency(arr)
        self.wmat = csr_matrix((self.nw, (np.repeat(np.arange(n), np.diff(self.ptr)), self.nbr)),
                               shape=(n, n))
        self.nbr_lists = np.split(self.nbr, self.ptr[1:-1])
        inc = np.r_[arr.src, arr.dst]
        order = np.argsort(inc, kind="stable")
        self.inc = np.split(np.r_[np.arange(len(arr.src)), np.arange(len(arr.src))][order],
                            np.cumsum(np.bincount(inc, minlength=n))[:-1])  # unit -> its nets
        deg = np.diff(self.ptr)
        self.tiles = np.flatnonzero(~arr.small & (deg > 0))
        self.smalls = np.flatnonzero(arr.small & (deg > 0))
        self.tie = np.random.default_rng(seed).permutation(n)  # seeded tie-break order
        site = pos[:, 0] * h + pos[:, 1]
        self.site_tile = np.full(w * h, -1, dtype=np.int64)
        self.site_tile[site[~arr.small]] = np.flatnonzero(~arr.small)
        self.site_small = np.bincount(site[arr.small], minlength=w * h)

    def cost_at(self, units: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """(P,) cost of each unit's nets if it sat at (px, py), the others where they are."""
        owner, idx = ranges(self.ptr[units], self.ptr[units + 1] - self.ptr[units])
        nb = self.nbr[idx]
        d = np.abs(px[owner] - self.pos[nb, 0]) + np.abs(py[owner] - self.pos[nb, 1])
        return np.bincount(owner, self.nw[idx] * d, minlength=len(units))

    def local_cost(self, units) -> int:
        nets = np.unique(np.concatenate([self.inc[u] for u in units]))
        d = np.abs(self.pos[self.arr.src[nets]] - self.pos[self.arr.dst[nets]]).sum(axis=1)
        return int((self.arr.width[nets] * d).sum())

    def tile_pass(self) -> int:
        """Each tile proposes its median site and its 4 neighbours (move or swap with the tile
        there); the best positive proposals are applied, no two touching the same nets."""
        t, pos = self.tiles, self.pos
        if len(t) == 0:
            return 0
        owner, idx = ranges(self.ptr[t], self.ptr[t + 1] - self.ptr[t])
        nb, w = self.nbr[idx], self.nw[idx]
        mx, my = (_wmedian(owner, pos[nb, c], w, len(t)) for c in (0, 1))
        offs = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1]])
        cx = np.clip(mx[:, None] + offs[:, 0], 0, self.w - 1).ravel()  # (T*5,)
        cy = np.clip(my[:, None] + offs[:, 1], 0, self.h - 1).ravel()
        u = np.repeat(t, len(offs))
        s = cx * self.h + cy
        o = self.site_tile[s]
        has_o = o >= 0
        o_ = np.where(has_o, o, u)
        gain = self.cost_at(u, pos[u, 0], pos[u, 1]) - self.cost_at(u, cx, cy)
        gain += np.where(has_o, self.cost_at(o_, pos[o_, 0], pos[o_, 1])
                         - self.cost_at(o_, pos[u, 0], pos[u, 1]), 0)
        w_uo = np.asarray(self.wmat[u, o_]).ravel()
        gain -= np.where(has_o, 2 * w_uo * (np.abs(pos[u, 0] - cx) + np.abs(pos[u, 1] - cy)), 0)
        gain[(self.site_small[s] > 0) | (o == u)] = -1
        gain = gain.reshape(len(t), len(offs))
        best = gain.argmax(axis=1)
        g = gain[np.arange(len(t)), best]
        keep = np.flatnonzero(g > 0)
        keep = keep[np.lexsort((self.tie[t[keep]], -g[keep]))]
        pick = keep * len(offs) + best[keep]
        locked = np.zeros(len(self.arr.names), dtype=bool)
        total = 0
        for p, gp in zip(pick.tolist(), g[keep].tolist(), strict=True):
            uu, oo, ss = int(u[p]), int(o[p]), int(s[p])
            if locked[uu] or (oo >= 0 and locked[oo]) or self.site_tile[ss] != oo:
                continue
            old = pos[uu].copy()
            self.site_tile[ss], self.site_tile[old[0] * self.h + old[1]] = uu, oo
            pos[uu] = (cx[p], cy[p])
            locked[uu] = True
            locked[self.nbr_lists[uu]] = True
            if oo >= 0:
                pos[oo] = old
                locked[oo] = True
                locked[self.nbr_lists[oo]] = True
            total += gp
        return int(total)

    def small_pass(self) -> int:
        """Move each output/input unit to the best free slot, then try moving each small site
        as a whole onto a nearby tile site (swap) or empty site."""
        pos, h, total = self.pos, self.h, 0
        for u in self.smalls[np.argsort(self.tie[self.smalls])].tolist():
            free = np.flatnonzero((self.site_tile < 0) & (self.site_small < self.k))
            if len(free) == 0:
                break
            nb, w = self.nbr_lists[u], self.nw[self.ptr[u]:self.ptr[u + 1]]
            fx, fy = free // h, free % h
            tx, ty = np.median(pos[nb, 0]), np.median(pos[nb, 1])
            if len(free) > 256:
                near = np.argpartition(np.abs(fx - tx) + np.abs(fy - ty), 256)[:256]
                free, fx, fy = free[near], fx[near], fy[near]
            c = (w * (np.abs(fx[:, None] - pos[nb, 0]) + np.abs(fy[:, None] - pos[nb, 1]))).sum(1)
            cur = int((w * np.abs(pos[nb] - pos[u]).sum(axis=1)).sum())
            j = int(np.argmin(c))
            if c[j] < cur:
                self.site_small[pos[u, 0] * h + pos[u, 1]] -= 1
                self.site_small[free[j]] += 1
                pos[u] = (fx[j], fy[j])
                total += cur - int(c[j])
        site_of = pos[:, 0] * h + pos[:, 1]
        for s in np.unique(site_of[self.smalls]).tolist():
            total += self._move_site(s, np.flatnonzero(self.arr.small & (site_of == s)))
        return total

    def _move_site(self, s: int, members: np.ndarray) -> int:
        pos, h = self.pos, self.h
        nb = np.concatenate([self.nbr_lists[u] for u in members])
        tx, ty = int(np.median(pos[nb, 0])), int(np.median(pos[nb, 1]))
        best, best_gain = None, 0
        for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1),
                       (-1, 1), (2, 0), (-2, 0), (0, 2), (0, -2)):
            x, y = tx + dx, ty + dy
            c = x * h + y
            if not (0 <= x < self.w and 0 <= y < h) or c == s or self.site_small[c] > 0:
                continue
            t = int(self.site_tile[c])
            moved = list(members) + ([t] if t >= 0 else [])
            before = self.local_cost(moved)
            old = pos[members].copy()
            pos[members] = (x, y)
            if t >= 0:
                pos[t] = divmod(s, h)
            gain = before - self.local_cost(moved)
            pos[members] = old
            if t >= 0:
                pos[t] = (x, y)
            if gain > best_gain:
                best, best_gain = (c, t), gain
        if best is None:
            return 0
        c, t = best
        pos[members] = divmod(c, h)
        self.site_small[c], self.site_small[s] = self.site_small[s], 0
        self.site_tile[s] = t
        self.site_tile[c] = -1
        if t >= 0:
            pos[t] = divmod(s, h)
        return best_gain


def fast_place(arr: NetArrays, design: Design, k: int, aspect: float, ws: float, passes: int,
               seed: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Constructive dataflow layout + greedy refinement -> ((n, 2) sites, (width, height))."""
    pos, w, h = _initial_layout(arr, design, k, aspect, ws)
    ref = _Refiner(arr, pos, w, h, k, seed)
    for _ in range(passes):
        gain = ref.tile_pass() + ref.small_pass()
        if gain <= 1e-4 * placement_cost(arr, pos):
            break
    return pos, (w, h)
