"""``group-scissor route``: map a model, place and route it and its dense baseline, write reports.

Register with ``app.command("route")(friendly_errors(route_command))``. Writes into OUT:
placement.json, routes.json, routing.json (wirelength, lower_bound, routing_area_um2,
routing_area_ratio against the dense baseline, congestion, per-layer figures), floorplan.png,
congestion.png and the dense baseline's dense_floorplan.png / dense_congestion.png.
The pipeline calls ``place_and_route(mapped, folder, place_cfg, route_cfg)`` directly.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from common.io import write_json
from mapping.congestion import plot_congestion, plot_floorplan, report, routes_to_dict
from mapping.placement import PlaceConfig, place
from mapping.routing import RouteConfig, route


def _write_json(path: Path, obj) -> Path:
    return write_json(path, obj, indent=1)


def _same(a, b) -> bool:
    """Two designs with the same units and nets (a dense model equals its baseline)."""
    return ([u.name for u in a.units] == [u.name for u in b.units]
            and [(n.src, n.dst, n.width) for n in a.nets] == [(n.src, n.dst, n.width)
                                                              for n in b.nets])


def place_and_route(mapped, out: str | os.PathLike, place_cfg: PlaceConfig | None = None,
                    route_cfg: RouteConfig | None = None) -> dict:
    """Place and route ``mapped`` (a mapping.network.MappedNetwork) and its dense baseline with
    the same settings; write the files listed in the module docstring; return routing.json."""
    if not hasattr(mapped, "dense_baseline"):
        raise TypeError(f"place_and_route needs a MappedNetwork (from mapping.map_model), got "
                        f"{type(mapped).__name__}; a bare Design has no dense baseline to compare "
                        "with: use mapping.place and mapping.route on it")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    place_cfg = place_cfg if place_cfg is not None else PlaceConfig()
    route_cfg = route_cfg if route_cfg is not None else RouteConfig.for_spec(mapped.spec)
    design, dense = mapped.design, mapped.dense_baseline().design
    pl = place(design, place_cfg)
    rt = route(design, pl, route_cfg)
    if _same(design, dense):  # same input and settings give the same result: do it once
        pld, rtd = pl, rt
    else:
        pld = place(dense, place_cfg)
        rtd = route(dense, pld, route_cfg)
    rep = report(rt, dense=rtd).to_dict()
    rep["place"] = {"method": pl.method, "status": pl.status, "cost": pl.cost,
                    "grid_sites": list(pl.grid_sites), "dense_cost": pld.cost}
    _write_json(out / "placement.json", pl.to_dict())
    _write_json(out / "routes.json", routes_to_dict(design, rt))
    plot_floorplan(design, pl, rt, out / "floorplan.png")
    plot_congestion(rt, out / "congestion.png")
    plot_floorplan(dense, pld, rtd, out / "dense_floorplan.png")
    plot_congestion(rtd, out / "dense_congestion.png")
    _write_json(out / "routing.json", rep)
    return rep


def route_command(
    model: Annotated[str, typer.Option(help="Registered model name, e.g. lenet or convnet.")]
    = "lenet",
    checkpoint: Annotated[Path | None, typer.Option(
        help="Trained (compressed) checkpoint; default: the dense randomly initialised model.")]
    = None,
    crossbar: Annotated[str, typer.Option(help="Crossbar size ROWSxCOLS, e.g. 64x64.")]
    = "64x64",
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("build/route"),
    encoding: Annotated[str, typer.Option(
        help="Signed-weight encoding: differential, offset or unsigned.")] = "differential",
    tech: Annotated[Path | None, typer.Option(
        help="TOML/JSON technology file (gcell_um, wire_pitch_um, routing_layers, areas).")]
    = None,
    tracks: Annotated[int | None, typer.Option(
        help="Tracks per gcell edge (default: gcell_um / wire_pitch_um x routing_layers).")]
    = None,
    place_method: Annotated[str, typer.Option(help="auto, cpsat or fast.")] = "auto",
    route_method: Annotated[str, typer.Option(help="auto, cpsat or negotiated.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of placement and routing.")] = 0,
) -> dict:
    """Map MODEL, place and route it and its dense baseline; write placement.json,
    routes.json, routing.json, floorplan.png and congestion.png into OUT."""
    from mapping.cli import load_for_mapping
    from mapping.network import map_model

    module, spec, info = load_for_mapping(model, checkpoint, crossbar, encoding, tech)
    mapped = map_model(module, spec, info.input_shape)
    rcfg = RouteConfig.for_spec(spec, method=route_method, seed=seed,
                                tracks_per_gcell_edge=tracks)
    rep = place_and_route(mapped, out, PlaceConfig(method=place_method, seed=seed), rcfg)
    ratio = rep["routing_area_ratio"]
    typer.echo(f"{info.name} on {spec}: wirelength {rep['wirelength']} (lower bound "
               f"{rep['signal_bound']}), routing area {rep['routing_area_um2']:.4g} um2 = "
               f"{ratio:.2%} of dense; congestion max {rep['max_congestion']:.2f}, overflow "
               f"{rep['overflow']} tracks -> {out}/routing.json")
    return rep
