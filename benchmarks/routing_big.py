"""Routable designs at scale: zero overflow at the physical track capacity, the die it takes.

    python benchmarks/routing_big.py --replace                 # every part: rows of results/routing.json
    python benchmarks/routing_big.py --only vgg16 sweep --replace

Parts (each a row, or rows, of the routing ledger; ``--only`` picks them):

1. ``vgg16``, ``resnet18``, ``resnet50``, ``mobilenet_v2``: the registered ImageNet-shaped model
   (random initialisation, so dense: every weight is non-zero) mapped with ``map_model`` onto
   128x128 differential crossbars in one process, then placed and routed by
   ``mapping.routing.route_routable`` (the route stage's flow; these big designs go as
   broadcast + reduction trees on the 'arrays' placement) in a second one, as the CLI's map
   and route stages do. Figures: crossbars, cells, wires; map / place / route seconds; each
   process's peak RSS; overflow at the technology's tracks (200); the die (routable area)
   beside the crossbar area; wirelength against ``signal_bound`` (a bound for any routing of
   the placement). Targets: VGG-16 map + place + route <= 60 s, each network <= 120 s, peak
   RSS <= 2 GB, wirelength <= 1.3 x the bound.
2. ``sweep``: LeNet and ConvNet at 32x32, 64x64, 128x128 and 256x256, dense and compressed,
   each routed by route_routable as the route stage does (``auto``: these small designs keep
   the default blob placement and two-pin output buses, the published figures' flow) and as
   trees on arrays. Compressed = a random tile-aligned group deletion (50 % of the input-wire
   groups, 30 % of the output-wire groups, 20 % of the tiles, seed 0; routing_scale's
   ``group_deleted``): no trained checkpoint at these crossbar sizes is in the repository.
3. ``compressed``: each of the four networks again, dense and compressed in the same run (two
   map children, two route children each). No trained weights exist here for them, and random
   weights have no low-rank structure (an SVD truncation at an energy tolerance keeps ~90 % of
   every rank), so "compressed" is structural: every registered low-rank layer (the last
   classifier and depthwise convs stay dense) SVD-truncated to a quarter of its full rank
   (``RANK_FRACTION``; pairs that would cost more cells than the dense layer merged back, as the
   clip stage does), then routing_scale's random crossbar-aligned group deletion at 128 rows
   (50 % of the input-wire groups, 30 % of the output-wire groups, 20 % of the tiles of matrices
   of at least 4 tiles; seed 0). Figures: crossbars, cells, wires, die and routing area of both,
   and the ratios compressed / dense, as the paper's table gives them for LeNet and ConvNet.
4. ``scaling``: place + route time of the synthetic dense VGG-16 (routing_scale's
   ``layered_design``, no torch) as trees on arrays at 512x512, 256x256, 128x128 and 64x64
   crossbars (about 1.2k, 4.4k, 17k and 68k tiles).

Every part runs in child processes (peak RSS per process, ``ru_maxrss``).
"""

import argparse
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

NETWORKS = ("vgg16", "resnet18", "resnet50", "mobilenet_v2")
SWEEP = ("lenet", "convnet")
SIZES = (32, 64, 128, 256)
SCALES = (512, 256, 128, 64)
PARTS = NETWORKS + ("compressed", "sweep", "scaling")
RANK_FRACTION = 0.25
"""Rank kept by the ``compressed`` part's SVD truncation, as a fraction of each layer's full rank."""
TARGETS = {"vgg16_flow_s": 60.0, "flow_s": 120.0, "peak_mb": 2048.0, "wl_over_bound": 1.3}


_rss_mb = children.rss_mb


def _child(*args: str) -> dict:
    return children.run(__file__, *args)


