"""The JSON netlist's schema (netlist.schema.json) and how the reader and writer apply it.

``schema_problem(doc)`` validates a parsed document with jsonschema (Draft 2020-12; "integer"
means a JSON integer: no 2.0, no true) and returns the most relevant violation with its JSON
path. ``depth_ok`` bounds nesting without recursion. The semantic checks a schema cannot express
live in netlists._common.check_design and netlists.layout.check_layout.
"""

import functools
import itertools
import json
import re
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("netlist.schema.json")
"""The JSON Schema (draft 2020-12) of the JSON netlist, shipped as package data."""
MAX_DEPTH = 32
"""Deepest nesting of lists and objects in a netlist (the format itself needs 6 levels)."""
ARRAY_KEY = re.compile(r"[A-Za-z0-9_.-]{1,128}")
"""Names of arrays in the weights file (the schema's $defs/key)."""


@functools.cache
def schema() -> dict:
    """The shipped JSON Schema of the format."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Any:
    """Draft 2020-12 validator of the schema; "integer" means a JSON integer (no 2.0, no bool)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, x: isinstance(x, int) and not isinstance(x, bool))
    return jsonschema.validators.extend(base, type_checker=checker)(schema())


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def schema_problem(doc: dict) -> str | None:
    """The most relevant schema violation of ``doc`` as 'at <JSON path>: ...', or None.

    jsonschema costs ~0.2 ms per object, i.e. seconds for a large chip, so the units, nets and
    row signals that ``_Quick`` proves valid (its checks are a subset of the schema's: an item
    it passes satisfies the schema) are left out; jsonschema judges all the others and the rest
    of the document, so it alone decides what is refused and how the error reads."""
    from jsonschema.exceptions import best_match

    quick = _Quick.get()
    kept: dict[str, list[int]] = {}
    reduced = dict(doc)
    for key, ok in (("units", quick.unit), ("nets", quick.net), ("row_signals", quick.row_signals)):
        items = doc.get(key)
        if isinstance(items, list):
            kept[key] = [i for i, item in enumerate(items) if not ok(item)]
            reduced[key] = [items[i] for i in kept[key]]
    err = best_match(itertools.islice(_validator().iter_errors(reduced), 100))
    if err is None:
        return None
    where = list(err.absolute_path)
    if len(where) > 1 and where[0] in kept:
        where[1] = kept[where[0]][where[1]]  # position in the file's list
    msg = err.message  # a huge value is shown by its two ends
    msg = msg if len(msg) <= 200 else f"{msg[:80]} ... {msg[-100:]}"
    desc = err.schema.get("description") if isinstance(err.schema, dict) else None
    return f"at {_json_path(where)}: {msg}" + (f" (expected: {desc})" if desc else "")


