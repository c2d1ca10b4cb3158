"""Mapping reports: a dict (JSON), a per-layer CSV and a text table; atomic writes.

    >>> print(format_table(net))
    >>> write_reports(net, "out/")   # out/mapping.json, out/mapping.csv, out/mapping.txt
"""

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from common.io import write_text

CSV_FIELDS = ("name", "kind", "rows", "cols", "rank", "grid", "n_crossbars", "baseline_crossbars",
              "cells", "baseline_cells", "utilization", "nonzeros", "input_wires", "output_wires",
              "area_um2")


def _wires(net) -> dict[str, dict[str, int]]:
    """matrix name -> {'input': wires, 'output': wires, 'operand': wires}."""
    out: dict[str, dict[str, int]] = {}
    for n in net.nets:
        d = out.setdefault(n.matrix, {"input": 0, "output": 0, "operand": 0})
        d[n.kind] += n.width
    return out


def _matrix_dict(mm, wires) -> dict[str, Any]:
    w = wires.get(mm.name, {"input": 0, "output": 0, "operand": 0})
    return {"name": mm.name, "shape": list(mm.shape), "grid": list(mm.grid),
            "n_crossbars": mm.n_crossbars, "cells": mm.cells, "utilization": mm.utilization,
            "nonzeros": mm.nonzeros, "input_wires": w["input"], "output_wires": w["output"],
            "operand_wires": w["operand"]}


def to_dict(net) -> dict[str, Any]:
    """Everything a report needs, JSON-serializable. ``layers[i]['grid']`` lists one [A, B]
    per matrix (two for a low-rank pair: U then V)."""
    wires = _wires(net)
    layers = []
    for layer in net.layers:
        mats = [_matrix_dict(m, wires) for m in layer.matrices]
        layers.append({
            "name": layer.name, "kind": layer.kind, "shape": list(layer.shape), "rank": layer.rank,
            "groups": layer.groups,
            "grid": [m["grid"] for m in mats], "n_crossbars": layer.n_crossbars,
            "cells": layer.cells, "utilization": layer.utilization, "area_um2": layer.area_um2,
            "nonzeros": sum(m["nonzeros"] for m in mats),
            "input_wires": sum(m["input_wires"] for m in mats),
            "output_wires": sum(m["output_wires"] for m in mats),
            "operand_wires": sum(m["operand_wires"] for m in mats),
            "baseline": {"n_crossbars": layer.baseline_crossbars, "cells": layer.baseline_cells},
            "matrices": mats,
        })
    b = net.baseline
    return {
        "n_crossbars": net.n_crossbars, "cells": net.cells,
        "cell_area_ratio": net.cell_area_ratio, "crossbar_area_ratio": net.crossbar_area_ratio,
        "area_um2": net.area_um2, "spec": net.spec.to_dict(),
        "slices": net.spec.slices,  # crossbars per tile (weight bit slices); counted above
        "input_shape": list(net.input_shape),
        "layers": layers,
        "nets": {"count": len(net.nets), "total_wires": net.total_wires,
                 "input_nets": sum(n.kind == "input" for n in net.nets),
                 "output_nets": sum(n.kind == "output" for n in net.nets),
                 "operand_nets": sum(n.kind == "operand" for n in net.nets)},
        "baseline": {"n_crossbars": b.n_crossbars, "cells": b.cells, "area_um2": b.area_um2,
                     "n_nets": b.n_nets, "total_wires": b.total_wires},
    }


def _rows(d: dict) -> list[dict[str, Any]]:
    return [{"name": x["name"], "kind": x["kind"], "rows": x["shape"][0], "cols": x["shape"][1],
             "rank": "" if x["rank"] is None else x["rank"],
             "grid": "+".join(f"{a}x{b}" for a, b in x["grid"]),
             "n_crossbars": x["n_crossbars"], "baseline_crossbars": x["baseline"]["n_crossbars"],
             "cells": x["cells"], "baseline_cells": x["baseline"]["cells"],
             "utilization": round(x["utilization"], 6), "nonzeros": x["nonzeros"],
             "input_wires": x["input_wires"], "output_wires": x["output_wires"],
             "area_um2": round(x["area_um2"], 3)} for x in d["layers"]]


def to_csv(net) -> str:
    """One row per layer (CSV_FIELDS)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(_rows(to_dict(net)))
    return buf.getvalue()


def format_table(net) -> str:
    """Human-readable per-layer table with totals, dense baseline and ratios."""
    d = to_dict(net)
    head = ("layer", "shape", "rank", "grid", "xbars", "dense", "cells", "dense cells", "util",
            "wires", "area um2")
    body = [(r["name"], f"{r['rows']}x{r['cols']}", str(r["rank"] or "-"), r["grid"],
             str(r["n_crossbars"]), str(r["baseline_crossbars"]), str(r["cells"]),
             str(r["baseline_cells"]), f"{r['utilization']:.1%}",
             str(r["input_wires"] + r["output_wires"]), f"{r['area_um2']:.0f}") for r in _rows(d)]
    b = d["baseline"]
    body.append(("total", "", "", "", str(d["n_crossbars"]), str(b["n_crossbars"]), str(d["cells"]),
                 str(b["cells"]), "", str(d["nets"]["total_wires"]), f"{d['area_um2']:.0f}"))
    width = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = lambda row: "  ".join(c.ljust(w) if i < 4 else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(row, width, strict=True)))
    rule = "-" * len(line(head))
    s = net.spec
    bits = "" if s.weight_bits is None else (
        f", {s.weight_bits}-bit weights" + ("" if s.cell_bits is None else
                                          f" in {s.slices} slices of {s.cell_bits}-bit cells "
                                          f"(xbars = tiles x {s.slices})"))
    return "\n".join([
        f"crossbar {s.rows}x{s.cols} {s.encoding} ({s.lcols} logical columns){bits}, "
        f"{s.crossbar_area_um2:.1f} um2 per crossbar with periphery",
        line(head), rule, *map(line, body[:-1]), rule, line(body[-1]),
        f"cell_area_ratio     {d['cell_area_ratio']:.2%}   (cells / dense cells)",
        f"crossbar_area_ratio {d['crossbar_area_ratio']:.2%}   (crossbars / dense crossbars)",
        f"area {d['area_um2'] / 1e6:.4f} mm2 (dense {b['area_um2'] / 1e6:.4f} mm2); "
        f"nets {d['nets']['count']} ({d['nets']['total_wires']} wires), "
        f"dense {b['n_nets']} ({b['total_wires']} wires)",
    ])


def write_reports(net, out_dir: str | os.PathLike, extra: dict | None = None) -> dict[str, Path]:
    """Write mapping.json (to_dict + ``extra``), mapping.csv and mapping.txt into ``out_dir``."""
    out = Path(out_dir)
    d = {**(extra or {}), **to_dict(net)}
    return {
        "json": write_text(out / "mapping.json", json.dumps(d, indent=2) + "\n"),
        "csv": write_text(out / "mapping.csv", to_csv(net)),
        "txt": write_text(out / "mapping.txt", format_table(net) + "\n"),
    }
