"""Energy, latency and throughput per inference (hardware-model.md section 7, mapping/energy.py).

    python benchmarks/energy.py --replace                   # every part -> rows of results/energy.json
    python benchmarks/energy.py --only convnet --replace    # some parts (isaac lenet convnet vgg16)

Each part keeps one row of the energy ledger, its latest measurement; a part that has a row
runs again only with ``--replace`` (the new row takes the old one's place and headline, also
when its name changed: the names say where the weights come from).

1. ``isaac``: ISAAC (Shafiee et al., ISCA 2016), Table 6 beside the ``isaac_32nm`` preset. The
   correspondence: one ISAAC IMA = 8 of this model's crossbar tiles (128x128, unsigned
   encoding), each with its 128 DACs, 128 sample-and-holds, one ADC and 1/8 of the IMA's
   shift-and-add units, input register (IR) and output register (OR); one ISAAC tile = 12 IMAs
   (96 crossbar tiles) + the tile's digital units, which here are the output units A(b)
   (sigmoid -> activation, max-pool -> pool, S+A and OR -> accumulate) + eDRAM, its bus and a
   quarter of a router, which this flow replaces by routed point-to-point buses (interconnect
   energy from routed wires) and so does not model. Power of a component = its energy per
   read x reads per second, the crossbar read every max(read_time, conversions per ADC x
   conversion time) = 100 ns as in ISAAC's pipeline (the section-7 latency is more
   conservative: it does not overlap a read with the conversions of the previous one). The
   tile-level units are taken to handle one value per cycle of ISAAC's 1.2 GHz tile clock.
   Row ``isaac-table6``.
2. ``lenet``, ``convnet``: the README's headline checkpoints, shipped as ``NAME:dense`` and
   ``NAME:group-scissor`` (models/pretrained), each mapped at the crossbar its manifest
   records (64x64 differential for LeNet), then placed and routed as the route stage does
   (group_scissor.physical.route_with_baseline: the compile flow's fast placement,
   ``route_routable`` growing the whitespace until zero overflow, trees or not decided on the
   dense baseline). Energy, latency and throughput per layer and total, with the routed
   interconnect and its share, the compressed net beside the dense checkpoint; the dense
   checkpoint's design is checked to be the compressed net's dense baseline (every tile built,
   every wire live). Row ``NAME-energy-shipped-dense+group-scissor-64x64``.
   A model without both shipped checkpoints (ConvNet until they are trained and shipped; run
   ``--only convnet --replace`` then) is measured on random weights instead, and its row says
   so (``NAME-energy-random-init-svd0.3+random-deletion-64x64``, weights "NO TRAINED
   CHECKPOINT"): PyTorch's default initialization (seed 0), one-shot SVD truncation of the
   registered low-rank layers at tolerance 0.3 (pairs that do not save cells merged back, as
   the clip stage does), then a random crossbar-aligned group deletion (50 % of the input-wire
   groups, 30 % of the output-wire groups, 20 % of the tiles of matrices with at least 4
   tiles), beside its dense baseline, at 64x64, routed the same way. Its accuracy is
   meaningless; it shows how the energy follows the structure.
3. ``vgg16``: VGG-16 (ImageNet, configuration D, models/vgg.py) dense at 128x128 (random
   initialization: every weight non-zero, so the design is its dense baseline), mapped in one
   child process and placed + routed by ``route_routable`` (as trees on arrays, a big design)
   in a second one, as benchmarks/routing_big.py does; the row records the overflow (0: a
   routable design), the die (routable area) beside the crossbar area, map / place / route
   seconds and each process's peak RSS, and the energy with the routed interconnect. Row
   ``vgg16-energy-random-init-dense-128x128-routable``.
"""

import argparse
import copy
import dataclasses
import json
import os
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import children, ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from benchmarks.routing_scale import group_deleted  # noqa: E402
from common.errors import ConfigError  # noqa: E402
from mapping.energy import crossbar_breakdown, energy, format_table  # noqa: E402
from mapping.spec import CrossbarSpec, Technology  # noqa: E402

PARTS = ("isaac", "lenet", "convnet", "vgg16")
TOLERANCE = 0.3  # of the weight energy: random weights have flat spectra, so truncation needs it
DELETION = ("50 % of the input-wire groups, 30 % of the output-wire groups, 20 % of the tiles "
            "of matrices with >= 4 tiles (numpy seed 0)")

