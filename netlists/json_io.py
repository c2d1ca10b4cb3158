"""JSON netlist, schema version 1 (netlists/netlist.schema.json; documented in docs/netlists.md).

The file is written line by line (one unit or net per line) to a temporary file and renamed into
place. Weights are stored exactly: inline as JSON numbers (float repr round-trips bit for bit)
for small designs, or in a ``<stem>.weights.npz`` beside the JSON for large ones, referenced by
file name and SHA-256.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mapping.design import Design, Net, Unit
from netlists._common import NetlistError, as_design, atomic_open, check_design, logical_cols
from netlists.conductance import SpiceConfig
from netlists.layout import layout_info, net_routes, placement_sites, placement_slots

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("netlist.schema.json")
"""The JSON Schema (draft 2020-12) of this format, shipped as package data."""
FORMAT = "group-scissor-netlist"
INLINE_MAX_WEIGHTS = 65_536
"""weights='auto' stores weights inline up to this many in total, else in a .npz file."""
WEIGHT_MODES = ("auto", "inline", "npz", "none")


@dataclass(frozen=True)
class JsonNetlist:
    """Everything a JSON netlist holds; has ``.design`` so every writer accepts it."""

    design: Design
    sites: dict[str, tuple] = field(default_factory=dict)
    """Unit name -> (x, y) placement site (empty if the file holds no placement)."""
    slots: dict[str, int] = field(default_factory=dict)
    """Unit name -> slot inside its site (small units sharing one site; may be empty)."""
    routes: dict[int, list] = field(default_factory=dict)
    """Net index -> route (list of gcells, or of gcell edges; empty if unrouted)."""
    technology: dict = field(default_factory=dict)
    """Technology figures stored with the netlist (conductance range, wire resistance, ...)."""
    layout: dict = field(default_factory=dict)
    """Grid sizes of the placement / routing (grid_sites, grid_gcells, ...; may be empty)."""


def _sha256(f: Any) -> str:
    """SHA-256 of a path, or of an open binary file from its current position."""
    if isinstance(f, (str, os.PathLike)):
        with open(f, "rb") as fh:
            return _sha256(fh)
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def _technology(technology: Any) -> dict:
    if technology is None:
        return dataclasses.asdict(SpiceConfig())
    if dataclasses.is_dataclass(technology) and not isinstance(technology, type):
        return dataclasses.asdict(technology)
    if isinstance(technology, Mapping):
        return dict(technology)
    raise NetlistError(f"technology must be a dict or a dataclass, got {type(technology).__name__}")


def _plain(o: Any) -> Any:
    """numpy scalars and arrays in technology/layout figures -> JSON numbers and lists."""
    if isinstance(o, (np.generic, np.ndarray)):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _weights_entry(w: np.ndarray, name: str, inline: bool, key: str) -> dict:
    entry = {"dtype": w.dtype.str, "shape": list(w.shape)}
    if not inline:
        return {"storage": "npz", **entry, "key": key}
    if w.dtype.kind == "f" and not np.all(np.isfinite(w)):
        raise NetlistError(f"weights of tile {name!r} contain NaN or inf, which JSON cannot hold; "
                           "use write_json(..., weights='npz')")
    return {"storage": "inline", **entry, "data": w.tolist()}


def write_json(design_or_mapped: Any, path: str | os.PathLike, placement: Any = None,
               routing: Any = None, *, weights: str = "auto", technology: Any = None) -> Path:
    """Write the JSON netlist of a Design (or MappedNetwork / JsonNetlist) to ``path``.

    placement: unit -> (x, y) sites (dict or Placement); routing: net -> route (dict or Routing);
    a JsonNetlist's own sites/routes are used when these are None. weights: 'auto' (inline up to
    INLINE_MAX_WEIGHTS, else npz), 'inline', 'npz' (``<stem>.weights.npz`` beside the JSON) or
    'none'. technology: dict or dataclass of figures to record (default: SpiceConfig()).
    Returns the JSON path.
    """
    design = as_design(design_or_mapped)
    check_design(design)
    if weights not in WEIGHT_MODES:
        raise NetlistError(f"weights={weights!r}; use one of {WEIGHT_MODES}")
    if isinstance(design_or_mapped, JsonNetlist):
        placement = design_or_mapped if placement is None else placement
        routing = design_or_mapped.routes if routing is None else routing
        technology = design_or_mapped.technology if technology is None else technology
    layout = layout_info(placement, routing)
    sites, slots = placement_sites(placement, design), placement_slots(placement, design)
    routes = net_routes(routing, design)
    path = Path(path)
    arrays = {n: np.asarray(w) for n, w in design.tile_weights.items()}
    n_weights = sum(a.size for a in arrays.values())
    if weights == "auto":
        weights = "inline" if n_weights <= INLINE_MAX_WEIGHTS else "npz"
    keys = {u.name: f"t{i}" for i, u in enumerate(design.units)}
    head = {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "crossbar": {"rows": design.crossbar_rows, "cols": design.crossbar_cols,
                     "encoding": design.encoding,
                     "logical_cols": logical_cols(design.crossbar_cols, design.encoding)},
        "technology": _technology(technology),
        "weights_file": None,
        "layout": layout,
    }
    try:
        lines = {k: json.dumps(v, allow_nan=False, default=_plain) for k, v in head.items()}
    except (TypeError, ValueError) as e:
        raise NetlistError(f"cannot write {path}: {e}; technology and layout values must be "
                           "finite JSON numbers, strings or lists") from e
    with contextlib.ExitStack() as stack:  # npz and JSON are renamed into place together
        if weights == "npz" and arrays:
            npz = path.with_name(path.stem + ".weights.npz")
            z = stack.enter_context(atomic_open(npz, "w+b"))
            np.savez_compressed(z, **{keys[n]: a for n, a in arrays.items()})
            z.flush()
            z.seek(0)
            lines["weights_file"] = json.dumps({"path": npz.name, "sha256": _sha256(z)})
        f = stack.enter_context(atomic_open(path))
        f.write("{\n" + "".join(f"{json.dumps(k)}: {v},\n" for k, v in lines.items()))
        f.write('"units": [')
        for i, u in enumerate(design.units):
            d: dict[str, Any] = {"name": u.name, "kind": u.kind, "matrix": u.matrix,
                                 "block": None if u.block is None else list(u.block)}
            if u.name in sites:
                d["site"] = list(sites[u.name])
            if u.name in slots:
                d["slot"] = slots[u.name]
            if u.name in arrays and weights != "none":
                d["weights"] = _weights_entry(arrays[u.name], u.name, weights == "inline",
                                              keys[u.name])
            f.write(("\n" if i == 0 else ",\n") + json.dumps(d, allow_nan=False))
        f.write('\n],\n"nets": [')
        for i, n in enumerate(design.nets):
            d = {"id": i, "src": n.src, "dst": n.dst, "width": n.width, "matrix": n.matrix,
                 "kind": n.kind}
            if i in routes:
                d["route"] = [list(map(list, p)) if isinstance(p[0], tuple) else list(p)
                              for p in routes[i]]
            f.write(("\n" if i == 0 else ",\n") + json.dumps(d, allow_nan=False))
        f.write("\n]\n}\n")
    return path


def _route(r: list) -> list:
    return [tuple(tuple(p) for p in e) if isinstance(e[0], list) else tuple(e) for e in r]


def read_netlist(path: str | os.PathLike) -> JsonNetlist:
    """Read a JSON netlist written by write_json: design, placement sites, routes, technology."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise NetlistError(f"cannot read JSON netlist {path}: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NetlistError(f"{path} is not a group-scissor netlist (no \"format\": \"{FORMAT}\")")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise NetlistError(f"{path} has schema_version {doc.get('schema_version')!r}; this reader "
                           f"knows version {SCHEMA_VERSION}; upgrade group-scissor")
    try:
        return _parse(doc, path)
    except NetlistError:
        raise  # already names the problem (and is a ValueError: keep it out of the clause below)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as e:
        # a unit or net that is not an object, a list where a table belongs, data that does
        # not reshape to its declared shape: all mean the file breaks the schema
        raise NetlistError(f"{path} does not follow netlist schema v{SCHEMA_VERSION}: "
                           f"{type(e).__name__} {e}; validate it against "
                           "netlists/netlist.schema.json") from e


