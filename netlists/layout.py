"""Placement and routing as the netlists store them: plain dicts, independent of the router.

- sites:  unit name -> (x, y) site on the placement grid.
- slots:  unit name -> slot inside its site (small units share a site), when the placer says.
- routes: net index (position in ``design.nets``) -> the route of that net on the gcell grid,
          either a path ``[(x, y), ...]`` of gcells in order, or a list of gcell edges
          ``[((x0, y0), (x1, y1)), ...]``.
- layout: grid sizes (grid_sites, output_units_per_site, grid_gcells, gcells_per_site,
          gcell_um) and the router's net_model, taken from the Placement / Routing when they
          carry them.
Sites and gcells are whole numbers in 0..MAX_INDEX, inside the grid when its size is known
(``check_layout``, shared by the JSON writer and reader).
Accepted inputs: such dicts, or objects holding them: mapping.placement.Placement
(``.positions``, ``.slots``), mapping.routing.Routing (``.path(i)`` = gcells of net i), a
JsonNetlist (``.sites``, ``.routes``). Route dict keys may be net indices, Nets or (src, dst).
"""

from collections.abc import Mapping
from typing import Any

import numpy as np

from mapping.design import Design, Net
from netlists._common import MAX_INDEX, NetlistError, is_int

Point = tuple[int, int]


def _point(p: Any, what: str) -> Point:
    a = np.asarray(p)
    if (a.shape != (2,) or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a))
            or not np.all(a == np.round(a)) or a.min() < 0 or a.max() > MAX_INDEX):
        raise NetlistError(f"{what}: expected an (x, y) pair of whole numbers in 0..{MAX_INDEX}, "
                           f"got {p!r}")
    return tuple(int(v) for v in a.tolist())


def _mapping(obj: Any, attrs: tuple[str, ...], what: str) -> Mapping:
    if isinstance(obj, Mapping):
        return obj
    for attr in attrs:
        value = getattr(obj, attr, None)
        if isinstance(value, Mapping):
            return value
    raise NetlistError(f"{what}: expected a dict or an object with one of the mapping attributes "
                       f"{attrs}, got {type(obj).__name__}")


def placement_sites(placement: Any, design: Design) -> dict[str, tuple]:
    """Unit name -> (x, y) for every placed unit; unknown unit names are an error."""
    if placement is None:
        return {}
    sites = _mapping(placement, ("sites", "positions", "site"), "placement")
    names = {u.name for u in design.units}
    out = {}
    for name, xy in sites.items():
        if name not in names:
            raise NetlistError(f"placement names unit {name!r}, which is not in the design")
        out[name] = _point(xy, f"placement of {name!r}")
    return out


def _per_unit(placement: Any, design: Design, attr: str, lo: int, what: str) -> dict[str, int]:
    """``placement.<attr>`` (unit name -> whole number in lo..MAX_INDEX), checked against the
    design's units; {} for a placement without it (a plain mapping of sites)."""
    values = getattr(placement, attr, None)
    if placement is None or isinstance(placement, Mapping) or not isinstance(values, Mapping):
        return {}
    names = {u.name for u in design.units}
    bad = [n for n, k in values.items() if n not in names or not is_int(k) or not lo <= k <= MAX_INDEX]
    if bad:
        raise NetlistError(f"placement {what} of {bad[0]!r} must be a whole number "
                           f"in {lo}..{MAX_INDEX} for a unit of the design")
    return {n: int(k) for n, k in values.items()}


def placement_slots(placement: Any, design: Design) -> dict[str, int]:
    """Unit name -> slot inside its site (Placement.slots: small units sharing a site)."""
    return _per_unit(placement, design, "slots", 0, "slot")


def placement_spans(placement: Any, design: Design) -> dict[str, int]:
    """Unit name -> sites it spans upwards from its own, for units spanning more than one
    (Placement.spans: a small unit whose buses need more than one site's boundary)."""
    return {n: k for n, k in _per_unit(placement, design, "spans", 1, "span (sites)").items()
            if k > 1}


def _net_index(key: Any, design: Design, index: dict) -> int:
    if isinstance(key, (int, np.integer)) and 0 <= int(key) < len(design.nets):
        return int(key)
    if isinstance(key, Net):
        key = (key.src, key.dst)
    if isinstance(key, tuple) and key in index:
        return index[key]
    raise NetlistError(f"route key {key!r} is neither a net index (0..{len(design.nets) - 1}), "
                       "a Net of the design, nor a (src, dst) pair of one")


