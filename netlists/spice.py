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
"""

import functools
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mapping.design import Design
from netlists._common import NetlistError, as_design, atomic_open, check_design
from netlists.conductance import SpiceConfig, tile_conductances


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


def write_spice(design: Any, path: str | os.PathLike, inputs: Mapping[str, Any] | None = None,
                config: SpiceConfig | None = None, tiles: Iterable[str] | None = None) -> Path:
    """Write the SPICE netlist of every tile of ``design`` (Design or MappedNetwork) to ``path``.

    inputs: word-line volts per tile or per matrix (see tile_inputs); config: conductance range,
    default read voltage and wire resistance per cell segment; tiles: names of the tiles to
    write (default all; conductance scales still come from whole matrices). Needs
    design.tile_weights.
    Returns the path; simulate it with run_ngspice(path).
    """
    design = as_design(design)
    config = config or SpiceConfig()
    check_design(design, need_weights=True)
    empty = [n for n, w in design.tile_weights.items() if 0 in np.shape(w)]
    if empty:
        raise NetlistError(f"tile {empty[0]!r} has an empty weight block; a built tile holds at "
                           "least one row and one column")
    G = tile_conductances(design, config)  # name -> (rows, bit lines) siemens
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
    with atomic_open(path) as f:
        f.write(f"* group-scissor crossbar netlist: {len(tiles)} tiles, "
                f"{design.crossbar_rows}x{design.crossbar_cols} crossbars\n"
                f"* @encoding {design.encoding}\n"
                f"* g_min={config.g_min_siemens!r} S g_max={config.g_max_siemens!r} S "
                f"r_wire={config.r_wire_ohm!r} ohm per cell segment\n"
                "* cell G from the weights by the linear map of docs/netlists.md; "
                "bit-line currents = i(v<k>_bl<j>)\n")
        for name in tiles:
            k, g = index[name], G[name]
            rows, cols = g.shape
            f.write(f"\n* @tile xb{k} {name} rows={rows} bitlines={cols}\n")
            f.write(_ports(f".subckt xb{k} ", [f"wl{i}" for i in range(rows)]
                           + [f"bl{j}" for j in range(cols)]) + "\n")
            ohms = tuple((1.0 / g).ravel().tolist())  # row-major, as the template
            f.write(_cell_template(rows, cols, config.r_wire_ohm) % ohms)
            f.write(f".ends xb{k}\n")
        f.write("\n* top level: word-line drivers and virtual-ground bit-line sensors\n")
        for name in tiles:
            k, (rows, cols) = index[name], G[name].shape
            wl, bl = [f"xb{k}_wl{i}" for i in range(rows)], [f"xb{k}_bl{j}" for j in range(cols)]
            f.write(_ports(f"Xxb{k} ", wl + bl) + f" xb{k}\n")
            f.write("".join(f"V{k}_wl{i} {n} 0 DC {v!r}\n"
                            for i, (n, v) in enumerate(zip(wl, volts[name].tolist(), strict=True))))
            f.write("".join(f"V{k}_bl{j} {n} 0 DC 0\n" for j, n in enumerate(bl)))
        f.write("\n.op\n.end\n")
    return Path(path)