def figures(res, design, spec) -> dict:
    """What a route_routable result reports."""
    from mapping.congestion import overflow_lower_bound

    rt, pl = res.routing, res.placement
    return {"trees": res.trees, "net_model": rt.config.net_model,
            "reduction_trees": rt.config.reduction_trees, "layout": pl.status,
            "tracks_per_gcell_edge": rt.config.capacity, "overflow": rt.overflow,
            "overflow_lower_bound": overflow_lower_bound(rt), "routable": res.routable,
            "max_congestion": rt.max_congestion, "mean_congestion": rt.mean_congestion,
            "grid_sites": list(pl.grid_sites), "grid_gcells": list(rt.grid_gcells),
            "whitespace_frac": res.steps[-1]["whitespace_frac"], "attempts": res.steps,
            "site_area_um2": res.site_area_um2, "die_area_um2": res.die_area_um2,
            "crossbar_area_um2": res.crossbar_area_um2,
            "die_over_crossbar_area": res.die_area_um2 / res.crossbar_area_um2,
            "grid_area_um2": res.to_dict()["grid_area_um2"],
            "spanned_units": len(pl.spans),
            "wirelength": rt.wirelength, "lower_bound": rt.lower_bound,
            "signal_bound": rt.signal_bound, "wl_over_bound": rt.wirelength / rt.signal_bound,
            "wl_over_lower_bound": rt.wirelength / rt.lower_bound,
            "routing_area_um2": rt.routing_area_um2, "connections": len(rt.widths),
            "route_status": rt.status,
            "place_s": round(sum(s["place_s"] for s in res.steps), 2),
            "route_s": round(sum(s["route_s"] for s in res.steps), 2)}


# ---------------------------------------------------------------- children (one job each)

def child_map(name: str, out: str) -> dict:
    """Map the registered model at 128x128; pickle its design (without tile weights: every
    weight of a random initialisation is non-zero, so every column is live and the reduction
    trees' widths are exact without them)."""
    import mapping.routing  # noqa: F401  (imports are counted in import_mb, not in map_s)
    import models
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec

    base = _rss_mb()
    info = models.info(name)
    model = info.factory()
    t0 = time.perf_counter()
    net = map_model(model, CrossbarSpec(128, 128), info.input_shape)
    res = children.mapped_figures(net, time.perf_counter() - t0, base)
    children.save_design(out, net.design)
    return res


def child_compressed(name: str, out: str) -> dict:
    """The ``compressed`` part's model (see the module docstring) mapped at 128x128; its design
    pickled without tile weights, as child_map does."""
    import torch

    import models
    from benchmarks.routing_scale import group_deleted
    from group_scissor.compress import merge_unprofitable
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec
    from models.lowrank import to_low_rank

    base = _rss_mb()
    torch.manual_seed(0)
    info = models.info(name)
    model = info.factory()
    t0 = time.perf_counter()
    mods = dict(model.named_modules())
    full = {k: min(mods[k].weight[0].numel(), mods[k].weight.shape[0]) for k in info.low_rank_layers}
    with torch.no_grad():
        to_low_rank(model, list(full), {k: max(1, round(RANK_FRACTION * r)) for k, r in full.items()})
    merged = merge_unprofitable(model)
    group_deleted(model, 128, seed=0, min_tiles=4)
    svd_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    net = map_model(model, CrossbarSpec(128, 128), info.input_shape)
    res = children.mapped_figures(net, time.perf_counter() - t0, base) | {
        "svd_s": round(svd_s, 2), "low_rank_layers": len(full) - len(merged),
        "merged_back_to_dense": merged, "dense_crossbars": net.baseline.n_crossbars,
        "dense_cells": net.baseline.cells}
    children.save_design(out, net.design)
    return res


def child_route(path: str) -> dict:
    """Place and route the pickled design with route_routable (the route stage's flow)."""
    from mapping.routing import RouteConfig, route_routable
    from mapping.spec import CrossbarSpec

    base = _rss_mb()
    with open(path, "rb") as f:
        d = pickle.load(f)
    spec = CrossbarSpec(d.crossbar_rows, d.crossbar_cols, d.encoding)
    res = route_routable(d, None, RouteConfig.for_spec(spec), site_area_um2=spec.crossbar_area_um2)
    return figures(res, d, spec) | {"route_peak_mb": round(_rss_mb(), 1),
                                    "route_import_mb": round(base, 1)}


