"""Energy, latency and throughput per inference (hardware-model.md section 7).

    >>> rep = energy(net)                             # a MappedNetwork; dense baseline beside
    >>> rep = energy(net, routing, dense_routing)     # + interconnect from the routed lengths
    >>> rep.energy_pj, rep.latency_ns, rep.throughput_ips, rep.interconnect_share
    >>> rep.to_dict()                                 # per-matrix and per-layer rows, totals
    >>> print(format_table(rep))

Units everywhere: pJ, ns, inferences/s. Every figure comes from the spec's Technology
(mapping/spec.py, presets in mapping/presets). With S = ceil(bits_per_signal / dac_bits) reads
per evaluation and, for a built tile, r live rows, c live logical columns and p live physical
columns (2c differential, c unsigned, c + 1 offset: the reference column is read with them):

- tile, per evaluation: S*r*p*cell_read + S*r*(dac + input_register)
  + S*p*(col_periphery + adc + shift_add + output_register) + c*adder;
- output units of a matrix, per evaluation: its live output columns (columns with a non-zero
  weight: a deleted column only outputs its bias) x accumulate, plus activation + pool for the
  last matrix of a layer (U of a low-rank pair feeds V directly);
- interconnect, per routed connection (a two-pin bus, or an edge of a broadcast tree):
  evaluations x width x bits_per_signal x length (gcell edges x gcell_um) x wire_cap x
  supply_v^2 x activity_factor. The evaluations are those of the matrix the connection serves
  (``Routing.layers``): its driver puts a new word on every wire at each evaluation of that
  matrix (an input bus carries one window of rows per evaluation; an output bus one partial sum
  per column). Counting the producing matrix's evaluations instead would charge fc1 after a
  flattened conv once per conv pixel, though each flattened value crosses the bus once;
- energy of a matrix = evaluations x (tiles + output units) + its interconnect;
- weights bit-sliced into S' = spec.slices crossbars per tile (hardware-model section 2): every
  tile part but the reduction-tree adder (which adds the recombined sums) counts S' times.

Latency of a matrix = evaluations x S x (read_time + adc_conversion_time x conversions per ADC)
(read and conversion in sequence; the tiles of a matrix in parallel, so the conversions per ADC
are the largest over its tiles: ceil(p / ADCs per crossbar), the ADC skipping dead bit lines)
+ per hop (into its tiles, out to its output units) the Elmore delay 0.5 x wire_res x wire_cap
x L^2 of the longest routed net of that hop (a design net's full path, producer to tile). The
wire delay counts once per hop: with registers at both ends a transfer overlaps the previous
evaluation, so only the pipeline's fill sees it. Inference latency = the sum over matrices in
dataflow order; throughput (layer-pipelined) = 1 / the slowest matrix's latency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.errors import ConfigError
from mapping.spec import CrossbarSpec

TILE_PARTS = ("array", "dac", "input_register", "sample_hold", "adc", "shift_add",
              "output_register", "adder")
COMPONENTS = TILE_PARTS + ("output_units", "interconnect")
"""Energy components of every row and total, in this order."""
FJ_PER_PJ = 1e3
OHM_FF_IN_NS = 1e-6  # 1 ohm x 1 fF = 1e-15 s


@dataclass(frozen=True, eq=False)
class MatrixLoad:
    """What the energy model needs of one matrix."""

    name: str
    layer: str
    """The layer it belongs to (a low-rank pair: two matrices, one layer)."""
    evaluations: int
    """Evaluations per inference (1 linear, H_out x W_out conv)."""
    out_cols: int
    """Live output columns (with at least one non-zero weight): the output units' work."""
    last: bool
    """Last matrix of its layer: activation and pooling follow it."""
    rows: np.ndarray
    """(T,) live rows of each built tile."""
    cols: np.ndarray
    """(T,) live logical columns of each built tile."""


def loads(net) -> list[MatrixLoad]:
    """Per matrix of a MappedNetwork (dataflow order) its built tiles' live rows and columns."""
    out = []
    for layer in net.layers:
        for i, mm in enumerate(layer.matrices):
            built = mm.built
            out.append(MatrixLoad(mm.name, layer.name, int(net.sources[mm.name].evaluations),
                                  int(mm.col_nonzero.any(axis=0).sum()),
                                  i == len(layer.matrices) - 1,
                                  mm.row_counts[built].astype(np.int64),
                                  mm.col_counts[built].astype(np.int64)))
    return out


