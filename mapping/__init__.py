"""Crossbar mapping: matrices -> tiles, area, nets and a tile-level functional simulation.

    >>> from mapping import CrossbarSpec, map_model, map_matrix
    >>> net = map_model(model, CrossbarSpec(64, 64), input_shape=(1, 28, 28))
    >>> print(net.n_crossbars, net.cell_area_ratio, net.crossbar_area_ratio)
    >>> design = net.design      # units + nets for placement and routing
    >>> y = net.forward(x)       # == model(x), computed crossbar by crossbar
    >>> pl = place(design); rt = route(design, pl)   # wirelength, congestion, routing area

See hardware-model.md sections 1-3 and mapping/README.md.
"""

from mapping.congestion import RoutingReport, plot_congestion, plot_floorplan, routing_area_ratio
from mapping.congestion import report as routing_report
from mapping.design import Design, Net, Unit
from mapping.devices import DeviceModel
from mapping.extract import DataflowError, UnmappableLayerError
from mapping.irdrop import bitline_currents, effective_conductances
from mapping.network import Baseline, MappedLayer, MappedNetwork, map_model
from mapping.partition import MappedMatrix, map_matrix
from mapping.placement import PlaceConfig, Placement, place
from mapping.report import format_table, to_csv, to_dict, write_reports
from mapping.routing import RouteConfig, Routing, route
from mapping.simulate import CrossbarSimulator
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
    "PlaceConfig",
    "Placement",
    "RouteConfig",
    "Routing",
    "RoutingReport",
    "Technology",
    "Unit",
    "UnmappableLayerError",
    "bitline_currents",
    "effective_conductances",
    "format_table",
    "map_matrix",
    "map_model",
    "place",
    "plot_congestion",
    "plot_floorplan",
    "route",
    "routing_area_ratio",
    "routing_report",
    "to_csv",
    "to_dict",
    "write_reports",
]
