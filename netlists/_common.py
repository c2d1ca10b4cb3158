"""Shared helpers: accept a Design or a MappedNetwork, check it, and write files atomically."""

from typing import Any

import numpy as np

from common.errors import UserError
from common.io import atomic_open  # noqa: F401  (re-exported for the writers)
from mapping.design import Design

ENCODINGS = ("differential", "offset", "unsigned")


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


def check_design(design: Design, *, need_weights: bool = False) -> None:
    """Raise NetlistError if names, nets or weight blocks are inconsistent with the crossbar."""
    if design.encoding not in ENCODINGS:
        raise NetlistError(f"design.encoding is {design.encoding!r}; use one of {ENCODINGS}")
    if design.crossbar_rows < 1 or design.crossbar_cols < 1:
        raise NetlistError(
            f"crossbar size {design.crossbar_rows}x{design.crossbar_cols} must be positive")
    lcols = logical_cols(design.crossbar_cols, design.encoding)
    if lcols < 1:
        raise NetlistError(f"a {design.crossbar_cols}-column crossbar holds no logical column with "
                           f"encoding {design.encoding!r}; use more columns")
    names = [u.name for u in design.units]
    bad = [n for n in names if not isinstance(n, str) or not n or any(c.isspace() for c in n)]
    if bad:
        raise NetlistError(f"unit name {bad[0]!r} must be a non-empty string without whitespace "
                           "(e.g. 'fc1/T0_0')")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise NetlistError(f"unit names must be unique; duplicated: {dup}")
    kinds = {u.name: u.kind for u in design.units}
    for i, n in enumerate(design.nets):
        for end in (n.src, n.dst):
            if end not in kinds:
                raise NetlistError(f"net {i} ({n.src} -> {n.dst}) names unknown unit {end!r}")
    for name, w in design.tile_weights.items():
        if kinds.get(name) != "tile":
            raise NetlistError(f"tile_weights has key {name!r}, which is not a tile unit")
        w = np.asarray(w)
        if w.ndim != 2 or w.shape[0] > design.crossbar_rows or w.shape[1] > lcols:
            raise NetlistError(
                f"weights of tile {name!r} have shape {w.shape}; a {design.crossbar_rows}x"
                f"{design.crossbar_cols} {design.encoding} crossbar holds at most "
                f"({design.crossbar_rows}, {lcols})")
        if w.dtype.kind not in "fiub":
            raise NetlistError(f"weights of tile {name!r} have dtype {w.dtype}; use a number dtype")
    if need_weights:
        missing = [n for n, k in kinds.items() if k == "tile" and n not in design.tile_weights]
        if missing:
            raise NetlistError(f"design has no weights for tiles {missing[:5]}"
                               f"{' ...' if len(missing) > 5 else ''}; map the model with "
                               "weights (MappedNetwork.design.tile_weights) to export them")