# ISAAC, ISCA 2016, Table 6: (component, parameters, power mW, area mm^2). IMA rows are per
# IMA (12 per tile); tile rows per tile. "[?]": reconstructed from memory, not checked against
# the PDF here (see mapping/presets/isaac_32nm.toml); the totals add up.
IMA_ROWS = [
    ("ADC", "8-bit, 1.28 GS/s [? 1.2 GSps], x8", 16.0, 0.0096),
    ("DAC", "1-bit, 8 x 128", 4.0, 0.00017),
    ("S+H", "8 x 128", 0.01, 0.00004),
    ("Memristor array", "8 x 128x128, 2 bits/cell [?]", 2.4, 0.0002),
    ("S+A", "x4", 0.2, 0.00024),
    ("IR", "2 KB", 1.24, 0.0021),
    ("OR", "256 B", 0.23, 0.00077),
]
IMA_TOTAL = ("12 IMAs", "the IMA rows x 12 IMAs per tile", 289.0, 0.157)
TILE_ROWS = [
    ("eDRAM buffer", "64 KB, 4 banks, 256-bit bus", 20.7, 0.083),
    ("eDRAM-to-IMA bus", "384 wires", 7.0, 0.090),
    ("Router (1/4)", "32-bit flits, 8 ports, shared by 4 tiles: 42 mW, 0.151 mm^2 [?]", 10.5,
     0.03775),
    ("Sigmoid", "x2", 0.52, 0.0006),
    ("S+A (tile)", "x1", 0.05, 0.00006),
    ("MaxPool", "x1", 0.4, 0.00024),
    ("OR (tile)", "3 KB", 1.68, 0.0032),
]
TILE_TOTAL = ("Tile total", "12 IMAs + the above", 330.0, 0.372)
# our component of each IMA row (mapping.energy.crossbar_breakdown keys)
IMA_PARTS = {"ADC": "adc", "DAC": "dac", "S+H": "sample_hold", "Memristor array": "array",
             "S+A": "shift_add", "IR": "input_register", "OR": "output_register"}
CROSSBARS_PER_IMA, IMAS_PER_TILE, TILE_CLOCK_GHZ = 8, 12, 1.2
# tile-level rows modeled as output units: (technology field, units of it in a tile)
TILE_UNITS = {"Sigmoid": ("activation_energy_pj", 2), "MaxPool": ("pool_energy_pj", 1),
              "S+A + OR (tile)": ("accumulate_energy_pj", 1)}
ACCUMULATE = ("S+A (tile)", "OR (tile)")  # one output-unit figure here: accumulate


def isaac_spec() -> CrossbarSpec:
    return CrossbarSpec(128, 128, "unsigned", Technology.preset("isaac_32nm"))


