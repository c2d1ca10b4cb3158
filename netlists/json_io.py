"""JSON netlist, schema version 2 (netlists/netlist.schema.json; documented in docs/netlists.md).

The JSON netlist is the mapped-design artifact the flow's stages pass to each other: it holds the
whole ``mapping.design.Design`` (units, nets, tile weights and the row signals the router needs)
plus placement sites, routes and technology figures.

The file is written line by line (one unit, net or matrix's row signals per line) to a temporary
file and renamed into place. Arrays are stored exactly: inline as JSON numbers (float repr
round-trips bit for bit) for small designs, or in a ``<stem>.weights.npz`` beside the JSON for
large ones, referenced by file name and SHA-256.

Reading trusts nothing: the text is parsed without NaN/Infinity, overflowing numbers or duplicate
keys, the document is validated against the shipped schema (``jsonschema``), then the Design is
built and checked like every writer checks it (``check_design``, ``check_layout``). Every
problem is a NetlistError naming the place and the fix; the writer runs the same checks, so it
never writes a file the reader refuses.
"""

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mapping.design import Design, Net, RowSignals, Unit
from mapping.spec import slice_count
from netlists._common import (
    MAX_ROW_SIGNAL_CELLS,
    NetlistError,
    as_design,
    atomic_open,
    check_design,
    is_int,
    logical_cols,
)
from netlists.conductance import SpiceConfig
from netlists.json_schema import (
    ARRAY_KEY,
    MAX_DEPTH,
    SCHEMA_PATH,  # noqa: F401  (re-exported)
    depth_ok,
    schema_problem,
)
from netlists.layout import (
    check_layout,
    layout_info,
    net_routes,
    placement_sites,
    placement_slots,
    placement_spans,
)

SCHEMA_VERSION = 2
FORMAT = "group-scissor-netlist"
INLINE_MAX_WEIGHTS = 65_536
"""weights='auto' stores weights inline up to this many in total, else in a .npz file."""
WEIGHT_MODES = ("auto", "inline", "npz", "none")
MAX_JSON_BYTES = 1 << 30
"""Largest JSON netlist written or read (1 GiB); larger designs keep their weights in the npz."""
NPZ_NAME = re.compile(r"[^/\\:\x00-\x1f]{1,251}\.npz")
"""weights_file.path: a plain file name in the JSON file's folder (as the schema's pattern)."""


@dataclass(frozen=True)
class JsonNetlist:
    """Everything a JSON netlist holds; has ``.design`` so every writer accepts it."""

    design: Design
    sites: dict[str, tuple] = field(default_factory=dict)
    """Unit name -> (x, y) placement site (empty if the file holds no placement)."""
    slots: dict[str, int] = field(default_factory=dict)
    """Unit name -> slot inside its site (small units sharing one site; may be empty)."""
    spans: dict[str, int] = field(default_factory=dict)
    """Unit name -> sites it covers upwards from its own, for units covering more than one."""
    routes: dict[int, list] = field(default_factory=dict)
    """Net index -> route (list of gcells, or of gcell edges; empty if unrouted)."""
    technology: dict = field(default_factory=dict)
    """Technology figures stored with the netlist (conductance range, wire resistance, ...)."""
    layout: dict = field(default_factory=dict)
    """Grid sizes of the placement / routing (grid_sites, grid_gcells, ...; may be empty)."""


# ------------------------------------------------------------------------------ writing

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


def _crossbar(design: Design) -> dict:
    """The "crossbar" object: size, encoding, logical columns and, when set, the weight
    precision (weight_bits; with cell_bits, the slices each tile is made of)."""
    d = {"rows": design.crossbar_rows, "cols": design.crossbar_cols, "encoding": design.encoding,
         "logical_cols": logical_cols(design.crossbar_cols, design.encoding)}
    if design.weight_bits is not None:
        d["weight_bits"] = int(design.weight_bits)
    if design.cell_bits is not None:
        d["cell_bits"] = int(design.cell_bits)
        d["slices"] = design.slices
    return d


