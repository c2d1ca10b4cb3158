"""Shared helpers: accept a Design or a MappedNetwork, check it, and write files atomically.

``check_design`` is the one place that says what a design every writer (and the JSON reader)
accepts must look like; the JSON reader checks a file against its schema first, then builds the
Design and runs the same checks, so a writer never writes what the reader would refuse.
"""

import re
from collections import Counter
from typing import Any

import numpy as np

from common.errors import UserError
from common.io import atomic_open  # noqa: F401  (re-exported for the writers)
from mapping.design import UNIT_KINDS, Design, RowSignals
from mapping.spec import MAX_SIDE

ENCODINGS = ("differential", "offset", "unsigned")
NET_KINDS = ("input", "output", "operand")
MAX_INDEX = 2**31 - 1
"""Largest tile block index, site or gcell coordinate, slot (fits every int dtype we use)."""
MAX_NAME = 1024
NAME_RE = re.compile(rf"[!-~]{{1,{MAX_NAME}}}")
"""Unit and matrix names: printable ASCII without spaces (Verilog escaped identifiers)."""
WEIGHT_DTYPES = ("|b1", "|i1", "|u1", "<i2", "<i4", "<i8", ">i2", ">i4", ">i8", "<u2", "<u4",
                 "<u8", ">u2", ">u4", ">u8", "<f2", "<f4", "<f8", ">f2", ">f4", ">f8")
"""numpy dtype strings tile weights may have (the JSON schema's enum)."""
MAX_ROW_SIGNAL_CELLS = 2**27
"""Largest rows x column blocks of one matrix's row signals (live is that many bools)."""


class NetlistError(UserError, ValueError):
    """A design or a netlist file that cannot be exported / read; the message says what to fix."""


def as_design(obj: Any) -> Design:
    """``obj`` if it is a Design, else ``obj.design`` (a MappedNetwork, a read-back netlist)."""
    if isinstance(obj, Design):
        return obj
    design = getattr(obj, "design", None)
    if isinstance(design, Design):
        return design
    raise TypeError(
        f"expected a mapping.design.Design or an object with a .design attribute (a MappedNetwork),"
        f" got {type(obj).__name__}"
    )


def logical_cols(crossbar_cols: int, encoding: str) -> int:
    """Weight columns per crossbar: cols, cols // 2 or cols - 1 (hardware model section 2)."""
    if encoding == "differential":
        return crossbar_cols // 2
    if encoding == "offset":
        return crossbar_cols - 1
    if encoding == "unsigned":
        return crossbar_cols
    raise NetlistError(f"unknown encoding {encoding!r}; use one of {ENCODINGS}")


def physical_cols(n_logical: int, encoding: str) -> int:
    """Bit lines a tile with ``n_logical`` weight columns uses (G+/G- pairs, + reference, ...)."""
    return {"differential": 2 * n_logical, "offset": n_logical + 1, "unsigned": n_logical}[encoding]


