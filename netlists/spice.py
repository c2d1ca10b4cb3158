"""SPICE netlist: one subcircuit per crossbar tile, a top level that drives and reads them.

Each tile ``xb<k>`` (k = index of the tile in design.units) has ports wl0..wl<R-1> (word lines)
and bl0..bl<C-1> (physical bit lines); cell (i, j) is a resistor of 1/G[i, j] ohm between word
line i and bit line j, with G from netlists.conductance (the documented linear map). With
r_wire_ohm > 0 every word line is a chain of resistors driven at column 0 and every bit line a
chain read at row R-1 (one segment per cell), so the IR drop shows. The top level drives word
line i of tile k with ``V<k>_wl<i>`` (input volts) and holds bit line j at virtual ground with a
0 V source ``V<k>_bl<j>``; ngspice reports its current i(v<k>_bl<j>) (positive = flowing out of
the crossbar). Word lines of rows that are all zero in the tile (no input wire) are tied to 0 V.
The crossbars are analog only: output units (ADC/neuron) are not simulated.

Weight precision (design.weight_bits / cell_bits, netlists.conductance): quantized weights map
their integers q with w_max = 2**(weight_bits-1) - 1. Bit-sliced weights (design.slices = K > 1)
give every tile K crossbar subcircuits ``xb<k>s<j>`` (j = 0..K-1, ``* @slice`` comments), each
holding digit j of |q| (signed like q), all on the tile's word-line nodes (the slices share its
input bus), each with its own 0 V bit-line sensors ``V<k>s<j>_bl<b>``; the header's
``* @slices K shifts ...`` line gives the factors 2**(cell_bits j) of the periphery's shift and
add, which ``run_ngspice`` applies in ``SpiceResult.logical_amps``.
"""

import functools
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from common.io import output_error
from mapping.design import Design
from netlists._common import NetlistError, as_design, atomic_open, check_design
from netlists.conductance import SpiceConfig, slice_conductances, slice_shifts


def _ports(prefix: str, names: list[str], per_line: int = 16) -> str:
    chunks = [" ".join(names[i:i + per_line]) for i in range(0, len(names), per_line)]
    return prefix + "\n+ ".join(chunks)


@functools.lru_cache(maxsize=64)
def _cell_template(rows: int, cols: int, r_wire: float) -> str:
    """Resistor lines of a rows x cols array with one '%r' per cell (row-major), wires literal."""
    i, j = np.indices((rows, cols)).reshape(2, -1)  # (rows*cols,) each, row-major
    if r_wire == 0:
        cells = [f"R{a}_{b} wl{a} bl{b} %r" for a, b in zip(i.tolist(), j.tolist(), strict=True)]
        return "\n".join(cells) + "\n"
    r = repr(float(r_wire))
    cells = [f"R{a}_{b} w{a}_{b} b{a}_{b} %r" for a, b in zip(i.tolist(), j.tolist(), strict=True)]
    wl = [f"RW{a}_{b} {f'w{a}_{b - 1}' if b else f'wl{a}'} w{a}_{b} {r}"
          for a, b in zip(i.tolist(), j.tolist(), strict=True)]
    bl = [f"RB{a}_{b} b{a}_{b} {f'b{a + 1}_{b}' if a < rows - 1 else f'bl{b}'} {r}"
          for a, b in zip(i.tolist(), j.tolist(), strict=True)]
    return "\n".join(cells + wl + bl) + "\n"


def tile_inputs(design: Design, inputs: Mapping[str, Any] | None,
                config: SpiceConfig) -> dict[str, np.ndarray]:
    """Tile name -> word-line volts (rows_in_tile,). ``inputs`` keys are tile names (a vector of
    rows_in_tile volts) or matrix names (a vector over the matrix rows; tile (a, b) takes
    rows [a * crossbar_rows, a * crossbar_rows + rows_in_tile)); missing -> v_read_volt.
    Rows that are all zero in a tile have no input wire (hardware model section 4): 0 V."""
    inputs = dict(inputs or {})
    tiles = {u.name: u for u in design.units if u.kind == "tile"}
    matrices = {u.matrix for u in tiles.values()}
    unknown = [k for k in inputs if k not in tiles and k not in matrices]
    if unknown:
        raise NetlistError(f"inputs name {unknown}, which are neither tiles nor matrices of the "
                           "design")
    out = {}
    for name, w in design.tile_weights.items():
        rows, u = np.shape(w)[0], tiles[name]
        if name in inputs:
            v = np.asarray(inputs[name], dtype=np.float64).reshape(-1)
            what = f"inputs[{name!r}]"
        elif u.matrix in inputs:
            full = np.asarray(inputs[u.matrix], dtype=np.float64).reshape(-1)
            start = u.block[0] * design.crossbar_rows
            v, what = full[start:start + rows], f"inputs[{u.matrix!r}][{start}:{start + rows}]"
        else:
            v, what = np.full(rows, config.v_read_volt), "v_read_volt"
        if v.shape != (rows,) or not np.all(np.isfinite(v)):
            raise NetlistError(f"{what} must hold {rows} finite volts for tile {name!r}, got "
                               f"shape {v.shape}")
        out[name] = np.where(np.asarray(w).any(axis=1), v, 0.0)  # no input wire: grounded
    return out