def _weights_head(w: np.ndarray, inline: bool, key: str) -> dict:
    entry = {"storage": "inline" if inline else "npz", "dtype": w.dtype.str, "shape": list(w.shape)}
    return {**entry, "data": []} if inline else {**entry, "key": key}


def _weights_entry(w: np.ndarray, name: str, inline: bool, key: str) -> dict:
    """The unit's "weights" object (with the numbers when inline; check_design made them finite)."""
    entry = _weights_head(w, inline, key)
    return {**entry, "data": w.tolist()} if inline else entry


def _row_signals_entry(matrix: str, rs: RowSignals, key: str | None, stub: bool = False) -> dict:
    """One matrix's row signals: inline lists, or (key given) names of two npz arrays."""
    n, nb = rs.live.shape
    d = {"matrix": matrix, "producers": list(rs.producers), "rows": n, "blocks": nb}
    if key is not None:
        return {**d, "storage": "npz", "source_key": f"{key}_source", "live_key": f"{key}_live"}
    if stub:
        return {**d, "storage": "inline", "source": [], "live": []}
    return {**d, "storage": "inline", "source": rs.source.tolist(), "live": rs.live.tolist()}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, default=_plain)


def write_json(design_or_mapped: Any, path: str | os.PathLike, placement: Any = None,
               routing: Any = None, *, weights: str = "auto", technology: Any = None) -> Path:
    """Write the JSON netlist of a Design (or MappedNetwork / JsonNetlist) to ``path``.

    placement: unit -> (x, y) sites (dict or Placement); routing: net -> route (dict or Routing);
    a JsonNetlist's own sites/routes are used when these are None. weights: 'auto' (inline up to
    INLINE_MAX_WEIGHTS, else npz), 'inline', 'npz' (``<stem>.weights.npz`` beside the JSON,
    which then holds the row signals too) or 'none' (no weights; row signals inline).
    technology: dict or dataclass of figures to record (default: SpiceConfig()).
    Raises NetlistError for anything read_netlist would refuse. Returns the JSON path.
    """
    design = as_design(design_or_mapped)
    check_design(design)
    if weights not in WEIGHT_MODES:
        raise NetlistError(f"weights={weights!r}; use one of {WEIGHT_MODES}")
    if isinstance(design_or_mapped, JsonNetlist):
        placement = design_or_mapped if placement is None else placement
        routing = design_or_mapped.routes if routing is None else routing
        technology = design_or_mapped.technology if technology is None else technology
    path = Path(path)
    sites, slots = placement_sites(placement, design), placement_slots(placement, design)
    spans = placement_spans(placement, design)
    routes = net_routes(routing, design)
    arrays = {n: np.asarray(w) for n, w in design.tile_weights.items()}
    if weights == "auto":
        n_weights = sum(a.size for a in arrays.values())
        weights = "inline" if n_weights <= INLINE_MAX_WEIGHTS else "npz"
    if weights == "none":
        arrays = {}
    use_npz = weights == "npz" and bool(arrays or design.row_signals)
    npz = path.with_name(path.stem + ".weights.npz")
    if use_npz and not NPZ_NAME.fullmatch(npz.name):
        raise NetlistError(f"cannot write {path}: its weights file would be named {npz.name!r}; "
                           "use a JSON file name without '\\', ':' or control characters, "
                           "at most 240 characters")
    keys = {u.name: f"t{i}" for i, u in enumerate(design.units)}
    rs_keys = {m: (f"r{j}" if use_npz else None) for j, m in enumerate(design.row_signals)}
    try:  # exactly the values the file will hold
        head = json.loads(_dumps({
            "schema_version": SCHEMA_VERSION,
            "format": FORMAT,
            "crossbar": _crossbar(design),
            "technology": _technology(technology),
            "weights_file": None,
            "layout": layout_info(placement, routing),
        }))
    except (TypeError, ValueError, RecursionError) as e:
        raise NetlistError(f"cannot write {path}: {e}; technology and layout values must be "
                           "finite JSON numbers, strings or lists") from e
    units = []
    for u in design.units:
        d: dict[str, Any] = {"name": u.name, "kind": u.kind, "matrix": u.matrix,
                             "block": None if u.block is None else [int(b) for b in u.block]}
        if u.name in sites:
            d["site"] = list(sites[u.name])
        if u.name in slots:
            d["slot"] = slots[u.name]
        if u.name in spans:
            d["span"] = spans[u.name]
        units.append(d)
    nets = []
    for i, n in enumerate(design.nets):
        d = {"id": i, "src": n.src, "dst": n.dst, "width": int(n.width), "matrix": n.matrix,
             "kind": n.kind}
        if i in routes:
            d["route"] = [[list(p) for p in e] if isinstance(e[0], tuple) else list(e)
                          for e in routes[i]]
        nets.append(d)
    # the reader's checks, on everything but the bulk numbers (which check_design vouched for)
    stub = {**head, "weights_file": {"path": npz.name, "sha256": "0" * 64} if use_npz else None,
            "units": [{**d, "weights": _weights_head(arrays[d["name"]], weights == "inline",
                                                     keys[d["name"]])}
                      if d["name"] in arrays else d for d in units],
            "nets": nets,
            "row_signals": [_row_signals_entry(m, rs, rs_keys[m], stub=True)
                            for m, rs in design.row_signals.items()]}
    if not depth_ok(stub):
        raise NetlistError(f"cannot write {path}: technology nests deeper than {MAX_DEPTH - 2} "
                           "levels; flatten it")
    problem = schema_problem(stub)
    if problem:
        raise NetlistError(f"cannot write {path}: the netlist would break its schema {problem}")
    check_layout(design, sites, slots, routes, head["layout"], spans)

    with contextlib.ExitStack() as stack:  # npz and JSON are renamed into place together
        lines = {k: _dumps(v) for k, v in head.items()}
        if use_npz:
            z = stack.enter_context(atomic_open(npz, "w+b"))
            stored = {keys[n]: a for n, a in arrays.items()}
            for m, rs in design.row_signals.items():
                stored[f"{rs_keys[m]}_source"] = np.asarray(rs.source, dtype="<i8")
                stored[f"{rs_keys[m]}_live"] = np.asarray(rs.live, dtype=bool)
            np.savez_compressed(z, **stored)
            z.flush()
            z.seek(0)
            lines["weights_file"] = _dumps({"path": npz.name, "sha256": _sha256(z)})
        f = stack.enter_context(atomic_open(path))
        size = 0

        def put(text: str) -> None:
            nonlocal size
            size += len(text)  # json.dumps writes ASCII: characters = bytes
            if size > MAX_JSON_BYTES:
                raise NetlistError(f"cannot write {path}: the netlist exceeds "
                                   f"{MAX_JSON_BYTES >> 20} MiB; use weights='npz'")
            f.write(text)

        put("{\n" + "".join(f"{json.dumps(k)}: {v},\n" for k, v in lines.items()))
        put('"units": [')
        for i, d in enumerate(units):
            if d["name"] in arrays:
                d["weights"] = _weights_entry(arrays[d["name"]], d["name"], weights == "inline",
                                              keys[d["name"]])
            put(("\n" if i == 0 else ",\n") + _dumps(d))
        put('\n],\n"nets": [')
        for i, d in enumerate(nets):
            put(("\n" if i == 0 else ",\n") + _dumps(d))
        put('\n],\n"row_signals": [')
        for i, (m, rs) in enumerate(design.row_signals.items()):
            put(("\n" if i == 0 else ",\n") + _dumps(_row_signals_entry(m, rs, rs_keys[m])))
        put("\n]\n}\n")
    return path


