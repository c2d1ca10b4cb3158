"""The physical stages, each reading the previous stage's files (as OpenROAD's flow reads
``4_cts.odb`` and writes ``5_1_grt.odb``); none maps the model a second time.

    map     model + checkpoint  -> design.json (+ design.weights.npz): units, nets, row signals,
                                   tile weights; dense.json: the dense baseline's units and nets;
                                   mapping.json/.csv/.txt; energy.json (no interconnect);
                                   metrics.json
    route   design.json, dense.json -> routed.json (the design with its sites and routes, no
                                   weights), placement.json, routes.json, routing.json,
                                   floorplan.png, congestion.png (and dense_*.png);
                                   energy.json (with the routed interconnect, when the map
                                   stage's energy.json sits beside design.json); metrics.json
    export  design.json + routed.json -> chip.json (weights, sites, routes), chip.sp, chip.v;
                                   metrics.json

The design files are JSON netlists (netlists/netlist.schema.json), so a design made elsewhere
can enter at route or export.
"""

import dataclasses
import json
import os
from pathlib import Path

from common.errors import UserError
from common.io import write_json

DESIGN, DENSE, ROUTED = "design.json", "dense.json", "routed.json"
ENERGY = "energy.json"  # mapping.energy's report: map (no interconnect), route (with it)
FORMATS = {"json": ".json", "spice": ".sp", "verilog": ".v"}


def technology(spec) -> dict:
    """What a design file records of the technology: the spec's Technology and the conductance
    map of the SPICE export."""
    from netlists.conductance import SpiceConfig

    return {**dataclasses.asdict(SpiceConfig()), **spec.tech.to_dict()}


def spec_of(netlist):
    """The CrossbarSpec a design file was mapped with (crossbar, encoding, weight precision
    and slices, technology)."""
    from mapping.spec import CrossbarSpec, Technology

    d = netlist.design
    names = {f.name for f in dataclasses.fields(Technology)}
    tech = Technology(**{k: v for k, v in netlist.technology.items() if k in names})
    return CrossbarSpec(d.crossbar_rows, d.crossbar_cols, d.encoding, tech, d.weight_bits,
                        d.cell_bits)


def map_stage(model_name: str, checkpoint, spec, out: str | os.PathLike) -> dict:
    """Map registered model ``model_name`` (weights from ``checkpoint``, None: fresh) onto
    ``spec``; write the files listed above; return the metrics."""
    import models
    from mapping.energy import energy as energy_report
    from mapping.energy import summary as energy_summary
    from mapping.network import map_model
    from mapping.report import write_reports
    from models.checkpoint import load_model
    from netlists import write_json as write_netlist

    out = Path(out)
    mapped = map_model(load_model(model_name, checkpoint), spec, models.info(model_name).input_shape)
    tech = technology(spec)
    write_reports(mapped, out, {"model": model_name,
                                "checkpoint": None if checkpoint is None else str(checkpoint)})
    write_netlist(mapped, out / DESIGN, weights="npz", technology=tech)
    write_netlist(mapped.dense_baseline().design, out / DENSE, weights="none", technology=tech)
    energy = energy_report(mapped).to_dict()  # without interconnect: nothing is routed yet
    write_json(out / ENERGY, energy)
    metrics = {"n_crossbars": mapped.n_crossbars, "slices": spec.slices, "cells": mapped.cells,
               "cell_area_ratio": mapped.cell_area_ratio,
               "crossbar_area_ratio": mapped.crossbar_area_ratio, "area_um2": mapped.area_um2,
               "total_wires": mapped.total_wires, "dense_wires": mapped.baseline.total_wires,
               "units": len(mapped.design.units), "nets": len(mapped.design.nets),
               "energy": energy_summary(energy)}
    write_json(out / "metrics.json", metrics)
    return metrics


def design_file(path: str | os.PathLike, name: str = DESIGN) -> Path:
    """``path`` itself if a file, else ``path/name`` (a map stage's folder)."""
    p = Path(path)
    p = p / name if p.is_dir() else p
    if not p.is_file():
        raise UserError(f"no design file at {p}; pass the design.json written by "
                        "'group-scissor map' (or its folder), or a --checkpoint to map first")
    return p


