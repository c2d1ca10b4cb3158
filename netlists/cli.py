"""``group-scissor export``: map a model onto crossbars and write its netlists.

Registered by group_scissor/cli.py; also callable as a plain function.
"""

from pathlib import Path
from typing import Annotated

import typer

from netlists._common import ENCODINGS, NetlistError

FORMATS = ("json", "spice", "verilog", "all")
SUFFIX = {"json": ".json", "spice": ".sp", "verilog": ".v"}


def export_command(
    model: Annotated[str, typer.Option(help="Registered model name (see 'group-scissor models').")]
    = "lenet",
    checkpoint: Annotated[Path | None, typer.Option(
        help="Weights to export (checkpoint.pt); default: the untrained model.")] = None,
    format: Annotated[str, typer.Option(  # shadows the builtin: the option is --format
        "--format", help="json, spice, verilog or all.")] = "all",
    crossbar: Annotated[str, typer.Option(help="Crossbar size ROWSxCOLS, e.g. 64x64.")] = "64x64",
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("runs/netlists"),
    encoding: Annotated[str, typer.Option(
        help="Signed weights: differential, offset or unsigned.")] = "differential",
    layout: Annotated[bool, typer.Option(
        "--layout", help="Place and route first; store sites and routes in the JSON.")] = False,
) -> list[Path]:
    """Map MODEL onto crossbars and write OUT/<model>.json (+ .weights.npz), .sp and .v."""
    fmt = format.lower()
    if fmt not in FORMATS:
        raise NetlistError(f"--format {format!r} is not supported; use one of {', '.join(FORMATS)}")
    if encoding not in ENCODINGS:
        raise NetlistError(f"--encoding {encoding!r} is not supported; use one of "
                           f"{', '.join(ENCODINGS)}")
    import models
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec
    from models.checkpoint import load_model
    from netlists.json_io import write_json
    from netlists.spice import write_spice
    from netlists.verilog import write_verilog

    spec = CrossbarSpec.parse(crossbar, encoding=encoding)
    net = map_model(load_model(model, checkpoint), spec, models.info(model).input_shape)
    placement = routing = None
    if layout and fmt in ("json", "all"):
        from mapping.placement import place
        from mapping.routing import RouteConfig, route

        placement = place(net.design)
        routing = route(net.design, placement, RouteConfig.for_spec(spec))
        typer.echo(f"placed on {placement.grid_sites} sites, routed: wirelength "
                   f"{routing.wirelength}, overflow {routing.overflow}")
    tech = _technology(spec)
    writers = {"json": lambda p: write_json(net, p, placement, routing, technology=tech),
               "spice": lambda p: write_spice(net, p), "verilog": lambda p: write_verilog(net, p)}
    written = []
    for f in (("json", "spice", "verilog") if fmt == "all" else (fmt,)):
        path = writers[f](Path(out) / f"{model.lower()}{SUFFIX[f]}")
        typer.echo(f"{f:8s} {path}")
        written.append(path)
    d = net.design
    typer.echo(f"{model}: {sum(u.kind == 'tile' for u in d.units)} crossbars {spec}, "
               f"{len(d.nets)} nets, {d.total_wires} wires -> {out}")
    return written


def _technology(spec) -> dict:
    """Technology figures of the JSON netlist: conductance map + the spec's area/routing table."""
    import dataclasses

    from netlists.conductance import SpiceConfig

    return {**dataclasses.asdict(SpiceConfig()), **spec.tech.to_dict()}