# ------------------------------------------------------------------------------ reading

def _no_constant(name: str) -> Any:
    raise NetlistError(f"{name} is not a number a netlist may hold")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise NetlistError(f"number {text[:40]} overflows a float")
    return v


def _object(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        dup = next(k for i, (k, _) in enumerate(pairs) if k in dict(pairs[:i]))
        raise NetlistError(f"key {dup[:60]!r} appears twice in one object")
    return d


def _load(path: Path) -> Any:
    """Parse the file as strict JSON: no NaN/Infinity, no number overflowing a float, no
    duplicate keys, no integer of more digits than Python converts, at most MAX_JSON_BYTES."""
    try:
        st = path.stat()
    except OSError as e:
        raise NetlistError(f"cannot read JSON netlist {path}: {e}") from e
    size = st.st_size
    if not stat.S_ISREG(st.st_mode):
        raise NetlistError(f"cannot read JSON netlist {path}: not a regular file")
    if size > MAX_JSON_BYTES:
        raise NetlistError(f"{path} has {size} bytes, more than a netlist may ({MAX_JSON_BYTES}); "
                           "export the design with write_json(..., weights='npz')")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f, parse_constant=_no_constant, parse_float=_finite_float,
                             object_pairs_hook=_object)
    except NetlistError as e:
        raise NetlistError(f"cannot read JSON netlist {path}: {e}") from e
    except RecursionError as e:
        raise NetlistError(f"cannot read JSON netlist {path}: lists or objects nest too deeply "
                           f"(a netlist nests at most {MAX_DEPTH} levels)") from e
    except MemoryError as e:
        raise NetlistError(f"cannot read JSON netlist {path}: out of memory") from e
    except (OSError, ValueError) as e:  # incl. JSONDecodeError, UnicodeDecodeError, huge ints
        why = str(e)[:300]
        if "integer string conversion" in why:  # Python refuses ints of > 4300 digits
            why = "an integer has more than 4300 digits"
        raise NetlistError(f"cannot read JSON netlist {path}: {why}") from e