class _Quick:
    """Fast checks of one unit / net / row-signals object that imply its schema (never accept
    what the schema refuses; may refuse what it accepts: jsonschema then decides). Bounds are
    read from the schema so the two cannot drift apart."""

    _instance = None

    @classmethod
    def get(cls) -> "_Quick":
        if cls._instance is None:
            cls._instance = cls(schema()["$defs"])
        return cls._instance

    def __init__(self, defs: dict):
        self.side = defs["side"]["maximum"]
        self.index = defs["index"]["maximum"]
        self.name_len = defs["name"]["maxLength"]
        w = defs["weights"]["properties"]
        self.dtypes = frozenset(w["dtype"]["enum"])
        self.data_len = w["data"]["maxItems"]
        rs = defs["row_signals"]["properties"]
        self.rows, self.blocks = rs["rows"]["maximum"], rs["blocks"]["maximum"]
        self.name_re = re.compile(rf"[!-~]{{1,{self.name_len}}}")
        self.unit_keys = frozenset(defs["unit"]["properties"])
        self.net_keys = frozenset(defs["net"]["properties"])

    def _int(self, v: Any, lo: int, hi: int) -> bool:
        return type(v) is int and lo <= v <= hi

    def _name(self, v: Any) -> bool:
        return type(v) is str and self.name_re.fullmatch(v) is not None

    def _point(self, p: Any) -> bool:
        return (type(p) is list and len(p) == 2 and self._int(p[0], 0, self.index)
                and self._int(p[1], 0, self.index))

    def unit(self, u: Any) -> bool:
        if type(u) is not dict or not u.keys() <= self.unit_keys:
            return False
        kind, block, m = u.get("kind"), u.get("block", 0), u.get("matrix", 0)
        if not self._name(u.get("name")):
            return False
        if kind == "input":
            ok = m is None and block is None and "weights" not in u
        elif kind in ("tile", "output"):
            ok = self._name(m) and self._point(block)
            if kind == "output":
                ok = ok and block[0] == 0 and "weights" not in u
        else:
            return False
        return (ok and ("site" not in u or self._point(u["site"]))
                and ("slot" not in u or self._int(u["slot"], 0, self.index))
                and ("weights" not in u or self._weights(u["weights"])))

    def _weights(self, w: Any) -> bool:
        dtype = w.get("dtype") if type(w) is dict else None
        if not isinstance(dtype, str) or dtype not in self.dtypes:  # a list is not hashable
            return False
        shape, storage = w.get("shape"), w.get("storage")
        if not (type(shape) is list and len(shape) == 2 and self._int(shape[0], 1, self.side)
                and self._int(shape[1], 1, self.side)):
            return False
        if storage == "npz":
            return w.keys() == {"storage", "dtype", "shape", "key"} and bool(
                type(w["key"]) is str and ARRAY_KEY.fullmatch(w["key"]))
        data = w.get("data")
        if (storage != "inline" or w.keys() != {"storage", "dtype", "shape", "data"}
                or type(data) is not list or len(data) > self.data_len
                or not all(type(r) is list and len(r) <= self.data_len for r in data)):
            return False
        kind = w["dtype"][1]
        types = {"b": (bool,), "i": (int,), "u": (int,), "f": (int, float)}[kind]
        return all(type(v) in types for r in data for v in r)

    def net(self, n: Any) -> bool:
        if type(n) is not dict or not n.keys() <= self.net_keys:
            return False
        if not (self._int(n.get("id"), 0, self.index) and self._name(n.get("src"))
                and self._name(n.get("dst")) and self._int(n.get("width"), 1, self.side)
                and self._name(n.get("matrix")) and n.get("kind") in ("input", "output", "operand")):
            return False
        r = n.get("route", [])
        return type(r) is list and (all(self._point(p) for p in r) or all(
            type(e) is list and len(e) == 2 and self._point(e[0]) and self._point(e[1])
            for e in r))

    def row_signals(self, e: Any) -> bool:
        if type(e) is not dict:
            return False
        prods = e.get("producers")
        if not (self._name(e.get("matrix")) and type(prods) is list and prods
                and all(self._name(p) for p in prods) and len(set(prods)) == len(prods)
                and self._int(e.get("rows"), 1, self.rows)
                and self._int(e.get("blocks"), 1, self.blocks)):
            return False
        base = {"matrix", "producers", "rows", "blocks", "storage"}
        if e.get("storage") == "npz":
            return e.keys() == base | {"source_key", "live_key"} and all(
                type(e[k]) is str and ARRAY_KEY.fullmatch(e[k]) for k in ("source_key", "live_key"))
        src, live = e.get("source"), e.get("live")
        return (e.get("storage") == "inline" and e.keys() == base | {"source", "live"}
                and type(src) is list and all(self._int(v, 0, self.index) for v in src)
                and type(live) is list
                and all(type(r) is list and all(type(v) is bool for v in r) for r in live))


def depth_ok(doc: Any, limit: int = MAX_DEPTH) -> bool:
    """Lists and objects nest at most ``limit`` deep (iterative: no recursion on hostile input)."""
    stack = [(doc, 1)]
    while stack:
        obj, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(obj, dict):
            stack.extend((v, depth + 1) for v in obj.values() if isinstance(v, (dict, list)))
        elif isinstance(obj, list):
            stack.extend((v, depth + 1) for v in obj if isinstance(v, (dict, list)))
    return True
