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
   needs more tracks than ``span_util`` (80 %) of one side of a site holds (a quarter of
   ``site_wires``) spans several free sites of one column (``Placement.spans``), so that one
   long side of its footprint holds them (the trees a producer roots mostly leave towards
   the ends of the rows it feeds). Wide units also pay for sitting within 4 sites of other
   wide units (their wires would pour out through the same gcells).

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
    best = None
    for f in (0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4):
        w = max(1, int(square * f))
        placed, h = _skyline(blocks, w, ws)
        ratio = (w / h) / aspect
        score = w * h * max(ratio, 1 / ratio) ** 0.5
        if best is None or score < best[0]:
            best = (score, w, h, placed)
    _, w, h, placed = best
    pos = np.full((n, 2), -1, dtype=np.int64)
    for (t, a, b, na, nb, inp), (x0, y0, rot, strips) in zip(blocks, placed, strict=True):
        hs = -(-na // strips)  # row blocks per strip
        along = (a // hs) * (nb + inp) + inp + b  # along the rows (strips side by side)
        across = a % hs
        pos[t, 0] = x0 + (across if rot else along)
        pos[t, 1] = y0 + (along if rot else across)
    spans = _place_small(arr, design, pos, w, h, k, site_wires, span_util)
    return pos, w, h, spans


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


def _shapes(na: int, nb: int, w: int, inp: bool = False) -> list[tuple[int, int, bool, int]]:
    """(width, height, rotated, strips) a block can take on a die w sites wide: its grid with
    ceil(B / rows) columns beside it for the output units (rotated: rows above it) and, when
    ``inp``, an empty column on the left of every strip for the producers feeding its rows,
    whole or folded into 2 or 3 side-by-side strips of consecutive row blocks."""
    out = []
    for strips in range(1, min(3, na) + 1):
        hs = -(-na // strips)
        r = -(-nb // hs)  # columns (rows) the output units need beside (above) the grid
        along = strips * (nb + inp) + r
        out += [(along, hs, False, strips)] + ([(hs, along, True, strips)] if ROTATE else [])
    return [s for s in out if s[0] <= w] or [min(out, key=lambda s: s[0])]


ROTATE = False
TGT = 0
FOLD = 16


def _skyline(blocks, w: int, ws: float) -> tuple[list[tuple[int, int, bool, int]], int]:
    """Skyline packing of the blocks in dataflow order on a die w sites wide. Each block
    takes the shape and position that keeps the die lowest (not above the height the area
    needs), then nearest the previous block (dataflow neighbours stay neighbours), then
    unfolded. A fraction ws of every block's width is left empty beside it (whitespace).
    Returns per block (x, y, rotated, strips) and the die height."""
    from numpy.lib.stride_tricks import sliding_window_view

    area = sum(max(min(s[0], w) * s[1] for s in _shapes(na, nb, w, inp)[:1]) * (1 + ws)
               for *_, na, nb, inp in blocks)
    target = math.ceil(area / w)  # the height the blocks need at best
    sky = np.zeros(w, dtype=np.int64)
    out, prev, carry = [], 0, 0.0
    for _, _, _, na, nb, inp in blocks:
        best = None
        for bw, bh, rot, strips in _shapes(na, nb, w, inp):
            gap = min(w - bw, int(carry + ws * bw))  # whitespace, fractions carried on
            span = min(w, bw + gap)
            base = sliding_window_view(sky, span).max(axis=1)  # (w - span + 1,) floor per x
            top = base + bh
            x = np.arange(len(base))
            score = (np.maximum(top, TGT * target) * (16 * w) + 2 * np.abs(x - prev) + top
                     + (strips - 1) * FOLD * w)
            j = int(np.argmin(score))
            if best is None or score[j] < best[0]:
                best = (score[j], int(x[j]), int(base[j]), bw, bh, rot, strips, span)
        _, x, y, bw, bh, rot, strips, span = best
        sky[x:x + span] = y + bh
        carry = max(0.0, carry + ws * bw - (span - bw))
        out.append((x, y, rot, strips))
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
            # its trees mostly leave on one side: the long side of s sites must hold them
            while d > span_util * s * site_wires / 4 and s < 8:
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
    # congestion: wires of the wide units (> a quarter of a site's boundary) around each site;
    # a unit pays for sitting where other wide units already pour out their wires
    wide = site_wires / 4 if site_wires else np.inf
    crowd = np.zeros((w, h))

    def mark(u: int, sign: int) -> None:
        if demand[u] > wide:
            x, y = pos[u]
            crowd[max(0, x - _CLEAR):x + _CLEAR + 1,
                  max(0, y - _CLEAR):y + span[u] + _CLEAR] += sign * demand[u]

    for sweep in range(2):
        for u in order:
            if sweep:  # take it off to re-place it
                x, y = pos[u]
                occ[x, y] -= 1
                mark(u, -1)
                if span[u] > 1:
                    blocked[x, y + 1:y + span[u]] = False
            penalty = (crowd * (demand[u] * _CLEAR / site_wires)) if demand[u] > wide else None
            x, y = _best_site(u, pos, occ, blocked, by_root.get(u, []), partners[u], k,
                              span[u], w, h, penalty)
            pos[u] = (x, y)
            occ[x, y] += 1
            mark(u, +1)
            if span[u] > 1:
                blocked[x, y + 1:y + span[u]] = True
                spans[u] = span[u]
    return spans


def _best_site(u: int, pos: np.ndarray, occ: np.ndarray, blocked: np.ndarray, trees: list,
               partners: list, k: int, s: int, w: int, h: int,
               penalty: np.ndarray | None = None) -> tuple[int, int]:
    """Free site (room for s sites upwards when s > 1) of least cost for unit u (plus
    ``penalty`` (w, h) of the site, if given)."""
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
    if penalty is not None:
        cost += penalty[fx, fy]
    j = int(np.argmin(cost + 1e-6 * (fx * h + fy)))  # ties: lowest site
    return int(fx[j]), int(fy[j])