class _Npz:
    """The arrays of a weights file, each read only after its header matches the declared
    dtype and shape (so a file cannot make the reader allocate more than the JSON declares)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile) as e:
            raise NetlistError(f"weights file {path} is not an .npz archive: {e}") from e

    def get(self, key: str, dtype: str, shape: tuple, what: str) -> np.ndarray:
        try:
            info = self.zip.getinfo(key + ".npy")
        except KeyError:
            raise NetlistError(f"{what}: weights file {self.path.name} holds no array "
                               f"{key!r}; export the design again") from None
        try:
            with self.zip.open(info) as fp:
                version = np.lib.format.read_magic(fp)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise NetlistError(f"npy format version {version} is not supported")
                h_shape, fortran, h_dtype = read_header(fp)
                if h_dtype != np.dtype(dtype) or h_shape != tuple(shape):
                    raise NetlistError(f"it holds {h_dtype} {h_shape}, the netlist declares "
                                       f"{dtype} {tuple(shape)}")
                n = math.prod(shape) * h_dtype.itemsize
                buf = fp.read(n)
                if len(buf) != n:
                    raise NetlistError("the array is truncated")
        except NetlistError as e:
            raise NetlistError(f"{what}: array {key!r} of {self.path.name}: {e}") from e
        except (OSError, ValueError, EOFError, RuntimeError, NotImplementedError,
                zipfile.BadZipFile, zlib.error) as e:  # encrypted, unknown compression, ...
            raise NetlistError(f"{what}: cannot read array {key!r} of {self.path.name}: "
                               f"{str(e)[:200]}") from e
        return np.frombuffer(buf, h_dtype).reshape(shape, order="F" if fortran else "C").copy()

    def close(self) -> None:
        self.zip.close()


def _inline_array(data: list, dtype: str, shape: list, what: str) -> np.ndarray:
    """Inline numbers (schema-checked: booleans / integers / numbers by dtype) -> exact array."""
    if len(data) != shape[0] or any(len(r) != shape[1] for r in data):
        raise NetlistError(f"{what}: data must be {shape[0]} rows of {shape[1]} values, as "
                           "'shape' declares")
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = min(min(r) for r in data), max(max(r) for r in data)
        if lo < info.min or hi > info.max:
            raise NetlistError(f"{what}: values {lo}..{hi} do not fit dtype {dtype} "
                               f"({info.min}..{info.max})")
        return np.array(data, dtype=dt)
    if dt.kind == "f":
        try:
            a = np.array(data, dtype=np.float64)
        except OverflowError as e:
            raise NetlistError(f"{what}: a value overflows a float ({e})") from e
        with np.errstate(over="ignore"):
            a = a.astype(dt)
        if not np.isfinite(a).all():
            raise NetlistError(f"{what}: a value is beyond the range of dtype {dtype}")
        return a
    return np.array(data, dtype=dt)


def _weights_file(doc: dict, path: Path) -> _Npz | None:
    wf = doc["weights_file"]
    if wf is None:
        return None
    name = wf["path"]
    if not NPZ_NAME.fullmatch(name):
        raise NetlistError(f"{path}: weights_file.path {name[:80]!r} must be a plain .npz file "
                           "name in the netlist's folder (no folder part, no '..')")
    npz_path = path.parent / name
    if not npz_path.is_file():
        raise NetlistError(f"{path} refers to weights file {npz_path}, which does not exist")
    try:
        inside = npz_path.resolve().parent == path.parent.resolve()
        sha = _sha256(npz_path)
    except (OSError, RuntimeError) as e:  # unreadable, a loop of links
        raise NetlistError(f"cannot read weights file {npz_path}: {e}") from e
    if not inside:
        raise NetlistError(f"weights file {npz_path} links outside the netlist's folder; copy "
                           "the file there")
    if sha != wf["sha256"]:
        raise NetlistError(f"weights file {npz_path} does not match the SHA-256 recorded in "
                           f"{path}; it was overwritten; export the design again")
    return _Npz(npz_path)


def read_netlist(path: str | os.PathLike) -> JsonNetlist:
    """Read a JSON netlist written by write_json: design, placement sites, routes, technology.

    Raises NetlistError (and nothing else) for any file it cannot take: not JSON, not a netlist,
    another schema version, a schema violation (named by its JSON path) or an inconsistent
    design."""
    path = Path(path)
    doc = _load(path)
    if not depth_ok(doc):
        raise NetlistError(f"{path}: lists or objects nest deeper than {MAX_DEPTH} levels; "
                           "a netlist needs 6 (flatten technology)")
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise NetlistError(f"{path} is not a group-scissor netlist (no \"format\": \"{FORMAT}\")")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        shown = repr(version) if is_int(version) and abs(version) < 10**9 else "other"
        if is_int(version) and 1 <= version < SCHEMA_VERSION:
            raise NetlistError(
                f"{path} has schema_version {version}; this reader reads only version "
                f"{SCHEMA_VERSION} (which adds row_signals); export the design again with this "
                "version of group-scissor (write_json, or group-scissor export)")
        raise NetlistError(f"{path} has schema_version {shown}; this reader knows version "
                           f"{SCHEMA_VERSION}; upgrade group-scissor")
    problem = schema_problem(doc)
    if problem:
        raise NetlistError(f"{path} does not follow netlist schema v{SCHEMA_VERSION} {problem}; "
                           "fix that value or export the design again (netlists/netlist.schema"
                           ".json, docs/netlists.md)")
    npz = _weights_file(doc, path)
    try:
        return _parse(doc, path, npz)
    except MemoryError as e:
        raise NetlistError(f"{path}: out of memory building the design") from e
    finally:
        if npz is not None:
            npz.close()


def _arrays(entry: dict, npz: _Npz | None, path: Path, what: str) -> None:
    if npz is None:
        raise NetlistError(f"{path}: {what} are stored in an npz but the netlist names no "
                           "weights_file")
    for k in ("key", "source_key", "live_key"):
        if k in entry and not ARRAY_KEY.fullmatch(entry[k]):
            raise NetlistError(f"{path}: {what}: {k} {entry[k][:60]!r} must be 1..128 of "
                               "A-Z a-z 0-9 _ . -")


def _parse(doc: dict, path: Path, npz: _Npz | None) -> JsonNetlist:
    xb = doc["crossbar"]
    rows, cols, encoding = xb["rows"], xb["cols"], xb["encoding"]
    lcols = logical_cols(cols, encoding)
    if xb["logical_cols"] != lcols:
        raise NetlistError(f"{path}: crossbar.logical_cols is {xb['logical_cols']}, but a {cols}-"
                           f"column {encoding} crossbar has {lcols}")
    weight_bits, cell_bits = xb.get("weight_bits"), xb.get("cell_bits")
    if "slices" in xb and xb["slices"] != slice_count(weight_bits, cell_bits):
        raise NetlistError(f"{path}: crossbar.slices is {xb['slices']}, but {weight_bits}-bit "
                           f"weights in {cell_bits}-bit cells take "
                           f"{slice_count(weight_bits, cell_bits)}")
    units, tile_weights, sites, slots, spans = [], {}, {}, {}, {}
    for d in doc["units"]:
        name = d["name"]
        units.append(Unit(name, d["kind"], d["matrix"],
                          None if d["block"] is None else tuple(d["block"])))
        if "site" in d:
            sites[name] = tuple(d["site"])
        if "slot" in d:
            slots[name] = d["slot"]
        if d.get("span", 1) > 1:
            spans[name] = d["span"]
        w = d.get("weights")
        if w is None:
            continue
        what = f"weights of tile {name!r}"
        shape = tuple(w["shape"])
        if shape[0] > rows or shape[1] > lcols:
            raise NetlistError(f"{path}: {what} have shape {shape}; a {rows}x{cols} {encoding} "
                               f"crossbar holds at most ({rows}, {lcols})")
        if w["storage"] == "npz":
            _arrays(w, npz, path, what)
            tile_weights[name] = npz.get(w["key"], w["dtype"], shape, what)
        else:
            tile_weights[name] = _inline_array(w["data"], w["dtype"], w["shape"], what)
    bad = [i for i, d in enumerate(doc["nets"]) if d["id"] != i]
    if bad:
        raise NetlistError(f"{path}: net ids must equal their positions 0..n-1; net at position "
                           f"{bad[0]} has id {doc['nets'][bad[0]]['id']}")
    nets = [Net(d["src"], d["dst"], d["width"], d["matrix"], d["kind"]) for d in doc["nets"]]
    routes = {i: _route(d["route"]) for i, d in enumerate(doc["nets"]) if "route" in d}
    signals = {}
    for e in doc["row_signals"]:
        m, n, nb = e["matrix"], e["rows"], e["blocks"]
        what = f"row_signals of {m!r}"
        if m in signals:
            raise NetlistError(f"{path}: {what} appear twice; keep one entry per matrix")
        if n * nb > MAX_ROW_SIGNAL_CELLS:
            raise NetlistError(f"{path}: {what}: {n} rows x {nb} column blocks exceed "
                               f"{MAX_ROW_SIGNAL_CELLS}")
        if e["storage"] == "npz":
            _arrays(e, npz, path, what)
            source = npz.get(e["source_key"], "<i8", (n,), what)
            live = npz.get(e["live_key"], "|b1", (n, nb), what)
        else:
            if len(e["source"]) != n:
                raise NetlistError(f"{path}: {what}: source must hold {n} indices ('rows')")
            live = _inline_array(e["live"], "|b1", [n, nb], f"{what}: live")
            source = np.array(e["source"], dtype=np.int64)
        signals[m] = RowSignals(tuple(e["producers"]), source, live)
    design = Design(units, nets, rows, cols, encoding, tile_weights, signals, weight_bits,
                    cell_bits)
    try:
        check_design(design)
        check_layout(design, sites, slots, routes, doc["layout"], spans)
    except NetlistError as e:
        raise NetlistError(f"{path}: {e}") from e
    return JsonNetlist(design, sites, slots, spans, routes, doc["technology"], doc["layout"])


def _route(r: list) -> list:
    return [tuple(tuple(p) for p in e) if isinstance(e[0], list) else tuple(e) for e in r]


def read_json(path: str | os.PathLike) -> Design:
    """The Design stored in a JSON netlist (use read_netlist for placement and routes too)."""
    return read_netlist(path).design