def _cell(k: int, j: int, n_slices: int) -> str:
    """Subcircuit / node prefix of slice j of tile k: ``xb<k>``, or ``xb<k>s<j>`` if sliced."""
    return f"xb{k}" if n_slices == 1 else f"xb{k}s{j}"


def _subckt(k: int, name: str, g: np.ndarray, r_wire: float, shifts) -> str:
    """The ``.subckt`` of every slice of one tile (g: (K, rows, bit lines)), with its ``* @tile``
    comment (and a ``* @slice`` comment per slice when K > 1)."""
    n_slices, rows, cols = g.shape
    out = [f"* @tile xb{k} {name} rows={rows} bitlines={cols}\n"]
    for j in range(n_slices):
        cell = _cell(k, j, n_slices)
        if n_slices > 1:
            out.append(f"* @slice {cell} of xb{k}: digit {j} of |q|, shift {shifts[j]:g}\n")
        ohms = tuple((1.0 / g[j]).ravel().tolist())  # row-major, as the template
        out.append(_ports(f".subckt {cell} ", [f"wl{i}" for i in range(rows)]
                          + [f"bl{b}" for b in range(cols)]) + "\n"
                   + _cell_template(rows, cols, r_wire) % ohms + f".ends {cell}\n")
    return "".join(out)


def _drivers(k: int, volts: np.ndarray, cols: int, n_slices: int = 1) -> str:
    """Top-level instances of tile k's slices on its word lines, the word-line sources and each
    slice's 0 V bit-line sensors."""
    wl = [f"xb{k}_wl{i}" for i in range(len(volts))]
    out = []
    for j in range(n_slices):
        cell = _cell(k, j, n_slices)
        out.append(_ports(f"X{cell} ", wl + [f"{cell}_bl{b}" for b in range(cols)])
                   + f" {cell}\n")
    out += [f"V{k}_wl{i} {n} 0 DC {v!r}\n"
            for i, (n, v) in enumerate(zip(wl, volts.tolist(), strict=True))]
    for j in range(n_slices):
        cell = _cell(k, j, n_slices)
        out += [f"V{cell[2:]}_bl{b} {cell}_bl{b} 0 DC 0\n" for b in range(cols)]
    return "".join(out)


def _header(design: Design, config: SpiceConfig, n_tiles: int, shifts) -> str:
    k = len(shifts)
    head = (f"* group-scissor crossbar netlist: {n_tiles} tiles"
            f"{f' of {k} slices' if k > 1 else ''}, "
            f"{design.crossbar_rows}x{design.crossbar_cols} crossbars\n"
            f"* @encoding {design.encoding}\n"
            f"* g_min={config.g_min_siemens!r} S g_max={config.g_max_siemens!r} S "
            f"r_wire={config.r_wire_ohm!r} ohm per cell segment\n"
            "* cell G from the weights by the linear map of docs/netlists.md; "
            f"bit-line currents = i(v<k>{'s<j>' if k > 1 else ''}_bl<b>)\n")
    if design.weight_bits is None:
        return head
    b = design.weight_bits
    head += (f"* weights of {b} bits: q = round(w / s), s = max|w| / {2 ** (b - 1) - 1} per "
             "matrix")
    if k == 1:
        return head + f"; cells hold q with w_max = {2 ** (b - 1) - 1}\n"
    c = int(round(np.log2(shifts[1])))
    return head + (
        f"; |q| sliced into {k} digits of {c} bits (cell_bits), signed like q\n"
        f"* @slices {k} shifts {' '.join(f'{x:g}' for x in shifts)}\n"
        f"* tile xb<k> = {k} crossbars xb<k>s0..xb<k>s{k - 1} on its word lines; slice j holds "
        f"digit j with w_max = {2 ** c - 1}; the periphery shifts and adds:\n"
        "* y = sum_j shift_j * (I+_j - I-_j) (differential; offset: I_j - I_ref,j; unsigned: "
        f"I_j) = (g / (s * {2 ** c - 1})) * (s q)^T v\n")


_TOP_COMMENT = "\n* top level: word-line drivers and virtual-ground bit-line sensors\n"