def child_sweep(model: str, size: int) -> dict:
    import models
    from benchmarks.routing_scale import group_deleted
    from mapping.network import map_model
    from mapping.routing import RouteConfig, route_routable
    from mapping.spec import CrossbarSpec

    info = models.info(model)
    spec = CrossbarSpec(size, size)
    dense = map_model(info.factory(), spec, info.input_shape).dense_baseline().design
    comp = map_model(group_deleted(info.factory(), size), spec, info.input_shape).design
    cfg = RouteConfig.for_spec(spec)
    out = {}
    for how, trees in (("default", None), ("trees", True)):
        t0 = time.perf_counter()
        rd = route_routable(dense, None, cfg, trees=trees, site_area_um2=spec.crossbar_area_um2)
        # the compressed design goes the way its dense baseline went (as the route stage does)
        rc = route_routable(comp, None, cfg, trees=rd.trees,
                            site_area_um2=spec.crossbar_area_um2)
        keys = ("overflow", "wirelength", "signal_bound", "wl_over_bound", "routing_area_um2",
                "die_area_um2", "crossbar_area_um2", "grid_sites", "whitespace_frac", "trees",
                "max_congestion", "place_s", "route_s")
        fd, fc = figures(rd, dense, spec), figures(rc, comp, spec)
        out[how] = {"dense": {k: fd[k] for k in keys}, "compressed": {k: fc[k] for k in keys},
                    "routing_area_ratio": rc.routing.routing_area_um2 / rd.routing.routing_area_um2,
                    "seconds": round(time.perf_counter() - t0, 2)}
    out["wires"] = {"dense": dense.total_wires, "compressed": comp.total_wires}
    out["tiles"] = {"dense": sum(u.kind == "tile" for u in dense.units),
                    "compressed": sum(u.kind == "tile" for u in comp.units)}
    return out


def child_scale(size: int) -> dict:
    import mapping.routing  # noqa: F401,F811
    from benchmarks.routing_scale import VGG16, layered_design
    from mapping.routing import RouteConfig, route_routable
    from mapping.spec import CrossbarSpec

    base = _rss_mb()
    t0 = time.perf_counter()
    d = layered_design(VGG16, size, size)
    gen = time.perf_counter() - t0
    spec = CrossbarSpec(size, size)
    res = route_routable(d, None, RouteConfig.for_spec(spec), trees=True,
                         site_area_um2=spec.crossbar_area_um2)
    f = figures(res, d, spec)
    keep = ("overflow", "place_s", "route_s", "wirelength", "wl_over_bound", "die_area_um2",
            "crossbar_area_um2", "grid_sites", "whitespace_frac", "connections", "route_status")
    return {"units": len(d.units), "tiles": sum(u.kind == "tile" for u in d.units),
            "nets": len(d.nets), "generate_s": round(gen, 2), **{k: f[k] for k in keep},
            "seconds": round(f["place_s"] + f["route_s"], 2), "peak_mb": round(_rss_mb(), 1),
            "import_mb": round(base, 1)}


# ------------------------------------------------------------------------------- driver

def compressed_row(name: str) -> tuple[dict, dict]:
    """Dense and compressed ``name`` mapped and routed in the same run; the ratios."""
    out = {}
    for how, kind in (("dense", "map"), ("compressed", "compressed")):
        with tempfile.TemporaryDirectory() as tmp:
            pkl = os.path.join(tmp, "design.pkl")
            m = _child(kind, name, pkl)
            r = _child("route", pkl)
        out[how] = {**m, **{k: r[k] for k in ("overflow", "die_area_um2", "crossbar_area_um2",
                                              "routing_area_um2", "wirelength", "wl_over_bound",
                                              "place_s", "route_s", "grid_sites")}}
    d, c = out["dense"], out["compressed"]
    ratios = {"cells": c["cells"] / d["cells"], "crossbars": c["crossbars"] / d["crossbars"],
              "wires": c["wires"] / d["wires"],
              "routing_area": c["routing_area_um2"] / d["routing_area_um2"],
              "die_area": c["die_area_um2"] / d["die_area_um2"]}
    config = {"design": f"{name} random init (torch seed 0): dense, and SVD-truncated to "
                        f"{RANK_FRACTION} of every registered low-rank layer's rank, then random "
                        "group deletion (0.5 rows, 0.3 cols, 0.2 tiles if >= 4 tiles, seed 0)",
              "flow": "map_model, then route_routable (auto)", "crossbar": "128x128",
              "encoding": "differential", "rank_fraction": RANK_FRACTION}
    return config, {**out, "ratio_to_dense": ratios}