def loads_from_design(design, matrices: list[dict]) -> list[MatrixLoad]:
    """The same from a Design (a design file) and the per-matrix rows of an earlier report
    (``EnergyReport.to_dict()["matrices"]``: name, layer, evaluations, out_cols, last). A
    tile's live rows are the widths of its input buses, its live columns its output bus's."""
    names = [u.name for u in design.units]
    index = {n: i for i, n in enumerate(names)}
    nets = design.nets
    dst = np.array([index[n.dst] for n in nets], dtype=np.int64)
    src = np.array([index[n.src] for n in nets], dtype=np.int64)
    width = np.array([n.width for n in nets], dtype=np.int64)
    inp = np.array([n.kind == "input" for n in nets], dtype=bool)
    rows = np.bincount(dst[inp], weights=width[inp], minlength=len(names)).astype(np.int64)
    cols = np.bincount(src[~inp], weights=width[~inp], minlength=len(names)).astype(np.int64)
    tiles: dict[str, list[int]] = {}
    for i, u in enumerate(design.units):
        if u.kind == "tile":
            tiles.setdefault(u.matrix, []).append(i)
    known = {m["name"] for m in matrices}
    if set(tiles) - known:
        raise ConfigError(f"the energy report's matrices {sorted(known)} do not cover the "
                          f"design's {sorted(tiles)}; map this design again")
    return [MatrixLoad(m["name"], m["layer"], int(m["evaluations"]), int(m["out_cols"]),
                       bool(m["last"]), rows[tiles.get(m["name"], [])],
                       cols[tiles.get(m["name"], [])]) for m in matrices]


@dataclass(eq=False)
class EnergyReport:
    """Energy (pJ), latency (ns) and throughput (inferences/s) of one inference."""

    matrices: list[dict]
    """Per matrix: name, layer, evaluations, tiles, live_rows, live_cols, out_cols, last,
    energy_pj {component: pJ}, total_pj, compute_ns, wire_ns, latency_ns."""
    layers: list[dict]
    """Per layer: name, matrices, evaluations, tiles, energy_pj, total_pj, latency_ns,
    throughput_ips, interconnect_share."""
    spec: CrossbarSpec
    routed: bool
    """Interconnect energy and wire delay from a routing (else both 0)."""
    dense: EnergyReport | None = field(default=None, repr=False)
    """The dense baseline's report, same crossbars and technology."""

    @property
    def components_pj(self) -> dict[str, float]:
        return {k: float(sum(m["energy_pj"][k] for m in self.matrices)) for k in COMPONENTS}

    @property
    def energy_pj(self) -> float:
        return float(sum(m["total_pj"] for m in self.matrices))

    @property
    def interconnect_pj(self) -> float:
        return self.components_pj["interconnect"]

    @property
    def interconnect_share(self) -> float:
        """Interconnect energy / total energy."""
        return self.interconnect_pj / self.energy_pj if self.energy_pj else 0.0

    @property
    def latency_ns(self) -> float:
        return float(sum(m["latency_ns"] for m in self.matrices))

    @property
    def wire_ns(self) -> float:
        return float(sum(m["wire_ns"] for m in self.matrices))

    @property
    def throughput_ips(self) -> float:
        """Layer-pipelined: 1 / the slowest matrix's latency."""
        slowest = max((m["latency_ns"] for m in self.matrices), default=0.0)
        return 1e9 / slowest if slowest > 0 else float("inf")

    def totals(self) -> dict:
        return {"energy_pj": self.energy_pj, "energy_pj_by_component": self.components_pj,
                "interconnect_pj": self.interconnect_pj,
                "interconnect_share": self.interconnect_share, "latency_ns": self.latency_ns,
                "wire_ns": self.wire_ns, "throughput_ips": self.throughput_ips}

    def to_dict(self) -> dict:
        d = {"units": {"energy": "pJ", "latency": "ns", "throughput": "inferences/s"},
             "crossbar": str(self.spec), "slices": self.spec.slices,
             "reads_per_evaluation": self.spec.tech.reads_per_evaluation,
             "routed": self.routed, **self.totals(), "layers": self.layers,
             "matrices": self.matrices}
        if self.dense is not None:
            dd = self.dense
            d["dense"] = dd.to_dict()
            d["ratio_to_dense"] = {"energy": _ratio(self.energy_pj, dd.energy_pj),
                                   "latency": _ratio(self.latency_ns, dd.latency_ns),
                                   "throughput": _ratio(self.throughput_ips, dd.throughput_ips)}
        return d


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def physical_cols(cols: np.ndarray, encoding: str) -> np.ndarray:
    """Live physical columns (bit lines) of tiles with ``cols`` live logical columns."""
    cols = np.asarray(cols, dtype=np.int64)
    if encoding == "differential":
        return 2 * cols
    if encoding == "offset":
        return cols + (cols > 0)
    return cols


