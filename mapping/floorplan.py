"""Array floorplan for tree-routed designs (PlaceConfig.layout = "arrays").

With broadcast and reduction trees (mapping.steiner), the wire of a matrix is shortest when
its tiles sit as their tile grid: tile (a, b) at column b, row a, so that the broadcast tree of
row block a is a horizontal chain and the reduction tree of column block b a vertical one,
each edge one site long. The placement cost of section 5 (two-pin buses, Manhattan) pulls the
tiles of a column block around their output unit instead, which makes every broadcast tree
span the whole matrix (dense VGG-16's fc1 at 128x128: 196 row-block trees across 64 blobs,
28.6 M tracks of overflow even with reduction trees).

``array_layout``:

1. Every matrix is a block: its tile grid (rows from the bottom, columns from the left),
   room for its B output units (ceil(B / A) columns on its right, or one row on top), and,
   when one producer feeds 3 or more of its row blocks, an empty column on its left for the
   producers (the roots of its row trees). A block may be folded into 2 or 3 side-by-side
   strips of consecutive row blocks (each with its producer column; a column block's
   reduction tree then hops from strip to strip, at rows spread by mapping.steiner). The row
   on top is for flat blocks that fit no other way: a low-rank factor's one row block of B
   tiles with its outputs on its right is 2B sites wide, and the narrowest shape of the
   widest block sets the die's least width (ResNet-50 compressed at 128x128: 64 sites wide
   against 41 for a square die, 4.35x its crossbar area). Offered to every block, the row on
   top routed worse elsewhere (the synthetic VGG-16 at 512x512 overflowed).
2. Blocks in dataflow order are packed bottom-left on a skyline (a die of width W): each
   takes the shape and position of lowest top, then nearest the previous block, folding
   only when that lowers its top. W is chosen among a few around the square die to minimize
   the area (kept near ``site_grid_aspect``).
3. Whitespace: ``whitespace_frac`` of every block's width is left empty on its right
   (fractions carried from block to block).
4. Small units (output units, IN) take free sites one by one (widest first, two passes),
   each the site minimizing the wire of the trees it roots (width x distance to the nearest
   member: a tree's root hangs off its nearest member) plus its two-pin buses. With
   ``site_wires`` (the tracks of a site's boundary), a unit needing more than ``span_util``
   (80 %) of one side of a site spans several free sites of one column (``Placement.spans``)
   so that one long side of its footprint holds them (the trees a producer roots leave
   towards the ends of its rows), and wide units (over a quarter of a site's boundary) pay
   for sitting within 4 sites of one another: congestion-aware, where it pays.

Tiles are not moved after that: the grid is already where every tree edge is one site long.
"""

from __future__ import annotations

import math

import numpy as np

from mapping.design import Design

_CLEAR = 4  # sites around a wide unit where another one pays for its wires