def tiles_folder(path: str | os.PathLike) -> Path:
    """The folder of the per-tile decks of the top deck ``path``: ``<stem>.tiles`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.tiles")


_OURS = re.compile(r"^xb\d+\.(sp|inc)$")


def _replace_folder(tmp: Path, folder: Path) -> None:
    """Move the finished folder ``tmp`` onto ``folder`` (an older one of ours is removed)."""
    old = None
    if folder.exists():
        if not folder.is_dir() or not all(_OURS.match(p.name) for p in folder.iterdir()):
            raise NetlistError(f"{folder} exists and holds files write_spice did not write; move "
                               "it away or choose another path")
        old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
        folder.rename(old / folder.name)
    tmp.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_spice(design: Any, path: str | os.PathLike, inputs: Mapping[str, Any] | None = None,
                config: SpiceConfig | None = None, tiles: Iterable[str] | None = None,
                per_tile: bool = False) -> Path:
    """Write the SPICE netlist of every tile of ``design`` (Design or MappedNetwork) to ``path``.

    inputs: word-line volts per tile or per matrix (see tile_inputs); config: conductance range,
    default read voltage and wire resistance per cell segment; tiles: names of the tiles to
    write (default all; conductance scales still come from whole matrices). Needs
    design.tile_weights.
    per_tile: also write the folder ``<stem>.tiles/`` (``tiles_folder(path)``) with, per tile
    xb<k>, its subcircuit ``xb<k>.inc`` and a standalone deck ``xb<k>.sp`` (the tile, its
    drivers and sensors, ``.op``); the top deck ``path`` then ``.include``s the subcircuits
    instead of holding them. The tiles are independent circuits, so simulating the decks one by
    one (``run_ngspice(path, per_tile=True)``) costs time linear in tiles, while one deck with
    wire resistance grows faster than that in ngspice's matrix ordering.
    A design with weight_bits holds its quantized weights; a bit-sliced one writes every tile as
    its slices' subcircuits (module docstring).
    Returns the path; simulate it with run_ngspice(path).
    """
    design = as_design(design)
    config = config or SpiceConfig()
    check_design(design, need_weights=True)
    empty = [n for n, w in design.tile_weights.items() if 0 in np.shape(w)]
    if empty:
        raise NetlistError(f"tile {empty[0]!r} has an empty weight block; a built tile holds at "
                           "least one row and one column")
    G = slice_conductances(design, config)  # name -> (slices, rows, bit lines) siemens
    shifts = slice_shifts(design)
    n_slices = len(shifts)
    volts = tile_inputs(design, inputs, config)
    index = {u.name: k for k, u in enumerate(design.units)}
    all_tiles = [u.name for u in design.units if u.kind == "tile"]
    if tiles is None:
        tiles = all_tiles
    else:
        tiles = list(dict.fromkeys(tiles))
        unknown = sorted(set(tiles) - set(all_tiles))
        if unknown or not tiles:
            raise NetlistError(f"tiles={unknown or tiles} must name tiles of the design, e.g. "
                               f"{all_tiles[:3]}")
    r_wire = config.r_wire_ohm
    if not per_tile:
        with atomic_open(path) as f:
            f.write(_header(design, config, len(tiles), shifts))
            for name in tiles:
                f.write("\n" + _subckt(index[name], name, G[name], r_wire, shifts))
            f.write(_TOP_COMMENT)
            for name in tiles:
                f.write(_drivers(index[name], volts[name], G[name].shape[2], n_slices))
            f.write("\n.op\n.end\n")
        return Path(path)
    path = Path(path)
    folder = tiles_folder(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=path.parent))
    except OSError as e:
        err = output_error(e, folder)
        if err is None:
            raise
        raise err from None
    try:
        for name in tiles:
            k, g = index[name], G[name]
            (tmp / f"xb{k}.inc").write_text(_subckt(k, name, g, r_wire, shifts))
            (tmp / f"xb{k}.sp").write_text(
                _header(design, config, 1, shifts) + f"* @tile xb{k} {name} rows={g.shape[1]} "
                f"bitlines={g.shape[2]}\n.include \"xb{k}.inc\"\n" + _TOP_COMMENT
                + _drivers(k, volts[name], g.shape[2], n_slices) + "\n.op\n.end\n")
        _replace_folder(tmp, folder)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = output_error(e, folder) if isinstance(e, OSError) else None
        if err is None:
            raise
        raise err from None
    with atomic_open(path) as f:
        f.write(_header(design, config, len(tiles), shifts))
        f.write(f"* @tiles {folder.name}\n* one standalone deck per tile: {folder.name}/xb<k>.sp\n")
        for name in tiles:
            k, (_, rows, cols) = index[name], G[name].shape
            f.write(f"\n* @tile xb{k} {name} rows={rows} bitlines={cols}\n"
                    f".include \"{folder.name}/xb{k}.inc\"\n")
        f.write(_TOP_COMMENT)
        for name in tiles:
            f.write(_drivers(index[name], volts[name], G[name].shape[2], n_slices))
        f.write("\n.op\n.end\n")
    return path