def _parse(doc: dict, path: Path) -> JsonNetlist:
    npz = None
    if doc.get("weights_file"):
        wf = doc["weights_file"]
        npz_path = path.parent / wf["path"]
        if not npz_path.is_file():
            raise NetlistError(f"{path} refers to weights file {npz_path}, which does not exist")
        if _sha256(npz_path) != wf["sha256"]:
            raise NetlistError(f"weights file {npz_path} does not match the SHA-256 recorded in "
                               f"{path}; it was overwritten; export the design again")
        with np.load(npz_path, allow_pickle=False) as z:
            npz = {k: z[k] for k in z.files}
    units, tile_weights, sites, slots = [], {}, {}, {}
    for d in doc["units"]:
        block = None if d.get("block") is None else tuple(d["block"])
        units.append(Unit(d["name"], d["kind"], d.get("matrix"), block))
        if "site" in d:
            sites[d["name"]] = tuple(d["site"])
        if "slot" in d:
            slots[d["name"]] = d["slot"]
        w = d.get("weights")
        if w is not None:
            if w["storage"] == "npz":
                if npz is None:
                    raise NetlistError(f"unit {d['name']!r} has npz weights but {path} names no "
                                       "weights_file")
                a = npz[w["key"]]
            else:
                a = np.asarray(w["data"], dtype=np.dtype(w["dtype"])).reshape(w["shape"])
            if a.dtype != np.dtype(w["dtype"]) or list(a.shape) != list(w["shape"]):
                raise NetlistError(f"weights of {d['name']!r}: stored {a.dtype} {a.shape} differ "
                                   f"from the declared {w['dtype']} {tuple(w['shape'])}")
            tile_weights[d["name"]] = a
    nets = [Net(d["src"], d["dst"], d["width"], d["matrix"], d["kind"]) for d in doc["nets"]]
    bad = [i for i, d in enumerate(doc["nets"]) if d.get("id", i) != i]
    if bad:
        raise NetlistError(f"{path}: net ids must equal their positions 0..n-1; net at position "
                           f"{bad[0]} has id {doc['nets'][bad[0]]['id']}")
    routes = {i: _route(d["route"]) for i, d in enumerate(doc["nets"]) if "route" in d}
    xb = doc["crossbar"]
    design = Design(units, nets, xb["rows"], xb["cols"], xb["encoding"], tile_weights)
    check_design(design)
    return JsonNetlist(design, sites, slots, routes, dict(doc.get("technology") or {}),
                       dict(doc.get("layout") or {}))


def read_json(path: str | os.PathLike) -> Design:
    """The Design stored in a JSON netlist (use read_netlist for placement and routes too)."""
    return read_netlist(path).design