def isaac_rows() -> list[dict]:
    """Table 6 beside the isaac_32nm preset: per row, the paper's power (mW) and area (mm^2)
    and ours (None where this model has no such component)."""
    spec = isaac_spec()
    t = spec.tech
    n_adc = -(-spec.cols // t.cols_per_adc)
    cycle_ns = max(t.read_time_ns, -(-spec.cols // n_adc) * t.adc_conversion_time_ns)
    parts = crossbar_breakdown(spec)
    rows = []
    for name, params, p_mw, a_mm2 in IMA_ROWS:
        c = parts[IMA_PARTS[name]]
        rows.append({"level": "IMA", "component": name, "params": params, "paper_mw": p_mw,
                     "paper_mm2": a_mm2,
                     "ours_mw": CROSSBARS_PER_IMA * c["energy_pj"] / cycle_ns,  # pJ/ns = mW
                     "ours_mm2": CROSSBARS_PER_IMA * c["area_um2"] / 1e6})
    ima_mw = sum(r["ours_mw"] for r in rows)
    ima_mm2 = CROSSBARS_PER_IMA * spec.crossbar_area_um2 / 1e6
    rows.append({"level": "IMA", "component": IMA_TOTAL[0], "params": IMA_TOTAL[1],
                 "paper_mw": IMA_TOTAL[2], "paper_mm2": IMA_TOTAL[3],
                 "ours_mw": IMAS_PER_TILE * ima_mw, "ours_mm2": IMAS_PER_TILE * ima_mm2})
    tile_mw = IMAS_PER_TILE * ima_mw
    acc = [r for r in TILE_ROWS if r[0] in ACCUMULATE]
    combined = ("S+A + OR (tile)", "the two rows above, one output-unit figure here",
                sum(r[2] for r in acc), sum(r[3] for r in acc))
    for name, params, p_mw, a_mm2 in [*TILE_ROWS, combined]:
        ours = None
        if name in TILE_UNITS:
            field, units = TILE_UNITS[name]
            ours = units * getattr(t, field) * TILE_CLOCK_GHZ  # pJ x GHz = mW
            tile_mw += ours
        rows.append({"level": "tile", "component": name, "params": params, "paper_mw": p_mw,
                     "paper_mm2": a_mm2, "ours_mw": ours, "ours_mm2": None})
    rows.append({"level": "tile", "component": TILE_TOTAL[0], "params": TILE_TOTAL[1],
                 "paper_mw": TILE_TOTAL[2], "paper_mm2": TILE_TOTAL[3], "ours_mw": tile_mw,
                 "ours_mm2": IMAS_PER_TILE * ima_mm2})
    return rows


def _g(x, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def print_isaac(rows: list[dict]) -> None:
    print("ISAAC (ISCA 2016) Table 6 vs. the isaac_32nm preset: one IMA = 8 crossbar tiles of "
          "128x128; power at one read per 100 ns")
    print(f"{'component':18s} {'paper mW':>9s} {'ours mW':>9s} {'paper mm2':>10s} "
          f"{'ours mm2':>10s}  parameters")
    for r in rows:
        print(f"{r['component']:18s} {_g(r['paper_mw']):>9s} {_g(r['ours_mw']):>9s} "
              f"{_g(r['paper_mm2']):>10s} {_g(r['ours_mm2']):>10s}  {r['params']}")
    print("tile rows without 'ours' (eDRAM, its bus, the router) are not modeled: this flow "
          "routes point-to-point buses and counts their wires (interconnect energy); the tile's "
          "ours = 12 IMAs + the output units, ours mm2 = 96 crossbars only.\n")


# ------------------------------------------------------------ LeNet and ConvNet (part 2)

def flow_place_config():
    """The compile flow's placement settings (CompileConfig.place: the fast method)."""
    from dataclasses import fields

    from group_scissor.config import CompileConfig

    return next(f.default for f in fields(CompileConfig) if f.name == "place")


def shipped(name: str) -> dict[str, str] | None:
    """{'dense': 'NAME:dense', 'compressed': 'NAME:group-scissor'} when models.pretrained
    lists both, else None."""
    from models import pretrained

    names = {"dense": f"{name}:dense", "compressed": f"{name}:group-scissor"}
    return names if set(names.values()) <= set(pretrained.available()) else None


def shipped_spec(checkpoint: str) -> CrossbarSpec:
    """The crossbar a shipped checkpoint was compressed for (its manifest config's
    'crossbar', e.g. '64x64 differential'; 64x64 differential if it records none)."""
    from models import pretrained

    size, *enc = str(pretrained.entry(checkpoint)["config"].get("crossbar", "64x64")).split()
    return CrossbarSpec.parse(size, *enc[:1])


def row_name(part: str) -> str:
    """The ledger row a part records: it says where the weights come from."""
    if part == "isaac":
        return "isaac-table6"
    if part == "vgg16":
        return "vgg16-energy-random-init-dense-128x128-routable"
    names = shipped(part)
    if names is not None:
        spec = shipped_spec(names["compressed"])
        return f"{part}-energy-shipped-dense+group-scissor-{spec.rows}x{spec.cols}"
    return f"{part}-energy-random-init-svd{TOLERANCE:g}+random-deletion-64x64"


def route_pair(net, spec: CrossbarSpec):
    """The route stage's flow (group_scissor.physical.route_with_baseline) on the design of
    MappedNetwork ``net`` and its dense baseline: (Routable, baseline Routable, seconds)."""
    from group_scissor.physical import route_with_baseline
    from mapping.routing import RouteConfig

    t0 = time.perf_counter()
    res, resb = route_with_baseline(net.design, net.dense_baseline().design, flow_place_config(),
                                    RouteConfig.for_spec(spec), spec.crossbar_area_um2)
    return res, resb, time.perf_counter() - t0


def routing_figures(res) -> dict:
    """What a route_routable result says about the layout."""
    rt = res.routing
    return {**res.to_dict(), "overflow": rt.overflow, "wirelength": rt.wirelength,
            "signal_bound": rt.signal_bound, "routing_area_um2": rt.routing_area_um2,
            "net_model": rt.config.net_model, "reduction_trees": rt.config.reduction_trees,
            "tracks_per_gcell_edge": rt.config.capacity, "route_status": rt.status,
            "place_s": round(sum(st["place_s"] for st in res.steps), 2),
            "route_s": round(sum(st["route_s"] for st in res.steps), 2)}


def random_compressed(name: str):
    """The model with random weights, SVD-truncated at TOLERANCE and group-deleted."""
    import torch

    import models
    from group_scissor.compress import merge_unprofitable
    from group_scissor.rank_clip import clip_pair
    from models.lowrank import low_rank_layers, to_low_rank

    torch.manual_seed(0)
    dense = models.get(name)
    m = to_low_rank(copy.deepcopy(dense), list(models.info(name).low_rank_layers) or None)
    ranks = {k: clip_pair(pair, TOLERANCE)[1] for k, pair in low_rank_layers(m).items()}
    merged = merge_unprofitable(m)
    # a matrix of 1 or 2 tiles losing one would lose its layer (LeNet's conv1 is one tile)
    group_deleted(m, 64, seed=0, min_tiles=4)
    kept = {k: v for k, v in ranks.items() if k not in merged}
    return m, {"ranks": kept, "merged_back_to_dense": merged}


def from_checkpoints(name: str, names: dict[str, str]) -> tuple[dict, dict]:
    """The shipped dense and compressed checkpoints, each mapped, placed and routed as the
    route stage does: (config, metrics)."""
    import math

    import models
    from group_scissor.physical import _same
    from mapping.network import map_model
    from models import pretrained
    from models.checkpoint import load_model

    spec = shipped_spec(names["compressed"])
    shape = models.info(name).input_shape
    comp = map_model(load_model(name, names["compressed"]), spec, shape)
    dense = map_model(load_model(name, names["dense"]), spec, shape)
    res, resb, seconds = route_pair(comp, spec)
    # the dense checkpoint's own route stage: its design is its baseline (routed once); when
    # it is also the compressed design's baseline, that routing is the same
    baseline = comp.dense_baseline()
    same = _same(dense.design, baseline.design)
    if same:
        resd = resb
    else:
        resd, _, s = route_pair(dense, spec)
        seconds += s
    rep = energy(comp, res.routing, resb.routing)  # the baseline beside, as the route stage
    drep = energy(dense, resd.routing, dense=False)
    equal = same and all(math.isclose(a, b, rel_tol=1e-12) for a, b in (
        (rep.dense.energy_pj, drep.energy_pj), (rep.dense.latency_ns, drep.latency_ns)))
    rep.dense = drep  # the dense checkpoint itself beside the compressed one
    weights = (f"shipped checkpoints {names['compressed']} (compressed) and {names['dense']} "
               "(dense), models/pretrained/manifest.json")
    entries = {k: pretrained.entry(v) for k, v in names.items()}
    config = {"checkpoints": {k: {"name": names[k], "sha256": e["sha256"], "command": e["command"]}
                              for k, e in entries.items()},
              "crossbar": str(spec)}
    metrics = {"crossbar": str(spec), "weights": weights,
               "tiles": {"compressed": comp.n_crossbars, "dense": dense.n_crossbars},
               "dense_checkpoint_is_the_baseline": equal,
               "routing": {"compressed": routing_figures(res), "dense": routing_figures(resd)}}
    print(f"{name} at {spec}; weights: {weights}; the dense checkpoint's design and figures "
          + ("equal" if equal else "DIFFER FROM") + " the compressed one's dense baseline")
    return config, metrics | _small_figures(rep, res, resd, seconds)


def from_random(name: str) -> tuple[dict, dict]:
    """Random weights, SVD-truncated and group-deleted, beside their dense baseline (no
    shipped checkpoints): (config, metrics)."""
    import models
    from mapping.network import map_model

    spec = CrossbarSpec(64, 64)
    model, how = random_compressed(name)
    net = map_model(model, spec, models.info(name).input_shape)
    res, resb, seconds = route_pair(net, spec)
    rep = energy(net, res.routing, resb.routing)
    weights = (f"NO TRAINED CHECKPOINT: random init (torch seed 0), SVD-truncated at tolerance "
               f"{TOLERANCE} (ranks {how['ranks']}, merged back {how['merged_back_to_dense']}), "
               f"then random group deletion ({DELETION}); dense = the same model's dense "
               "baseline")
    print(f"{name} at {spec}; weights: {weights}")
    config = {"checkpoints": None, "weights": "random init (torch seed 0)",
              "svd_tolerance": TOLERANCE, "group_deletion": DELETION, "crossbar": str(spec)}
    metrics = {"crossbar": str(spec), "weights": weights, "compression": how,
               "tiles": {"compressed": net.n_crossbars, "dense": net.baseline.n_crossbars},
               "routing": {"compressed": routing_figures(res), "dense": routing_figures(resb)}}
    return config, metrics | _small_figures(rep, res, resb, seconds)


def _small_figures(rep, res, resd, seconds: float) -> dict:
    print(format_table(rep))
    d = rep.to_dict()
    r = d["ratio_to_dense"]
    print(f"compressed / dense: energy {r['energy']:.2%}, latency {r['latency']:.2%}, "
          f"throughput x{r['throughput']:.3g}; interconnect {d['interconnect_share']:.2%} of the "
          f"energy (dense {d['dense']['interconnect_share']:.2%}); overflow "
          f"{res.routing.overflow} (dense {resd.routing.overflow}) tracks; die "
          f"{res.die_area_um2:.4g} um2 (dense {resd.die_area_um2:.4g}); placed and routed in "
          f"{seconds:.1f} s\n")
    return {"route_seconds": round(seconds, 1), "overflow": res.routing.overflow,
            "dense_overflow": resd.routing.overflow, "energy": d}


def small(name: str) -> tuple[dict, dict]:
    """Part 2 for ``name``: the shipped checkpoints when models.pretrained lists them, else
    random weights (said in the row's name, config and weights)."""
    names = shipped(name)
    if names is None:
        print(f"{name}: no shipped checkpoints {name}:dense and {name}:group-scissor; random "
              "weights instead")
        return from_random(name)
    return from_checkpoints(name, names)


# ------------------------------------------------------------------ VGG-16 (part 3)

_rss_mb = children.rss_mb


def _child(*args: str) -> dict:
    return children.run(__file__, *args)


def child_map(name: str, size: int, out: str) -> dict:
    """Map the registered model (random init, seed 0) at size x size; pickle its dense
    baseline's design (without tile weights) and per-matrix loads. Random weights are all
    non-zero, so the mapped design is its dense baseline."""
    import torch

    import mapping.routing  # noqa: F401  (imports count in import_mb, not in map_s)
    import models
    from mapping.energy import loads
    from mapping.network import map_model

    base = _rss_mb()
    spec = CrossbarSpec(size, size)
    info = models.info(name)
    torch.manual_seed(0)
    model = info.factory()
    t0 = time.perf_counter()
    net = map_model(model, spec, info.input_shape)
    dense = net.dense_baseline()  # structural: same tiles and nets, no weight copies
    del net, model
    ld = loads(dense)
    figs = children.mapped_figures(dense, time.perf_counter() - t0, base)
    children.save_design(out, dense.design, ld, spec)
    return figs


def child_route(path: str) -> dict:
    """Place and route the pickled design as the route stage does (route_routable, zero
    overflow if the whitespace can give it) and count its energy with the routed wires."""
    from group_scissor.physical import route_with_baseline
    from mapping.energy import estimate
    from mapping.routing import RouteConfig

    base = _rss_mb()
    with open(path, "rb") as f:
        d, ld, spec = pickle.load(f)
    res, _ = route_with_baseline(d, None, flow_place_config(), RouteConfig.for_spec(spec),
                                 spec.crossbar_area_um2)
    t0 = time.perf_counter()
    rep = estimate(ld, spec, res.routing, d)
    return {**routing_figures(res), "energy_s": round(time.perf_counter() - t0, 2),
            "route_peak_mb": round(_rss_mb(), 1), "route_import_mb": round(base, 1),
            "energy": rep.to_dict()}


def network_energy(name: str, size: int) -> tuple[dict, dict]:
    """Map, then place + route + count, each in a child process (peak RSS per process)."""
    with tempfile.TemporaryDirectory() as tmp:
        pkl = os.path.join(tmp, "design.pkl")
        m = _child("map", name, str(size), pkl)
        r = _child("route", pkl)
    e = r.pop("energy")
    routed = {k: v for k, v in r.items() if not k.startswith(("route_peak", "route_import"))}
    metrics = {"crossbar": e["crossbar"],
               "weights": "random init (torch seed 0), dense (every tile built, every wire live)",
               "routed": True, "overflow": r["overflow"], "routable": r["routable"],
               "die_area_um2": r["die_area_um2"], "crossbar_area_um2": r["crossbar_area_um2"],
               "die_over_crossbar_area": r["die_over_crossbar_area"], **m,
               "place_s": r["place_s"], "route_s": r["route_s"], "energy_s": r["energy_s"],
               "flow_s": round(m["map_s"] + r["place_s"] + r["route_s"] + r["energy_s"], 2),
               "route_peak_mb": r["route_peak_mb"], "route_import_mb": r["route_import_mb"],
               "peak_mb": max(m["map_peak_mb"], r["route_peak_mb"]),
               "routing": routed, "energy": e}
    print(f"{name} at {e['crossbar']}, random init, dense; placed and routed by route_routable "
          f"(trees {r['trees']}): overflow {r['overflow']} tracks, die {r['die_area_um2']:.4g} um2 "
          f"= {r['die_over_crossbar_area']:.3f} x the crossbars'; map {m['map_s']} s, place "
          f"{r['place_s']} s, route {r['route_s']} s; peak RSS {metrics['peak_mb']:.0f} MB")
    print(format_table(e) + "\n")
    config = {"weights": "random init (torch seed 0), dense", "crossbar": e["crossbar"],
              "flow": "map_model, dense baseline; route_routable (the route stage's flow)"}
    return config, metrics


# ------------------------------------------------------------------------------- driver

def part_rows(part: str) -> list[str]:
    """The rows of the ledger recorded by ``part`` (any name)."""
    key = "isaac_table6" if part == "isaac" else part
    return [r["name"] for r in ledger.load("energy")["rows"] if r["config"].get("part") == key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    ap.add_argument("--replace", action="store_true",
                    help="replace the rows these parts recorded before (default: refuse to run)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        res = (child_map(rest[0], int(rest[1]), rest[2]) if kind == "map"
               else child_route(rest[0]))
        print(json.dumps(res))
        return
    names = {part: row_name(part) for part in args.only}
    for part, name in names.items():  # before any work: a part keeps one row, its latest
        old = part_rows(part)
        if old and not args.replace:
            raise ConfigError(f"{ledger.path('energy')} has row(s) {', '.join(old)} of part "
                              f"{part!r} already; pass --replace to replace them with "
                              f"{name!r}.")
    common = {"technology": "illustrative (mapping/presets/illustrative.toml)",
              "place": dataclasses.asdict(flow_place_config()),
              "route": "RouteConfig.for_spec defaults, route_routable (the route stage's flow)"}
    for part in args.only:
        if part == "isaac":
            rows = isaac_rows()
            print_isaac(rows)
            config = {"part": "isaac_table6", "technology": "isaac_32nm",
                      "crossbar": str(isaac_spec())}
            metrics = {"paper": "Shafiee et al., ISAAC, ISCA 2016, Table 6",
                       "preset": "isaac_32nm", "crossbar": str(isaac_spec()), "rows": rows}
        elif part == "vgg16":
            config, metrics = network_energy("vgg16", 128)
            config = {"part": part, **common, **config}
        else:
            config, metrics = small(part)
            config = {"part": part, **common, **config}
        name = names[part]
        ledger.append("energy", ledger.make_row(name, part, config, metrics),
                      replace=args.replace, headline_key=part, make_headline=True,
                      supersedes=tuple(part_rows(part)))
        print(f"recorded row {name!r} in {ledger.path('energy')} (the {part} headline)\n")


if __name__ == "__main__":
    guarded(main)
