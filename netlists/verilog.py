"""Structural Verilog of the chip: one instance per unit, one wire per net, same connectivity as
the JSON netlist.

- ``xbar_tile #(ROWS, COLS, SLICES)``: a crossbar with its periphery; ``wl`` = the
  concatenation of its input buses (driven word lines), ``bl`` = the concatenation of its
  output buses. With bit-sliced weights (design.slices > 1) a tile is SLICES crossbars that
  share ``wl`` and whose results the periphery shifts and adds into ``bl`` (hardware-model
  section 2): one instance, counted as SLICES crossbars in the header.
- ``output_unit #(N_IN, N_OUT)``: accumulator / ADC / neuron of a column block; ``psum`` = the
  concatenation of the tile buses it sums, ``y`` = the concatenation of the buses it drives, or
  (for the last layer) its slice of the chip output ``OUT``.
- The network input unit ``IN`` is the top-level input port; each of its buses is a slice of it.
Both modules are (* blackbox *): the analog behaviour lives in the SPICE netlist. Wire ``n<k>``
is net k of ``design.nets`` (the JSON netlist's net id). Unit names are escaped identifiers
(``\\conv1/T0_0 ``) so they match the JSON netlist exactly.
"""

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from mapping.design import Design
from netlists._common import NetlistError, as_design, atomic_open, check_design

MODULES = """\
(* blackbox *)
module xbar_tile #(parameter ROWS = 1, parameter COLS = 1, parameter SLICES = 1) (
  input  wire [ROWS-1:0] wl,  // driven word lines (the tile's input buses), shared by its slices
  output wire [COLS-1:0] bl   // read-out columns (the tile's output buses), slices shift-added
);
endmodule

(* blackbox *)
module output_unit #(parameter N_IN = 1, parameter N_OUT = 1) (
  input  wire [N_IN-1:0] psum,  // partial sums from the tiles of this column block
  output wire [N_OUT-1:0] y     // neuron outputs (buses to the next layer, or chip OUT)
);
endmodule
"""
_CELL = {"tile": ("xbar_tile", "ROWS", "COLS", "wl", "bl"),
         "output": ("output_unit", "N_IN", "N_OUT", "psum", "y")}


def _esc(name: str) -> str:
    return "\\" + name + " "


def _cat(ids: list[int]) -> str:
    return "{" + ", ".join(f"n{i}" for i in ids) + "}" if ids else ""


def _block_widths(design: Design, units: dict) -> dict[tuple, int]:
    """(matrix, column block) -> logical columns of that block, from its tiles' weights."""
    out: dict[tuple, int] = {}
    for name, w in design.tile_weights.items():
        t = units[name]
        if t.block:
            out.setdefault((t.matrix, t.block[1]), int(np.shape(w)[1]))
    return out


def _block_width(design: Design, unit, widths: dict[tuple, int]) -> int:
    """Logical columns of an output unit's block (from its tiles' weights, else its buses)."""
    if unit.block and (unit.matrix, unit.block[1]) in widths:
        return widths[unit.matrix, unit.block[1]]
    return max([n.width for n in design.nets if n.dst == unit.name], default=1)