def network_row(name: str) -> tuple[dict, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        pkl = os.path.join(tmp, "design.pkl")
        m = _child("map", name, pkl)
        r = _child("route", pkl)
    flow = m["map_s"] + r["place_s"] + r["route_s"]
    peak = max(m["map_peak_mb"], r["route_peak_mb"])
    limit = TARGETS["vgg16_flow_s"] if name == "vgg16" else TARGETS["flow_s"]
    metrics = {**m, **r, "flow_s": round(flow, 2), "peak_mb": peak,
               "targets": {"flow_s": limit, "flow_met": flow <= limit,
                           "peak_mb": TARGETS["peak_mb"], "peak_met": peak <= TARGETS["peak_mb"],
                           "wl_over_bound": TARGETS["wl_over_bound"],
                           "wl_met": r["wl_over_bound"] <= TARGETS["wl_over_bound"],
                           "overflow_met": r["overflow"] == 0}}
    config = {"design": f"{name} (random init, dense) mapped at 128x128 differential",
              "flow": "map_model, then route_routable (auto)", "crossbar": "128x128",
              "encoding": "differential", "tracks_per_gcell_edge": r["tracks_per_gcell_edge"],
              "net_model": r["net_model"], "reduction_trees": r["reduction_trees"]}
    return config, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ledger.add_arguments(ap, "routable-<part>[-<model>-<size>]")
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        res = {"map": lambda: child_map(*rest), "route": lambda: child_route(*rest),
               "compressed": lambda: child_compressed(*rest),
               "sweep": lambda: child_sweep(rest[0], int(rest[1])),
               "scale": lambda: child_scale(int(rest[0]))}[kind]()
        print(json.dumps(res))
        return
    if args.name:
        ap.error("--name is not supported: each part names its rows")
    jobs = []  # (row name, model, thunk)
    for part in args.only:
        if part in NETWORKS:
            jobs.append((f"routable-{part}-128x128", part, lambda p=part: network_row(p)))
        elif part == "compressed":
            for net in NETWORKS:
                jobs.append((f"routable-compressed-{net}-128x128", net,
                             lambda n=net: compressed_row(n)))
        elif part == "sweep":
            for model in SWEEP:
                for s in SIZES:
                    jobs.append((f"routable-sweep-{model}-{s}x{s}", model,
                                 lambda m=model, s=s: (
                                     {"design": f"{m} dense and random group deletion at "
                                                f"{s}x{s}", "flow": "route_routable, auto and "
                                                "trees", "crossbar": f"{s}x{s}"},
                                     _child("sweep", m, str(s)))))
        else:
            for s in SCALES:
                jobs.append((f"routable-scaling-vgg16-{s}x{s}", "vgg16",
                             lambda s=s: ({"design": f"synthetic vgg16 dense at {s}x{s}",
                                           "flow": "route_routable, trees",
                                           "crossbar": f"{s}x{s}"}, _child("scale", str(s)))))
    for name, _, _ in jobs:
        ledger.refuse_existing("routing", name, args.replace)
    for name, model, thunk in jobs:
        t0 = time.perf_counter()
        config, metrics = thunk()
        print(f"{name}: {json.dumps(_short(metrics))} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
        ledger.record("routing", ledger.make_row(name, model, config, metrics), args, None)


def _short(m: dict) -> dict:
    keys = ("crossbars", "map_s", "place_s", "route_s", "flow_s", "peak_mb", "overflow",
            "die_over_crossbar_area", "wl_over_bound", "seconds")
    if "ratio_to_dense" in m:
        return {k: round(v, 4) for k, v in m["ratio_to_dense"].items()} | {
            "overflow": (m["dense"]["overflow"], m["compressed"]["overflow"])}
    if "default" in m:
        return {h: {k: (m[h][k]["overflow"], round(m[h][k]["wl_over_bound"], 3))
                    for k in ("dense", "compressed")} for h in ("default", "trees")}
    return {k: m[k] for k in keys if k in m}


if __name__ == "__main__":
    guarded(main)
