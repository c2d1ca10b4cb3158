"""Array floorplan for tree-routed designs (PlaceConfig.layout = "arrays").

With broadcast and reduction trees (mapping.steiner), the wire of a matrix is shortest when
its tiles sit as their tile grid: tile (a, b) at column b, row a, so that the broadcast tree of
row block a is a horizontal chain and the reduction tree of column block b a vertical one,
each edge one site long. The placement cost of section 5 (two-pin buses, Manhattan) pulls the
tiles of a column block around their output unit instead, which makes every broadcast tree
span the whole matrix (dense VGG-16's fc1 at 128x128: 196 row-block trees across 64 blobs).

``array_layout``:

1. Every matrix is a block: its tile grid, rows from the bottom, columns from the left, and
   one column on its right for the output units. A grid taller than the die height H is
   folded into ceil(A / H) strips of consecutive row blocks, side by side (a column block's
   reduction tree then hops from strip to strip).
2. Blocks in dataflow order are stacked bottom to top in die columns of height H; a block
   that does not fit starts the next die column to the right. H is chosen (among a few
   candidates around the square die) to minimize the die's area for the aspect asked.
3. Whitespace: ``whitespace_frac`` of the sites the blocks occupy is added as empty columns
   spread between the die columns (and inside a die column's spare height).
4. Small units (output units, IN) take free sites one by one (widest first, two passes),
   each the site minimizing the wire of the trees it roots (width x distance to the nearest
   member: a tree's root hangs off its nearest member) plus its two-pin buses; a unit that
   needs more tracks than ``span_util`` of one site's boundary can give (``site_wires``)
   spans several free sites of one column (``Placement.spans``), so its pins have room.

Tiles are not moved after that: the grid is already where every tree edge is one site long.
"""

from __future__ import annotations

import math

import numpy as np

from mapping.design import Design