def write_verilog(design: Any, path: str | os.PathLike, top: str = "chip") -> Path:
    """Write the structural Verilog of ``design`` (Design or MappedNetwork) to ``path``."""
    design = as_design(design)
    check_design(design)
    if not re.fullmatch(r"[A-Za-z_]\w*", top):
        raise NetlistError(f"top module name {top!r} is not a Verilog identifier")
    ins: dict[str, list[int]] = {u.name: [] for u in design.units}
    outs: dict[str, list[int]] = {u.name: [] for u in design.units}
    for k, n in enumerate(design.nets):
        outs[n.src].append(k)
        ins[n.dst].append(k)
    units = design.units_by_name()
    inputs = [u for u in design.units if u.kind == "input"]
    # The chip's outputs are the output units of matrices that feed no other matrix. An output
    # unit of an inner matrix whose rows downstream were all deleted drives nothing: its y
    # stays unconnected rather than becoming a slice of OUT.
    feeding = {units[n.src].matrix for n in design.nets if units[n.src].kind == "output"}
    sinks = [u for u in design.units if u.kind == "output" and u.matrix not in feeding]
    widths = _block_widths(design, units)
    sink_w = {u.name: _block_width(design, u, widths) for u in sinks}
    n_slices = design.slices
    sliced = "" if n_slices == 1 else (
        f", {design.weight_bits}-bit weights in {n_slices} slices of {design.cell_bits}-bit "
        f"cells: {design.n_crossbars // n_slices} tiles x {n_slices} = {design.n_crossbars} "
        "crossbars (SLICES)")
    with atomic_open(path) as f:
        f.write(f"// group-scissor structural netlist: {len(design.units)} units, "
                f"{len(design.nets)} nets, {design.total_wires} wires\n"
                f"// crossbars {design.crossbar_rows}x{design.crossbar_cols} "
                f"({design.encoding}){sliced}; wire n<k> = JSON net id k\n\n" + MODULES + "\n")
        ports = [f"  input  wire [{max(sum(design.nets[k].width for k in outs[u.name]), 1) - 1}:0]"
                 f" {_esc(u.name)}" for u in inputs]
        if sinks:
            ports.append(f"  output wire [{sum(sink_w.values()) - 1}:0] OUT")
        f.write(f"module {top} (\n" + ",\n".join(ports) + "\n);\n")
        for k, n in enumerate(design.nets):
            f.write(f"  wire [{n.width - 1}:0] n{k};  // {n.src} -> {n.dst} ({n.kind}, "
                    f"{n.matrix})\n")
        for u in inputs:
            lo = 0
            for k in outs[u.name]:
                w = design.nets[k].width
                f.write(f"  assign n{k} = {_esc(u.name)}[{lo + w - 1}:{lo}];\n")
                lo += w
        lo = 0
        for u in design.units:
            if u.kind not in _CELL:
                continue
            cell, p_in, p_out, in_port, out_port = _CELL[u.kind]
            w_in = sum(design.nets[k].width for k in ins[u.name])
            if u.name in sink_w:
                w_out = sink_w[u.name]
                out_conn = f"OUT[{lo + w_out - 1}:{lo}]"
                lo += w_out
            else:
                w_out = sum(design.nets[k].width for k in outs[u.name])
                out_conn = _cat(outs[u.name])
            slices = f", .SLICES({n_slices})" if u.kind == "tile" and n_slices > 1 else ""
            f.write(f"  {cell} #(.{p_in}({max(w_in, 1)}), .{p_out}({max(w_out, 1)}){slices}) "
                    f"{_esc(u.name)} (.{in_port}({_cat(ins[u.name])}), "
                    f".{out_port}({out_conn}));\n")
        f.write("endmodule\n")
    return Path(path)


_WIRE = re.compile(r"^\s*wire \[(\d+):0\] n(\d+);", re.M)
_ASSIGN = re.compile(r"^\s*assign n(\d+) = \\(\S+) \[", re.M)
_INST = re.compile(r"^\s*(\w+) #\(.*?\) \\(\S+)\s+\(\.\w+\(([^)]*)\), \.\w+\(([^)]*)\)\);", re.M)


def verilog_connectivity(path: str | os.PathLike) -> Counter:
    """Parse a file written by write_verilog: Counter of (src unit, dst unit, width) buses."""
    text = Path(path).read_text()
    width = {int(k): int(h) + 1 for h, k in _WIRE.findall(text)}
    src = {int(k): name for k, name in _ASSIGN.findall(text)}
    dst = {}
    for _cell, name, conn_in, conn_out in _INST.findall(text):
        for k in re.findall(r"\bn(\d+)\b", conn_in):
            dst[int(k)] = name
        for k in re.findall(r"\bn(\d+)\b", conn_out):
            src[int(k)] = name
    dangling = sorted(set(width) - (set(src) & set(dst)))
    if dangling:
        raise NetlistError(f"{path}: wires {dangling[:5]} lack a driver or a sink")
    return Counter((src[k], dst[k], width[k]) for k in width)


def design_connectivity(design: Any) -> Counter:
    """Counter of (src, dst, width) over the nets of a Design (to compare with the Verilog)."""
    return Counter((n.src, n.dst, n.width) for n in as_design(design).nets)