def array_layout(arr, design: Design, aspect: float, ws: float, k: int,
                 site_wires: int | None = None,
                 span_util: float = 0.8) -> tuple[np.ndarray, int, int, dict[int, int]]:
    """(n, 2) sites, die width, die height, {unit: sites spanned upwards (> 1 only)}."""
    n = len(arr.names)
    mats: dict[str, list[int]] = {}
    for i, u in enumerate(design.units):
        if u.kind == "tile":
            mats.setdefault(u.matrix, []).append(i)
    fans = _fan_out(design)
    blocks = []  # per matrix: (tile ids, a, b, A, B, input column?)
    for m, tiles in mats.items():
        t = np.array(tiles)
        ab = np.array([design.units[i].block for i in tiles], dtype=np.int64)
        a, b = (ab - ab.min(axis=0)).T
        blocks.append((t, a, b, int(a.max()) + 1, int(b.max()) + 1, fans.get(m, 0) >= 3))
    n_small = -(-int(arr.small.sum()) // k)
    need = (sum(len(b[0]) for b in blocks) + n_small) * (1 + ws)
    square = max(1.0, math.sqrt(need * aspect))
    narrowest = max(_shapes(na, nb, 0, inp)[0][0] for *_, na, nb, inp in blocks)
    best = None
    for f in (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4):
        w = max(narrowest, int(square * f))  # every block must fit (folded if need be)
        placed, h = _skyline(blocks, w, ws)
        ratio = (w / h) / aspect
        score = w * h * max(ratio, 1 / ratio) ** 0.5
        if best is None or score < best[0]:
            best = (score, w, h, placed)
    _, w, h, placed = best
    pos = np.full((n, 2), -1, dtype=np.int64)
    for (t, a, b, na, nb, inp), (x0, y0, strips) in zip(blocks, placed, strict=True):
        hs = -(-na // strips)  # row blocks per strip
        pos[t, 0] = x0 + (a // hs) * (nb + inp) + inp + b  # strips side by side
        pos[t, 1] = y0 + a % hs
    index = {name: i for i, name in enumerate(arr.names)}
    by_root, pairs = _groups(design, index)
    small = np.flatnonzero(arr.small)
    demand, span = _demand(small, by_root, pairs, site_wires, span_util, h)
    # room for every small unit (a spanned one takes whole sites): add rows on top if need be
    need = -(-sum(span[u] == 1 for u in demand) // k) + sum(s for s in span.values() if s > 1)
    free = w * h - int((~arr.small).sum())
    if need > free:
        h += -(-(need - free) // w)
    spans = _place_small(arr, pos, w, h, k, by_root, pairs, demand, span, site_wires)
    return pos, w, h, spans


def _demand(small: np.ndarray, by_root: dict, pairs: list, site_wires: int | None,
            span_util: float, h: int) -> tuple[dict[int, int], dict[int, int]]:
    """Per small unit: the wires of the trees it roots and of its two-pin buses, and the
    sites it should span (see the module docstring)."""
    load = {int(u): sum(wd for _, wd in by_root.get(int(u), [])) for u in small}
    for a, b, wd in pairs:
        for u in (a, b):
            if u in load:
                load[u] += wd
    span = {u: 1 for u in load}
    if site_wires:
        for u, d in load.items():
            s = 1
            # its trees mostly leave on one side: the long side of s sites must hold them
            while d > span_util * s * site_wires / 4 and s < max(1, h // 2):
                s += 1
            if s > 1:  # as tall as the rows it feeds, so that each tree leaves sideways
                s = max(s, min(len(by_root.get(u, [])) - 1, h // 2))
            span[u] = s
    return load, span


def _fan_out(design: Design) -> dict[str, int]:
    """Matrix -> the most row blocks one producer feeds (its broadcast trees)."""
    block = {u.name: u.block for u in design.units}
    fed: dict[tuple[str, str], set] = {}
    for n in design.nets:
        if n.kind == "input":
            fed.setdefault((n.matrix, n.src), set()).add(block[n.dst][0])
    out: dict[str, int] = {}
    for (m, _), rows in fed.items():
        out[m] = max(out.get(m, 0), len(rows))
    return out


def _shapes(na: int, nb: int, w: int, inp: bool = False) -> list[tuple[int, int, int]]:
    """(width, height, strips) a block of A x B tiles can take on a die w sites wide: whole
    or folded into 2 or 3 strips with its output units on the right (see array_layout); those
    that fit, else whole with its output units in a row on top if that fits, else the
    narrowest of all."""
    side = []
    for strips in range(1, min(3, na) + 1):
        hs = -(-na // strips)
        r = -(-nb // hs)  # columns the output units need beside the grid
        side.append((strips * (nb + inp) + r, hs, strips))
    top = (nb + inp, na + 1, 1)  # whole, a free row on top for its output units
    return ([s for s in side if s[0] <= w] or ([top] if top[0] <= w else [])
            or [min(side + [top])])


def _skyline(blocks, w: int, ws: float) -> tuple[list[tuple[int, int, int]], int]:
    """Bottom-left skyline packing of the blocks in dataflow order on a die w sites wide
    (see array_layout). Returns per block (x, y, strips) and the die height."""
    from numpy.lib.stride_tricks import sliding_window_view

    sky = np.zeros(w, dtype=np.int64)
    out, prev, carry = [], 0, 0.0
    for *_, na, nb, inp in blocks:
        best = None
        for bw, bh, strips in _shapes(na, nb, w, inp):
            gap = min(w - bw, int(carry + ws * bw))  # whitespace, fractions carried on
            span = min(w, bw + gap)
            base = sliding_window_view(sky, span).max(axis=1)  # (w - span + 1,) floor per x
            top = base + bh
            x = np.arange(len(base))
            # lowest top first (16 w per site of height), then near the previous block; a
            # fold must lower the top by a site per extra strip
            score = top * (16 * w) + 2 * np.abs(x - prev) + (strips - 1) * 16 * w
            j = int(np.argmin(score))
            if best is None or score[j] < best[0]:
                best = (score[j], int(x[j]), int(base[j]), bw, bh, strips, span)
        _, x, y, bw, bh, strips, span = best
        sky[x:x + span] = y + bh
        carry = max(0.0, carry + ws * bw - (span - bw))
        out.append((x, y, strips))
        prev = x + bw
    return out, int(sky.max())


def _groups(design: Design, index: dict[str, int]) -> tuple[dict, list]:
    """Tree groups keyed by root unit: [(members (k,), wires)], and the two-pin buses
    (unit, other unit, width) of the others (operand nets)."""
    block = {u.name: u.block for u in design.units}
    trees: dict[tuple, list[int]] = {}
    width: dict[tuple, int] = {}
    pairs = []
    for n in design.nets:
        if n.kind == "input":
            key = (n.src, n.matrix, block[n.dst][0])
            trees.setdefault(key, []).append(index[n.dst])
            width[key] = max(width.get(key, 0), n.width)
        elif n.kind == "output":
            key = (n.dst,)
            trees.setdefault(key, []).append(index[n.src])
            width[key] = max(width.get(key, 0), n.width)
        else:
            pairs.append((index[n.src], index[n.dst], n.width))
    by_root: dict[int, list] = {}
    for key, members in trees.items():
        by_root.setdefault(index[key[0]], []).append((np.array(members), width[key]))
    return by_root, pairs


def _place_small(arr, pos: np.ndarray, w: int, h: int, k: int, by_root: dict, pairs: list,
                 demand: dict[int, int], span: dict[int, int],
                 site_wires: int | None) -> dict[int, int]:
    """Put every small unit on a free site (or slot) of least tree-aware cost, the wide ones
    first (they also pay for crowding each other), two sweeps; see the module docstring.
    Returns the spans (a unit finding no column of free sites tall enough spans fewer)."""
    small = np.flatnonzero(arr.small)
    partners: dict[int, list] = {int(u): [] for u in small}
    for a, b, wd in pairs:
        if a in partners:
            partners[a].append((b, wd))
        if b in partners:
            partners[b].append((a, wd))
    span = dict(span)
    occ = np.zeros((w, h), dtype=np.int64)  # small units per site
    blocked = np.zeros((w, h), dtype=bool)  # holds a tile or part of a spanned unit
    tiles = ~arr.small
    blocked[pos[tiles, 0], pos[tiles, 1]] = True
    # provisional spot of every small unit: the median of what it connects to
    for u in small.tolist():
        m = [mm for mm, _ in by_root.get(u, [])]
        pts = pos[np.concatenate(m)] if m else np.zeros((0, 2), dtype=np.int64)
        pts = pts[(pts >= 0).all(axis=1)]
        pos[u] = np.median(pts, axis=0).round() if len(pts) else (0, 0)
    order = sorted(demand, key=lambda u: (-demand[u], u))
    spans: dict[int, int] = {}
    # congestion: wires of the wide units (> a quarter of a site's boundary) around each site;
    # a wide unit pays for sitting where other wide units already pour out their wires
    wide_wires = site_wires / 4 if site_wires else np.inf
    wide = [u for u in order if demand[u] > wide_wires]
    rest = [u for u in order if demand[u] <= wide_wires]
    crowd = np.zeros((w, h))

    def mark(u: int, sign: int) -> None:
        x, y = pos[u]
        crowd[max(0, x - _CLEAR):x + _CLEAR + 1,
              max(0, y - _CLEAR):y + span[u] + _CLEAR] += sign * demand[u]

    for sweep in range(2):
        for u in wide:
            if sweep:  # take it off to re-place it
                x, y = pos[u]
                occ[x, y] -= 1
                mark(u, -1)
                if span[u] > 1:
                    blocked[x, y:y + span[u]] = False
            penalty = crowd * (demand[u] * _CLEAR / site_wires)
            x, y, span[u] = _best_site(u, pos, occ, blocked, by_root.get(u, []), partners[u],
                                       k, span[u], w, h, penalty)
            pos[u] = (x, y)
            occ[x, y] += 1
            mark(u, +1)
            if span[u] > 1:  # its sites, its base one included, are its alone
                blocked[x, y:y + span[u]] = True
            spans.pop(u, None)
            if span[u] > 1:
                spans[u] = span[u]
        for u in rest:  # one by one, the widest first (each sees where the others went)
            if sweep:
                occ[pos[u, 0], pos[u, 1]] -= 1
            x, y, _ = _best_site(u, pos, occ, blocked, by_root.get(u, []), partners[u], k, 1,
                                 w, h)
            pos[u] = (x, y)
            occ[x, y] += 1
    return spans


def _best_site(u: int, pos: np.ndarray, occ: np.ndarray, blocked: np.ndarray, trees: list,
               partners: list, k: int, s: int, w: int, h: int,
               penalty: np.ndarray | None = None) -> tuple[int, int, int]:
    """Free site of least cost for unit u (plus ``penalty`` (w, h) of the site, if given)
    with room for s sites upwards, or for as many as some free column holds: (x, y, span)."""
    empty = ~blocked & (occ == 0)
    want, s, free = s, 1, ~blocked & (occ < k)
    for t in range(want, 1, -1):  # the site and the t - 1 above it empty
        ok = empty.copy()
        for j in range(1, t):
            ok[:, :h - j] &= empty[:, j:]
            ok[:, h - j:] = False
        if ok.any():
            s, free = t, ok
            break
    fx, fy, cost = _site_costs(u, pos, free, trees, partners, s, w, h)
    if penalty is not None:
        cost = cost + penalty[fx, fy]
    j = int(np.argmin(cost + 1e-6 * (fx * h + fy)))  # ties: lowest site
    return int(fx[j]), int(fy[j]), s


def _site_costs(u: int, pos: np.ndarray, free: np.ndarray, trees: list, partners: list,
                s: int, w: int, h: int, want: int = 16) -> tuple[np.ndarray, ...]:
    """Free sites near what unit u connects to (its members' box grown until it holds
    ``want`` free sites, at most 2048 nearest its centre) and their cost: per tree width x
    distance to its nearest member, per partner width x distance (a unit spanning s sites
    counted from its centre)."""
    members = [pos[m] for m, _ in trees]
    ref = np.concatenate(members + [pos[[p for p, _ in partners]]]) if (members or partners) \
        else pos[[u]]
    lo, hi = ref.min(axis=0), ref.max(axis=0)
    margin = 3
    while True:
        x0, y0 = np.maximum(lo - margin, 0)
        x1, y1 = np.minimum(hi + margin, (w - 1, h - 1))
        fx, fy = np.nonzero(free[x0:x1 + 1, y0:y1 + 1])
        if len(fx) >= want or (x0 == 0 and y0 == 0 and x1 == w - 1 and y1 == h - 1):
            break
        margin *= 2
    fx, fy = fx + x0, fy + y0
    if len(fx) > 2048:  # nearest to the centre of what it connects to
        c = np.median(ref, axis=0)
        near = np.argpartition(np.abs(fx - c[0]) + np.abs(fy - c[1]), 2048)[:2048]
        fx, fy = fx[near], fy[near]
    cost = np.zeros(len(fx))
    cy = fy + (s - 1) / 2  # a spanned unit's centre
    for m, wd in trees:
        p = pos[m]  # (t, 2)
        d = np.abs(fx[:, None] - p[None, :, 0]) + np.abs(cy[:, None] - p[None, :, 1])
        cost += wd * d.min(axis=1)
    for p, wd in partners:
        cost += wd * (np.abs(fx - pos[p, 0]) + np.abs(cy - pos[p, 1]))
    return fx, fy, cost