def tile_energy_pj(rows, cols, spec: CrossbarSpec) -> dict[str, np.ndarray]:
    """Energy of one evaluation of tiles with ``rows`` live rows and ``cols`` live logical
    columns (arrays of one shape), per component of TILE_PARTS."""
    t = spec.tech
    s = t.reads_per_evaluation
    r = np.asarray(rows, dtype=np.float64)
    p = physical_cols(cols, spec.encoding).astype(np.float64)
    return {"array": s * r * p * t.cell_read_energy_pj,
            "dac": s * r * t.dac_energy_pj,
            "input_register": s * r * t.input_register_energy_pj,
            "sample_hold": s * p * t.col_periphery_energy_pj,
            "adc": s * p * t.adc_energy_pj,
            "shift_add": s * p * t.shift_add_energy_pj,
            "output_register": s * p * t.output_register_energy_pj,
            "adder": np.asarray(cols, dtype=np.float64) * t.adder_energy_pj}


def crossbar_breakdown(spec: CrossbarSpec) -> dict[str, dict[str, float]]:
    """Per component of one fully used crossbar (every row and physical column live): its area
    (um2) and energy per read (pJ). The areas add up to ``spec.crossbar_area_um2``; what a
    per-component table of a published accelerator lists (benchmarks/energy.py)."""
    t, r, c = spec.tech, spec.rows, spec.cols
    s = t.reads_per_evaluation
    full = {"differential": c // 2, "offset": c - 1, "unsigned": c}[spec.encoding]
    per_eval = tile_energy_pj(np.array([r]), np.array([full]), spec)
    energy = {k: float(v[0]) / s for k, v in per_eval.items() if k != "adder"}
    area = {"array": r * c * t.cell_area_um2, "dac": r * t.row_driver_area_um2,
            "input_register": t.input_register_area_um2,
            "sample_hold": c * t.col_periphery_area_um2,
            "adc": -(-c // int(t.cols_per_adc)) * t.adc_area_um2,
            "shift_add": t.shift_add_area_um2, "output_register": t.output_register_area_um2}
    out = {k: {"area_um2": float(area[k]), "energy_pj": energy[k]} for k in area}
    out["overhead"] = {"area_um2": float(t.crossbar_overhead_area_um2), "energy_pj": 0.0}
    return out


def estimate(matrices: list[MatrixLoad], spec: CrossbarSpec, routing=None,
             design=None) -> EnergyReport:
    """The report of ``matrices`` on ``spec``; with ``routing`` (and the ``design`` it routed,
    for which net is which hop) also interconnect energy and wire delay."""
    t = spec.tech
    s = t.reads_per_evaluation
    n_adc = -(-spec.cols // int(t.cols_per_adc))
    wire_pj, hop_um = _interconnect(matrices, spec, routing, design)
    rows = []
    for i, m in enumerate(matrices):
        parts = {k: float(v.sum()) * m.evaluations * (1 if k == "adder" else spec.slices)
                 for k, v in tile_energy_pj(m.rows, m.cols, spec).items()}  # slices: section 2
        unit = t.accumulate_energy_pj + (t.activation_energy_pj + t.pool_energy_pj if m.last
                                         else 0.0)
        parts["output_units"] = m.evaluations * m.out_cols * unit
        parts["interconnect"] = float(wire_pj[i])
        p = physical_cols(m.cols, spec.encoding)
        conv = int(-(-p.max() // n_adc)) if len(p) else 0
        compute = (m.evaluations * s * (t.read_time_ns + t.adc_conversion_time_ns * conv)
                   if len(p) else 0.0)
        wire = float((0.5 * t.wire_res_ohm_per_um * t.wire_cap_ff_per_um * hop_um[i] ** 2).sum()
                     * OHM_FF_IN_NS)
        rows.append({"name": m.name, "layer": m.layer, "evaluations": m.evaluations,
                     "tiles": len(m.rows), "live_rows": int(m.rows.sum()),
                     "live_cols": int(m.cols.sum()), "out_cols": m.out_cols, "last": m.last,
                     "energy_pj": parts, "total_pj": float(sum(parts.values())),
                     "compute_ns": float(compute), "wire_ns": wire,
                     "latency_ns": float(compute) + wire})
    return EnergyReport(rows, _layers(rows), spec, routing is not None)


def _layers(rows: list[dict]) -> list[dict]:
    out: dict[str, dict] = {}
    for r in rows:
        d = out.setdefault(r["layer"], {"name": r["layer"], "matrices": [], "tiles": 0,
                                        "energy_pj": dict.fromkeys(COMPONENTS, 0.0),
                                        "latency_ns": 0.0, "slowest_ns": 0.0})
        d["matrices"].append(r["name"])
        d["evaluations"] = r["evaluations"]
        d["tiles"] += r["tiles"]
        for k in COMPONENTS:
            d["energy_pj"][k] += r["energy_pj"][k]
        d["latency_ns"] += r["latency_ns"]
        d["slowest_ns"] = max(d["slowest_ns"], r["latency_ns"])
    for d in out.values():
        d["total_pj"] = float(sum(d["energy_pj"].values()))
        slowest = d.pop("slowest_ns")
        d["throughput_ips"] = 1e9 / slowest if slowest > 0 else float("inf")
        d["interconnect_share"] = (d["energy_pj"]["interconnect"] / d["total_pj"]
                                   if d["total_pj"] else 0.0)
    return list(out.values())


def _interconnect(matrices: list[MatrixLoad], spec: CrossbarSpec, routing,
                  design) -> tuple[np.ndarray, np.ndarray]:
    """(per matrix interconnect pJ, per matrix (input hop, output hop) longest net in um)."""
    n = len(matrices)
    pj, hop = np.zeros(n), np.zeros((n, 2))
    if routing is None:
        return pj, hop
    t = spec.tech
    which = {m.name: i for i, m in enumerate(matrices)}
    evals = np.array([m.evaluations for m in matrices], dtype=np.float64)
    length_um = routing.lengths.astype(np.float64) * routing.config.gcell_um
    mat = _index(routing.layers, which, "routed connection")
    per_bit_pj = (t.wire_cap_ff_per_um * t.supply_v ** 2 * t.activity_factor / FJ_PER_PJ
                  * t.bits_per_signal)
    np.add.at(pj, mat, evals[mat] * routing.widths * length_um * per_bit_pj)
    if design is None:
        return pj, hop
    nets = design.nets
    if routing.n_nets != len(nets):
        raise ConfigError(f"the routing has {routing.n_nets} nets, the design {len(nets)}; "
                          "route this design")
    if routing.net_connections is None:
        net_um = length_um
    else:
        ids = np.concatenate(routing.net_connections).astype(np.int64)
        owner = np.repeat(np.arange(len(nets)), [len(c) for c in routing.net_connections])
        net_um = np.bincount(owner, weights=length_um[ids], minlength=len(nets))
    net_mat = _index([x.matrix for x in nets], which, "net")
    kind = np.array([x.kind != "input" for x in nets], dtype=np.int64)  # 0 in, 1 out
    np.maximum.at(hop, (net_mat, kind), net_um)
    return pj, hop


def _index(names: list[str], which: dict[str, int], what: str) -> np.ndarray:
    uniq, inv = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
    missing = [u for u in uniq if u not in which]
    if missing:
        raise ConfigError(f"{what}s of matrices {missing[:3]} that the energy model does not "
                          "know; pass the routing of this design")
    return np.array([which[u] for u in uniq], dtype=np.int64)[inv]


def energy(net, routing=None, dense_routing=None, *, dense: bool = True) -> EnergyReport:
    """The report of a MappedNetwork (with ``routing``: of ``net.design``), and beside it the
    dense baseline's (with ``dense_routing``: of ``net.dense_baseline().design``)."""
    rep = estimate(loads(net), net.spec, routing, net.design if routing is not None else None)
    if dense:
        d = net.dense_baseline()
        rep.dense = estimate(loads(d), d.spec, dense_routing,
                             d.design if dense_routing is not None else None)
    return rep


def _fmt(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    return f"{x:.4g}{unit}"


def format_table(rep: EnergyReport | dict) -> str:
    """Per layer and total: energy (pJ), interconnect share, latency (ns), throughput
    (inferences/s), the dense baseline's beside."""
    d = rep.to_dict() if isinstance(rep, EnergyReport) else rep
    dense = {x["name"]: x for x in (d.get("dense") or {}).get("layers", [])}
    head = ("layer", "evals", "tiles", "energy pJ", "dense pJ", "wire %", "latency ns",
            "dense ns", "inf/s")
    body = []
    for x in d["layers"]:
        dn = dense.get(x["name"], {})
        body.append((x["name"], str(x["evaluations"]), str(x["tiles"]), _fmt(x["total_pj"]),
                     _fmt(dn.get("total_pj")), f"{100 * x['interconnect_share']:.2f}",
                     _fmt(x["latency_ns"]), _fmt(dn.get("latency_ns")),
                     _fmt(x["throughput_ips"])))
    dd = d.get("dense") or {}
    body.append(("total", "", str(sum(x["tiles"] for x in d["layers"])), _fmt(d["energy_pj"]),
                 _fmt(dd.get("energy_pj")), f"{100 * d['interconnect_share']:.2f}",
                 _fmt(d["latency_ns"]), _fmt(dd.get("latency_ns")), _fmt(d["throughput_ips"])))
    width = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    line = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                                 for i, (c, w) in enumerate(zip(row, width, strict=True)))
    rule = "-" * len(line(head))
    note = ("interconnect from the routed lengths" if d["routed"]
            else "no routing: interconnect not counted")
    return "\n".join([f"crossbar {d['crossbar']}, {d['reads_per_evaluation']} reads per "
                      f"evaluation; {note}", line(head), rule, *map(line, body[:-1]), rule,
                      line(body[-1]),
                      f"dense throughput {_fmt(dd.get('throughput_ips'))} inferences/s"])


def markdown_lines(d: dict) -> list[str]:
    """An 'Energy and latency' table (markdown) of ``EnergyReport.to_dict()``, the dense
    baseline beside."""
    dense = {x["name"]: x for x in (d.get("dense") or {}).get("layers", [])}
    dd = d.get("dense") or {}
    note = ("interconnect from the routed wires" if d["routed"]
            else "interconnect not counted (no routing)")
    lines = [f"Per inference, crossbar {d['crossbar']}; {note}.", "",
             "| layer | evaluations | energy (pJ) | dense (pJ) | interconnect | latency (ns) | "
             "dense (ns) | throughput (inf/s) | dense (inf/s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for x in d["layers"]:
        dn = dense.get(x["name"], {})
        lines.append(f"| {x['name']} | {x['evaluations']} | {_fmt(x['total_pj'])} | "
                     f"{_fmt(dn.get('total_pj'))} | {100 * x['interconnect_share']:.2f} % | "
                     f"{_fmt(x['latency_ns'])} | {_fmt(dn.get('latency_ns'))} | "
                     f"{_fmt(x['throughput_ips'])} | {_fmt(dn.get('throughput_ips'))} |")
    lines.append(f"| **total** | | {_fmt(d['energy_pj'])} | {_fmt(dd.get('energy_pj'))} | "
                 f"{100 * d['interconnect_share']:.2f} % | {_fmt(d['latency_ns'])} | "
                 f"{_fmt(dd.get('latency_ns'))} | {_fmt(d['throughput_ips'])} | "
                 f"{_fmt(dd.get('throughput_ips'))} |")
    return lines


def summary(d: dict) -> dict:
    """The headline figures of ``EnergyReport.to_dict()`` (a stage's metrics)."""
    dd = d.get("dense") or {}
    return {"energy_pj": d["energy_pj"], "interconnect_share": d["interconnect_share"],
            "latency_ns": d["latency_ns"], "throughput_ips": d["throughput_ips"],
            "routed": d["routed"], "dense_energy_pj": dd.get("energy_pj"),
            "dense_latency_ns": dd.get("latency_ns"),
            "dense_throughput_ips": dd.get("throughput_ips"),
            "energy_ratio": (d.get("ratio_to_dense") or {}).get("energy")}


def routed_energy(mapped: dict, design, dense_design, spec: CrossbarSpec, routing,
                  dense_routing) -> EnergyReport:
    """The report of a design file and its dense baseline's with their routings, from the map
    stage's report ``mapped`` (its matrices' evaluations, live output columns, layers)."""
    rep = estimate(loads_from_design(design, mapped["matrices"]), spec, routing, design)
    dense_rows = (mapped.get("dense") or {}).get("matrices") or []
    tiled = {u.matrix for u in dense_design.units if u.kind == "tile"} if dense_design else {None}
    if tiled <= {m["name"] for m in dense_rows}:  # else no dense.json: the design stood in
        rep.dense = estimate(loads_from_design(dense_design, dense_rows), spec, dense_routing,
                             dense_design)
    return rep