def normalize_route(route: Any, what: str) -> list:
    """A route as a list of (x, y) gcells (path) or of ((x0, y0), (x1, y1)) gcell edges."""
    for attr in ("path", "edges", "gcells"):
        if getattr(route, attr, None) is not None:
            route = getattr(route, attr)
            break
    a = np.asarray(route)
    if a.ndim == 2 and a.shape[1:] == (2,):
        return [_point(p, what) for p in a]
    if a.ndim == 3 and a.shape[1:] == (2, 2):
        return [(_point(e[0], what), _point(e[1], what)) for e in a]
    if a.size == 0:
        return []
    raise NetlistError(f"{what}: expected a list of (x, y) gcells or of ((x0, y0), (x1, y1)) "
                       f"edges, got an array of shape {a.shape}")


def net_routes(routing: Any, design: Design) -> dict[int, list]:
    """Net index -> normalized route, for every routed net."""
    if routing is None:
        return {}
    if callable(getattr(routing, "path", None)) and isinstance(getattr(routing, "edges", None),
                                                               list):
        n = routing.n_nets if hasattr(routing, "n_nets") else len(routing.edges)
        if n != len(design.nets):  # a mapping.routing.Routing
            raise NetlistError(f"routing has {n} nets but the design has "
                               f"{len(design.nets)}; route this design before exporting it")
        path = getattr(routing, "net_path", routing.path)
        routes = {i: path(i) for i in range(len(design.nets))}
    else:
        routes = _mapping(routing, ("routes", "net_routes", "paths"), "routing")
    index: dict[tuple[str, str], int] = {}
    for i, n in enumerate(design.nets):
        index.setdefault((n.src, n.dst), i)
    out = {}
    for key, route in routes.items():
        i = _net_index(key, design, index)
        out[i] = normalize_route(route, f"route of net {i}")
    return out


def layout_info(placement: Any, routing: Any) -> dict:
    """Grid sizes that give the coordinates a meaning (site grid, gcell grid), when known."""
    info = dict(getattr(placement, "layout", None) or {})  # a JsonNetlist passes its own on
    for key, obj, attr in (("grid_sites", placement, "grid_sites"),
                           ("output_units_per_site", placement, "output_units_per_site"),
                           ("grid_gcells", routing, "grid_gcells"),
                           ("gcells_per_site", getattr(routing, "config", None), "gcells_per_site"),
                           ("gcell_um", getattr(routing, "config", None), "gcell_um"),
                           ("net_model", getattr(routing, "config", None), "net_model")):
        value = getattr(obj, attr, None)
        if isinstance(value, str):
            info[key] = value
        elif isinstance(value, (tuple, list)) and len(value) == 2:
            info[key] = [int(v) for v in value]
        elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value,
                                                                                        bool):
            info[key] = value.item() if isinstance(value, np.generic) else value
    return info


def check_layout(design: Design, sites: Mapping, slots: Mapping, routes: Mapping,
                 layout: Mapping, spans: Mapping | None = None) -> None:
    """Raise NetlistError if a site, slot, span or routed gcell lies outside the grids of
    ``layout`` (when it gives their sizes), a span belongs to an unplaced unit, or a route
    belongs to no net. Sites, slots, spans and routes are normalized (placement_sites,
    placement_slots, placement_spans, net_routes); layout follows the schema."""
    gs, k, gg = (layout.get(key) for key in ("grid_sites", "output_units_per_site", "grid_gcells"))
    for name, (x, y) in sites.items():
        if gs and not (x < gs[0] and y < gs[1]):
            raise NetlistError(f"site ({x}, {y}) of unit {name!r} lies outside the {gs[0]}x{gs[1]} "
                               "site grid of the layout")
    for name, n in (spans or {}).items():
        if name not in sites:
            raise NetlistError(f"unit {name!r} spans {n} sites but has no site")
        if gs and sites[name][1] + n > gs[1]:
            raise NetlistError(f"unit {name!r} spans sites y = {sites[name][1]}.."
                               f"{sites[name][1] + n - 1}, beyond the {gs[0]}x{gs[1]} site grid")
    for name, s in slots.items():
        if k and s >= k:
            raise NetlistError(f"slot {s} of unit {name!r}: a site holds {k} small units "
                               f"(layout.output_units_per_site), slots 0..{k - 1}")
    for i, r in routes.items():
        if not (is_int(i) and 0 <= i < len(design.nets)):
            raise NetlistError(f"route of net {i!r}: the design has nets 0..{len(design.nets) - 1}")
        if gg and r:
            pts = np.asarray(r).reshape(-1, 2)
            out = pts[(pts >= np.asarray(gg)).any(axis=1)]
            if len(out):
                raise NetlistError(f"route of net {i} passes gcell {tuple(out[0].tolist())}, "
                                   f"outside the {gg[0]}x{gg[1]} gcell grid of the layout")
