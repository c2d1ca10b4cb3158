"""Netlist export of a mapped design: JSON (schema v2), SPICE (ngspice) and structural Verilog."""

from netlists._common import NetlistError
from netlists.conductance import SpiceConfig, logical_currents, tile_conductances
from netlists.json_io import JsonNetlist, read_json, read_netlist, write_json
from netlists.json_schema import SCHEMA_PATH
from netlists.ngspice import SpiceResult, run_ngspice
from netlists.spice import write_spice
from netlists.verilog import write_verilog

__all__ = [
    "SCHEMA_PATH", "JsonNetlist", "NetlistError", "SpiceConfig", "SpiceResult", "logical_currents",
    "read_json", "read_netlist", "run_ngspice", "tile_conductances", "write_json",
    "write_spice", "write_verilog",
]