def array_layout(arr, design: Design, aspect: float, ws: float, k: int,
                 site_wires: int | None = None,
                 span_util: float = 0.5) -> tuple[np.ndarray, int, int, dict[int, int]]:
    """(n, 2) sites, die width, die height, {unit: sites spanned upwards (> 1 only)}."""
    n = len(arr.names)
    mats: dict[str, list[int]] = {}
    for i, u in enumerate(design.units):
        if u.kind == "tile":
            mats.setdefault(u.matrix, []).append(i)
    blocks = []  # per matrix: (tile ids, a, b, A, B)
    for tiles in mats.values():
        t = np.array(tiles)
        ab = np.array([design.units[i].block for i in tiles], dtype=np.int64)
        a0, b0 = ab.min(axis=0)
        a, b = ab[:, 0] - a0, ab[:, 1] - b0
        blocks.append((t, a, b, int(a.max()) + 1, int(b.max()) + 1))
    n_small = int(arr.small.sum())
    h = _die_height(blocks, n_small, aspect, ws, k)
    pos = np.full((n, 2), -1, dtype=np.int64)
    cols = []  # die columns: (x0, width)
    x0, y0, width = 0, 0, 0
    for t, a, b, na, nb in blocks:
        strips = -(-na // h)
        hs = -(-na // strips)
        bw, bh = strips * nb + 1, hs  # + the output column
        if y0 > 0 and y0 + bh > h:  # next die column
            cols.append((x0, width))
            x0, y0, width = x0 + width, 0, 0
        pos[t, 0] = x0 + (a // hs) * nb + b
        pos[t, 1] = y0 + a % hs
        y0 += bh
        width = max(width, bw)
    cols.append((x0, width))
    used = sum(w for _, w in cols) * h
    extra = math.ceil(ws * used / h) if ws > 0 else 0
    # spread the extra empty columns between the die columns (after each, in proportion)
    shift = np.zeros(len(cols), dtype=np.int64)
    if extra:
        share = np.diff(np.floor(np.linspace(0, extra, len(cols) + 1)).astype(np.int64))
        shift = np.cumsum(share) - share
    tiles = ~arr.small
    starts = np.array([c[0] for c in cols])
    which = np.searchsorted(starts, pos[tiles, 0], side="right") - 1
    pos[tiles, 0] += shift[which]
    w = sum(c[1] for c in cols) + extra
    w = max(w, 1)
    spans = _place_small(arr, design, pos, w, h, k, site_wires, span_util)
    return pos, w, h, spans


def _die_height(blocks, n_small: int, aspect: float, ws: float, k: int) -> int:
    """Die height (sites) minimizing the packed area, the die kept near ``aspect``."""
    tiles = sum(len(t) for t, *_ in blocks)
    need = (tiles + -(-n_small // k)) * (1 + ws)
    square = max(1, round(math.sqrt(need / aspect)))
    best = None
    for h in sorted({max(1, int(square * f)) for f in (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25,
                                                        1.4, 1.6, 1.8, 2.0)}):
        x, y0, width = 0, 0, 0
        for _, _, _, na, nb in blocks:
            strips = -(-na // h)
            hs = -(-na // strips)
            bw = strips * nb + 1
            if y0 > 0 and y0 + hs > h:
                x, y0, width = x + width, 0, 0
            y0 += hs
            width = max(width, bw)
        w = (x + width) * (1 + ws)
        ratio = (w / h) / aspect
        score = w * h * max(ratio, 1 / ratio) ** 0.5
        if best is None or score < best[0]:
            best = (score, h)
    return best[1]


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


def _place_small(arr, design: Design, pos: np.ndarray, w: int, h: int, k: int,
                 site_wires: int | None, span_util: float) -> dict[int, int]:
    """Put every small unit on the free site (or slot) of least tree-aware cost; see the
    module docstring. Returns the spans."""
    index = {name: i for i, name in enumerate(arr.names)}
    by_root, pairs = _groups(design, index)
    small = np.flatnonzero(arr.small)
    partners: dict[int, list] = {int(u): [] for u in small}
    for a, b, wd in pairs:
        if a in partners:
            partners[a].append((b, wd))
        if b in partners:
            partners[b].append((a, wd))
    demand = {int(u): sum(wd for _, wd in by_root.get(int(u), []))
              + sum(wd for _, wd in partners[int(u)]) for u in small}
    span = {u: 1 for u in demand}
    if site_wires:
        for u, d in demand.items():
            s = 1
            while d > span_util * site_wires * (1 + s) / 2 and s < 8:  # boundary of a 1 x s strip
                s += 1
            span[u] = s
    occ = np.zeros((w, h), dtype=np.int64)  # small units per site
    blocked = np.zeros((w, h), dtype=bool)  # holds a tile or part of a spanned unit
    tiles = ~arr.small
    blocked[pos[tiles, 0], pos[tiles, 1]] = True
    # provisional spot of every small unit: the centroid of what it connects to
    for u in small.tolist():
        m = [mm for mm, _ in by_root.get(u, [])]
        pts = pos[np.concatenate(m)] if m else np.zeros((0, 2), dtype=np.int64)
        pts = pts[(pts >= 0).all(axis=1)]
        pos[u] = np.median(pts, axis=0).round() if len(pts) else (0, 0)
    order = sorted(demand, key=lambda u: (-demand[u], u))
    spans: dict[int, int] = {}
    for sweep in range(2):
        for u in order:
            if sweep:  # take it off to re-place it
                x, y = pos[u]
                occ[x, y] -= 1
                if span[u] > 1:
                    blocked[x, y + 1:y + span[u]] = False
            x, y = _best_site(u, pos, occ, blocked, by_root.get(u, []), partners[u], k,
                              span[u], w, h)
            pos[u] = (x, y)
            occ[x, y] += 1
            if span[u] > 1:
                blocked[x, y + 1:y + span[u]] = True
                spans[u] = span[u]
    return spans


def _best_site(u: int, pos: np.ndarray, occ: np.ndarray, blocked: np.ndarray, trees: list,
               partners: list, k: int, s: int, w: int, h: int) -> tuple[int, int]:
    """Free site (room for s sites upwards when s > 1) of least cost for unit u."""
    free = ~blocked & (occ < (1 if s > 1 else k))
    if s > 1:  # the s - 1 sites above must be empty too
        ok = free.copy()
        for j in range(1, s):
            up = np.zeros_like(free)
            up[:, :h - j] = ~blocked[:, j:] & (occ[:, j:] == 0)
            ok &= up
        free = ok
    fx, fy = np.nonzero(free)
    if len(fx) == 0:  # no room for the span: any free site
        fx, fy = np.nonzero(~blocked & (occ < k))
    members = [pos[m] for m, _ in trees]
    ref = np.concatenate(members + [pos[[p for p, _ in partners]]]) if (members or partners) \
        else pos[[u]]
    lo, hi = ref.min(axis=0) - 3, ref.max(axis=0) + 3
    inside = (fx >= lo[0]) & (fx <= hi[0]) & (fy >= lo[1]) & (fy <= hi[1])
    if inside.sum() >= 16:
        fx, fy = fx[inside], fy[inside]
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
    j = int(np.argmin(cost + 1e-6 * (fx * h + fy)))  # ties: lowest site
    return int(fx[j]), int(fy[j])
