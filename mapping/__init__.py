"""Crossbar mapping: matrices -> tiles, area, nets and a tile-level functional simulation.

    >>> from mapping import CrossbarSpec, map_model, map_matrix
    >>> net = map_model(model, CrossbarSpec(64, 64), input_shape=(1, 28, 28))
    >>> print(net.n_crossbars, net.cell_area_ratio, net.crossbar_area_ratio)
    >>> design = net.design      # units + nets for placement and routing
    >>> y = net.forward(x)       # == model(x), computed crossbar by crossbar

See hardware-model.md sections 1-3 and mapping/README.md.
"""

from mapping.design import Design, Net, Unit
from mapping.devices import CrossbarSimulator, DeviceModel
from mapping.extract import DataflowError, UnmappableLayerError
from mapping.network import Baseline, MappedLayer, MappedNetwork, map_model
from mapping.partition import MappedMatrix, map_matrix
from mapping.report import format_table, to_csv, to_dict, write_reports
from mapping.spec import ENCODINGS, CrossbarSpec, Technology

__all__ = [
    "ENCODINGS",
    "Baseline",
    "CrossbarSimulator",
    "CrossbarSpec",
    "DataflowError",
    "Design",
    "DeviceModel",
    "MappedLayer",
    "MappedMatrix",
    "MappedNetwork",
    "Net",
    "Technology",
    "Unit",
    "UnmappableLayerError",
    "format_table",
    "map_matrix",
    "map_model",
    "to_csv",
    "to_dict",
    "write_reports",
]