def is_int(v: Any) -> bool:
    """A Python or numpy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_name(v: Any) -> bool:
    return isinstance(v, str) and NAME_RE.fullmatch(v) is not None


def _short(v: Any, n: int = 60) -> str:
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."


def check_design(design: Design, *, need_weights: bool = False) -> None:
    """Raise NetlistError if names, nets, weight blocks or row signals are inconsistent with
    each other or with the crossbar (what every writer needs and the JSON reader enforces)."""
    if design.encoding not in ENCODINGS:
        raise NetlistError(f"design.encoding is {design.encoding!r}; use one of {ENCODINGS}")
    rows, cols = design.crossbar_rows, design.crossbar_cols
    if not (is_int(rows) and is_int(cols) and 1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise NetlistError(f"crossbar size {_short(rows)}x{_short(cols)} must be whole numbers "
                           f"in 1..{MAX_SIDE}")
    _check_bits(design)
    lcols = logical_cols(cols, design.encoding)
    if lcols < 1:
        raise NetlistError(f"a {cols}-column crossbar holds no logical column with "
                           f"encoding {design.encoding!r}; use more columns")
    units = _check_units(design)
    _check_nets(design, units, lcols)
    _check_weights(design, units, lcols)
    for m, rs in design.row_signals.items():
        check_row_signals(design, m, rs, units)
    if need_weights:
        missing = [n for n, u in units.items() if u.kind == "tile" and n not in design.tile_weights]
        if missing:
            raise NetlistError(f"design has no weights for tiles {missing[:5]}"
                               f"{' ...' if len(missing) > 5 else ''}; map the model with "
                               "weights (MappedNetwork.design.tile_weights) to export them")


def _check_bits(design: Design) -> None:
    """weight_bits / cell_bits as CrossbarSpec takes them (hardware-model section 2)."""
    from common.errors import ConfigError
    from mapping.spec import check_bits

    bits = [getattr(design, k, None) for k in ("weight_bits", "cell_bits")]
    try:
        check_bits(*(int(v) if is_int(v) else v for v in bits), where="design")
    except ConfigError as e:
        raise NetlistError(str(e)) from None


def _check_units(design: Design) -> dict:
    names = [u.name for u in design.units]
    bad = [n for n in names if not is_name(n)]
    if bad:
        raise NetlistError(f"unit name {_short(bad[0])} must be 1..{MAX_NAME} printable ASCII "
                           "characters without whitespace (e.g. 'fc1/T0_0')")
    if len(set(names)) != len(names):
        dup = sorted(n for n, c in Counter(names).items() if c > 1)
        raise NetlistError(f"unit names must be unique; duplicated: {dup[:5]}")
    for u in design.units:
        if u.kind not in UNIT_KINDS:
            raise NetlistError(f"unit {u.name!r}: kind {u.kind!r}; use one of {UNIT_KINDS}")
        if u.kind == "input":
            if u.matrix is not None or u.block is not None:
                raise NetlistError(f"input unit {u.name!r} must have no matrix and no block")
            continue
        if not is_name(u.matrix):
            raise NetlistError(f"{u.kind} unit {u.name!r}: matrix {_short(u.matrix)} must be a "
                               "name (printable ASCII without whitespace)")
        b = u.block
        if (not isinstance(b, (tuple, list)) or len(b) != 2
                or not all(is_int(v) and 0 <= v <= MAX_INDEX for v in b)):
            raise NetlistError(f"{u.kind} unit {u.name!r}: block {_short(b)} must be two whole "
                               f"numbers in 0..{MAX_INDEX} (row block, column block)")
        if u.kind == "output" and b[0] != 0:
            raise NetlistError(f"output unit {u.name!r}: block {tuple(b)} must be (0, column "
                               "block)")
    return {u.name: u for u in design.units}


def _check_nets(design: Design, units: dict, lcols: int) -> None:
    rows = design.crossbar_rows
    fan_in: Counter = Counter()  # tile -> word lines driven
    fan_out: Counter = Counter()  # tile -> columns read
    for i, n in enumerate(design.nets):
        for end in (n.src, n.dst):
            if not isinstance(end, str) or end not in units:
                raise NetlistError(f"net {i} ({_short(n.src)} -> {_short(n.dst)}) names unknown "
                                   f"unit {_short(end)}")
        if n.kind not in NET_KINDS:
            raise NetlistError(f"net {i} ({n.src} -> {n.dst}): kind {_short(n.kind)}; use one "
                               f"of {NET_KINDS}")
        if not is_int(n.width) or n.width < 1:
            raise NetlistError(f"net {i} ({n.src} -> {n.dst}): width {_short(n.width)} must be a "
                               "whole number >= 1")
        src, dst = units[n.src], units[n.dst]
        if n.kind == "input":
            ok = src.kind in ("input", "output") and dst.kind == "tile"
            limit, what, tile = rows, f"the crossbar's {rows} rows", dst
            fan_in[dst.name] += n.width
        elif n.kind == "output":
            ok = (src.kind == "tile" and dst.kind == "output" and src.matrix == dst.matrix
                  and src.block[1] == dst.block[1])
            limit, what, tile = lcols, f"the crossbar's {lcols} logical columns", src
            fan_out[src.name] += n.width
        else:  # operand: a signal an output unit's periphery operation needs (a residual add)
            ok = src.kind in ("input", "output") and dst.kind == "output" and src.name != dst.name
            limit, what, tile = lcols, f"the output unit's {lcols} logical columns", dst
        if not ok:
            raise NetlistError(
                f"net {i} ({n.src} -> {n.dst}) of kind {n.kind!r} runs from a unit of kind "
                f"{src.kind!r} to one of kind {dst.kind!r}; an input net runs from IN or an output "
                "unit to a tile, an output net from a tile to the output unit of its matrix and "
                "column block, an operand net from IN or an output unit to another output unit")
        if n.matrix != tile.matrix:
            raise NetlistError(f"net {i} ({n.src} -> {n.dst}): matrix {_short(n.matrix)} must be "
                               f"that of its tile, {tile.matrix!r}")
        if n.width > limit:
            raise NetlistError(f"net {i} ({n.src} -> {n.dst}): width {n.width} exceeds {what}")
    for counts, limit, what in ((fan_in, rows, "word lines"), (fan_out, lcols, "logical columns")):
        over = [(t, c) for t, c in counts.items() if c > limit]
        if over:
            raise NetlistError(f"the nets of tile {over[0][0]!r} use {over[0][1]} {what}; a "
                               f"crossbar has {limit}")


def _check_weights(design: Design, units: dict, lcols: int) -> None:
    for name, w in design.tile_weights.items():
        u = units.get(name) if isinstance(name, str) else None
        if u is None or u.kind != "tile":
            raise NetlistError(f"tile_weights has key {_short(name)}, which is not a tile unit")
        w = np.asarray(w)
        if w.ndim != 2 or not (1 <= w.shape[0] <= design.crossbar_rows and 1 <= w.shape[1] <= lcols):
            raise NetlistError(
                f"weights of tile {name!r} have shape {w.shape}; a {design.crossbar_rows}x"
                f"{design.crossbar_cols} {design.encoding} crossbar holds from (1, 1) up to "
                f"at most ({design.crossbar_rows}, {lcols})")
        if w.dtype.str not in WEIGHT_DTYPES:
            raise NetlistError(f"weights of tile {name!r} have dtype {w.dtype} ({w.dtype.str}); "
                               f"use one of {', '.join(WEIGHT_DTYPES)}")
        if w.dtype.kind == "f" and not np.isfinite(w).all():
            raise NetlistError(f"weights of tile {name!r} contain NaN or inf; a crossbar cell "
                               "holds a finite conductance")


def check_row_signals(design: Design, matrix: str, rs: Any, units: dict | None = None) -> None:
    """Raise NetlistError unless ``rs`` (design.row_signals[matrix]) is well formed and says
    exactly what the design's input nets into ``matrix`` say: per (producer, tile), the rows of
    the tile's row block that producer drives and the tile's column block uses = the net width."""
    units = design.units_by_name() if units is None else units
    where = f"row_signals[{_short(matrix)}]"
    if not is_name(matrix):
        raise NetlistError(f"{where}: the matrix must be a name (printable ASCII, no whitespace)")
    if not isinstance(rs, RowSignals):
        raise NetlistError(f"{where} must be a mapping.design.RowSignals, got "
                           f"{type(rs).__name__}")
    prods = rs.producers
    if (not isinstance(prods, (tuple, list)) or not prods or not all(is_name(p) for p in prods)
            or len(set(prods)) != len(prods)):
        raise NetlistError(f"{where}.producers must be a non-empty sequence of distinct unit "
                           f"names, got {_short(prods)}")
    src, live = rs.source, rs.live
    if not (isinstance(src, np.ndarray) and src.ndim == 1 and src.dtype.kind in "iu"
            and isinstance(live, np.ndarray) and live.ndim == 2 and live.dtype == np.bool_
            and len(src) == len(live) and live.size > 0):
        raise NetlistError(f"{where}: source must be an (N,) int array and live an (N, B) bool "
                           "array with N, B >= 1")
    n, nb = live.shape
    if n * nb > MAX_ROW_SIGNAL_CELLS:
        raise NetlistError(f"{where}: {n} rows x {nb} column blocks exceed "
                           f"{MAX_ROW_SIGNAL_CELLS} row signals")
    if src.min() < 0 or src.max() >= len(prods):
        raise NetlistError(f"{where}: source indices must be in 0..{len(prods) - 1} (one per "
                           "producer)")
    r = design.crossbar_rows
    i, b = np.nonzero(live)  # every (row, column block) with a wire
    keys = np.stack([src[i], i // r, b], axis=1)  # (producer, row block, column block)
    want, width = np.unique(keys, axis=0, return_counts=True) if len(keys) else (
        np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64))
    index = {p: k for k, p in enumerate(prods)}
    got = []
    for k, net in enumerate(design.nets):
        if net.kind != "input" or net.matrix != matrix:
            continue
        if net.src not in index:
            raise NetlistError(f"net {k} ({net.src} -> {net.dst}) feeds {matrix!r} from a unit "
                               f"that is not one of {where}.producers")
        a, cb = units[net.dst].block
        got.append((index[net.src], a, cb, net.width))
    got_a = np.array(sorted(got), dtype=np.int64).reshape(-1, 4)
    want_a = np.concatenate([want, width[:, None]], axis=1).astype(np.int64)
    if not np.array_equal(got_a, want_a):
        raise NetlistError(f"{where} disagrees with the input nets of {matrix!r} (per producer "
                           "and tile, the live rows must equal the net width); rebuild the "
                           "design with map_model")