def route_stage(design: str | os.PathLike, out: str | os.PathLike, place_cfg=None,
                route_settings: dict | None = None) -> dict:
    """Place and route the design in ``design`` (file or map folder) and the dense baseline
    beside it (dense.json; absent: no routing_area_ratio) with the same settings; write the
    files listed above. The spec is the design file's (spec_of: its weight slices size the
    sites and count in the energy).
    ``route_settings``: RouteConfig fields over the grid its technology gives."""
    from mapping.congestion import plot_congestion, plot_floorplan, report, routes_to_dict
    from mapping.placement import PlaceConfig
    from mapping.routing import RouteConfig
    from netlists import read_netlist
    from netlists import write_json as write_netlist

    out = Path(out)
    path = design_file(design)
    net = read_netlist(path)
    dense_path = path.with_name(DENSE)
    dense = read_netlist(dense_path).design if dense_path.is_file() else None
    place_cfg = place_cfg if place_cfg is not None else PlaceConfig()
    spec = spec_of(net)
    route_cfg = RouteConfig.for_spec(spec, **(route_settings or {}))
    d = net.design
    # a site holds one tile: its spec.slices crossbars when the weights are bit-sliced
    res, resd = route_with_baseline(d, dense, place_cfg, route_cfg,
                                    spec.crossbar_area_um2 * spec.slices)
    pl, rt = res.placement, res.routing
    pld, rtd = (None, None) if resd is None else (resd.placement, resd.routing)
    rep = report(rt, dense=rtd).to_dict()
    rep["routable"] = res.to_dict()
    rep["slices"] = spec.slices  # crossbars per tile (site); in crossbar_area_um2 and energy
    if resd is not None:
        rep["routable"]["dense"] = resd.to_dict()
    rep["place"] = {"method": pl.method, "status": pl.status, "cost": pl.cost,
                    "grid_sites": list(pl.grid_sites),
                    "dense_cost": None if pld is None else pld.cost}
    write_json(out / "placement.json", pl.to_dict(), indent=1)
    write_json(out / "routes.json", routes_to_dict(d, rt), indent=1)
    write_netlist(net, out / ROUTED, pl, rt, weights="none")
    plot_floorplan(d, pl, rt, out / "floorplan.png")
    plot_congestion(rt, out / "congestion.png")
    if rtd is not None:
        plot_floorplan(dense, pld, rtd, out / "dense_floorplan.png")
        plot_congestion(rtd, out / "dense_congestion.png")
    mapped_energy = path.with_name(ENERGY)  # the map stage's: evaluations per matrix
    if mapped_energy.is_file():
        from mapping.energy import routed_energy, summary

        energy = routed_energy(json.loads(mapped_energy.read_text()), d, dense,
                               spec, rt, rtd).to_dict()
        write_json(out / ENERGY, energy)
        rep["energy"] = summary(energy)
    write_json(out / "routing.json", rep, indent=1)
    write_json(out / "metrics.json", rep, indent=1)
    return rep


def route_with_baseline(d, dense, place_cfg, route_cfg, site_area_um2: float):
    """(Routable of design ``d``, Routable of its dense baseline ``dense`` or None): both by
    ``route_routable`` with the same settings, laid down the same way (trees or not, decided on
    the baseline, the bigger), so that routing_area_ratio compares like with like. A baseline
    equal to the design (a dense model) is routed once. ``site_area_um2``: one tile, i.e. a
    crossbar with its periphery times the weight slices (spec.slices). What the route stage
    does, without its files (benchmarks/energy.py)."""
    from mapping.routing import route_routable, wants_trees

    trees = wants_trees(dense if dense is not None else d, route_cfg)
    res = route_routable(d, place_cfg, route_cfg, trees=trees, site_area_um2=site_area_um2)
    if dense is None:  # a design made elsewhere, without its baseline: no ratio to report
        return res, None
    if _same(d, dense):  # same input and settings, same result: do it once
        return res, res
    return res, route_routable(dense, place_cfg, route_cfg, trees=trees,
                               site_area_um2=site_area_um2)


def _same(a, b) -> bool:
    """Two designs with the same units and nets (a dense model equals its baseline)."""
    return ([u.name for u in a.units] == [u.name for u in b.units]
            and [(n.src, n.dst, n.width) for n in a.nets] == [(n.src, n.dst, n.width)
                                                              for n in b.nets])


def export_stage(design: str | os.PathLike, out: str | os.PathLike, formats=tuple(FORMATS),
                 routed: str | os.PathLike | None = None, name: str = "chip") -> dict:
    """Write the netlists of the design in ``design`` (file or map folder): ``name``.json with
    the sites and routes of ``routed`` (a route stage's routed.json or its folder; None: no
    layout), ``name``.sp, ``name``.v. Files of formats not asked for are removed, so the folder
    never mixes two designs."""
    from netlists import read_netlist, write_spice, write_verilog
    from netlists import write_json as write_netlist

    out = Path(out)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UserError(f"unknown netlist format(s) {bad}; choose from {', '.join(FORMATS)}")
    net = read_netlist(design_file(design))
    layout = None
    if routed is not None:
        layout = read_netlist(design_file(routed, ROUTED))
        if _names(layout.design) != _names(net.design):
            raise UserError(f"{routed} is the layout of another design than {design}; route "
                            "this design first")
    writers = {"json": lambda p: write_netlist(net, p, layout, layout and layout.routes),
               "spice": lambda p: write_spice(net, p), "verilog": lambda p: write_verilog(net, p)}
    written = {}
    for f, suffix in FORMATS.items():
        path = out / f"{name}{suffix}"
        if f in formats:  # by name: compile writes into a temporary folder renamed after
            written[f] = Path(writers[f](path)).name
        else:
            path.unlink(missing_ok=True)
            if f == "json":
                path.with_name(f"{name}.weights.npz").unlink(missing_ok=True)
    d = net.design
    metrics = {"files": written, "crossbars": d.n_crossbars,  # tiles x weight slices
               "tiles": sum(u.kind == "tile" for u in d.units), "slices": d.slices,
               "nets": len(d.nets), "wires": d.total_wires, "layout": layout is not None}
    write_json(out / "metrics.json", metrics)
    return metrics


def _names(d) -> tuple:
    return tuple(u.name for u in d.units), tuple((n.src, n.dst, n.width) for n in d.nets)
