"""Placement + global routing at scale, and LeNet/ConvNet from the mapper against the bound.

    python benchmarks/routing_scale.py --replace             # every design: its row in results/routing.json
    python benchmarks/routing_scale.py --only vgg16-128 --replace   # some designs (other rows are kept)
    python benchmarks/routing_scale.py --trained lenet runs/bench-l13kd/lenet-prune/checkpoint.pt

1. Synthetic dense designs built from layer shapes exactly as hardware-model.md section 3
   builds a mapped network (tile grid ceil(N/rows) x ceil(M/lcols); input bus producer
   A(c // lcols) -> T(a, b), width = rows of block a from that producer; output bus
   T(a, b) -> A(b), width = columns of block b): LeNet at 64x64 and VGG-16 at 512x512,
   256x256 and 128x128 (~17k crossbars, ~50k nets). Target: VGG-16 at 128x128 placed and
   routed in <= 120 s. Each runs in its own process; peak_mb is that process's peak RSS
   (including ~import_mb of Python, numpy and torch).
2. LeNet and ConvNet dense designs from map_model at 64x64 (the real mapper), routed with the
   default settings (RouteConfig.for_spec): wirelength vs lower bound, overflow vs its lower
   bound, and the smallest capacity (tracks per gcell edge) that routes them with zero
   overflow; plus a Group-Scissor-like random group deletion of the same models (50 % of the
   input-wire groups, 30 % of the output-wire groups, 20 % of the tiles zeroed) for
   routing_area_ratio against the dense baseline.
3. --trained MODEL CHECKPOINT: a trained (Group-Scissor-compressed) checkpoint and its dense
   baseline, routed with the same settings: the paper's routing area. Its row is named after the
   group_deletion row that made the checkpoint (<that row>-routed); a model's first such row is
   its headline, --headline makes this one it.
Each design is a row of the ledger benchmarks/results/routing.json (ROWS names them); a row is
replaced only with --replace.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from mapping.design import Design, Net, Unit  # noqa: E402

# (name, rows N, cols M, rows per input channel): conv rows are (c, ky, kx) -> kh*kw per
# channel; an fc after a conv reads a flattened (C, H, W) map -> H*W rows per channel.
LENET = [("conv1", 25, 20, 25), ("conv2", 500, 50, 25), ("fc1", 800, 500, 16),
         ("fc2", 500, 10, 1)]
CONVNET = [("conv1", 75, 32, 25), ("conv2", 800, 32, 25), ("conv3", 800, 64, 25),
           ("fc1", 1024, 10, 16)]
_VGG_CH = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG16 = [(f"conv{i + 1}", _VGG_CH[i] * 9, _VGG_CH[i + 1], 9) for i in range(13)] + [
    ("fc1", 25088, 4096, 49), ("fc2", 4096, 4096, 1), ("fc3", 4096, 1000, 1)]


def layered_design(layers: list[tuple[str, int, int, int]], rows: int, cols: int,
                   encoding: str = "differential") -> Design:
    """A dense mapped chain of matrices (section 3 nets), units in dataflow order."""
    lcols = {"differential": cols // 2, "offset": cols - 1, "unsigned": cols}[encoding]
    units, nets, prev = [Unit("IN", "input")], [], None
    for name, n, m, per_channel in layers:
        na, nb = -(-n // rows), -(-m // lcols)
        block = np.zeros(n, dtype=np.int64) if prev is None else (np.arange(n) // per_channel
                                                                   // lcols)
        srcs = ["IN"] if prev is None else [f"{prev}/A{s}" for s in range(int(block.max()) + 1)]
        counts = np.zeros((na, len(srcs)), dtype=np.int64)  # (A, S) rows of block a from s
        np.add.at(counts, (np.arange(n) // rows, block), 1)
        for a in range(na):
            for b in range(nb):
                tile = f"{name}/T{a}_{b}"
                units.append(Unit(tile, "tile", name, (a, b)))
                nets += [Net(srcs[s], tile, int(counts[a, s]), name, "input")
                         for s in np.flatnonzero(counts[a])]
                nets.append(Net(tile, f"{name}/A{b}", min(lcols, m - b * lcols), name, "output"))
        units += [Unit(f"{name}/A{b}", "output", name, (0, b)) for b in range(nb)]
        prev = name
    return Design(units, nets, rows, cols, encoding)


SYNTHETIC = {"lenet64": (LENET, 64), "vgg16-512": (VGG16, 512), "vgg16-256": (VGG16, 256),
             "vgg16-128": (VGG16, 128)}
MAPPED = ("lenet", "convnet")
ROWS = {"lenet64": "synthetic-lenet-64x64", "vgg16-512": "synthetic-vgg16-512x512",
        "vgg16-256": "synthetic-vgg16-256x256", "vgg16-128": "synthetic-vgg16-128x128",
        "lenet": "lenet-dense-64x64", "convnet": "convnet-dense-64x64"}
MODEL = {"lenet64": "lenet", "vgg16-512": "vgg16", "vgg16-256": "vgg16", "vgg16-128": "vgg16",
         "lenet": "lenet", "convnet": "convnet"}
CONFIG_KEYS = ("design", "checkpoint", "net_model", "pin_access", "tracks_per_gcell_edge",
               "gcells_per_site")
"""What decides a routing (the design, the checkpoint, the router's settings): a row's config;
everything else a design's entry reports is its metrics."""


def split(res: dict) -> tuple[dict, dict]:
    """A design's result -> (config, metrics)."""
    return ({k: res[k] for k in CONFIG_KEYS if k in res},
            {k: v for k, v in res.items() if k not in CONFIG_KEYS})


def routed_name(model: str, checkpoint: str) -> str:
    """<group_deletion row>-routed for the checkpoint of a group_deletion run (its run folder is
    the row's outputs.run), else MODEL-routed-<the checkpoint's folder>."""
    folder = os.path.normpath(Path(checkpoint).parent)
    for r in ledger.load("group_deletion")["rows"]:
        if os.path.normpath(r.get("outputs", {}).get("run", "")) == folder:
            return f"{r['name']}-routed"
    slug = re.sub(r"[^A-Za-z0-9._,=+-]+", "-", folder).strip("-.")
    return f"{model}-routed-{slug}"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def place_route(design: Design, rows: int, place_kw: dict | None = None,
                **route_kw) -> tuple[dict, object]:
    from mapping.congestion import overflow_lower_bound
    from mapping.placement import PlaceConfig, place
    from mapping.routing import RouteConfig, route
    from mapping.spec import CrossbarSpec

    t0 = time.perf_counter()
    pl = place(design, PlaceConfig(**(place_kw or {})))
    t1 = time.perf_counter()
    cfg = RouteConfig.for_spec(CrossbarSpec(rows, rows), **route_kw)
    rt = route(design, pl, cfg)
    t2 = time.perf_counter()
    return {"units": len(design.units), "nets": len(design.nets), "wires": design.total_wires,
            "grid_sites": list(pl.grid_sites), "grid_gcells": list(rt.grid_gcells),
            "gcells_per_site": cfg.gcells_per_site, "tracks_per_gcell_edge": cfg.capacity,
            "place_method": pl.method, "route_method": rt.method, "route_status": rt.status,
            "placement_cost": pl.cost, "wirelength": rt.wirelength,
            "lower_bound": rt.lower_bound, "wl_over_lb": rt.wirelength / rt.lower_bound,
            "signal_bound": rt.signal_bound,
            "wl_over_signal_bound": rt.wirelength / max(rt.signal_bound, 1),
            "net_model": cfg.net_model, "pin_access": cfg.pin_access,
            "connections": len(rt.widths),
            "overflow": rt.overflow, "overflow_lower_bound": overflow_lower_bound(rt),
            "max_congestion": rt.max_congestion, "mean_congestion": rt.mean_congestion,
            "routing_area_um2": rt.routing_area_um2, "place_s": round(t1 - t0, 2),
            "route_s": round(t2 - t1, 2), "seconds": round(t2 - t0, 2)}, rt


def synthetic(name: str) -> dict:
    layers, rows = SYNTHETIC[name]
    import mapping.routing  # noqa: F401  (imports counted in import_mb, not in the run)

    base = _rss_mb()
    t0 = time.perf_counter()
    design = layered_design(layers, rows, rows)
    gen = time.perf_counter() - t0
    res, _ = place_route(design, rows)
    return {"design": f"synthetic {name.split('-')[0]} dense at {rows}x{rows}",
            "generate_s": round(gen, 2), **res, "routing_area_ratio": None,
            "peak_mb": round(_rss_mb(), 1), "import_mb": round(base, 1)}


def group_deleted(module, rows: int, seed: int = 0, min_tiles: int = 1):
    """Zero random crossbar-aligned groups in every Linear/Conv2d (in place): each input-wire
    group (a row of a tile) with probability 0.5, each output-wire group (a column of a tile)
    with 0.3, and whole tiles with 0.2 in matrices of at least ``min_tiles`` tiles."""
    import torch

    rng = np.random.default_rng(seed)
    lcols = rows // 2
    for m in module.modules():
        if not isinstance(m, torch.nn.Linear | torch.nn.Conv2d):
            continue
        w = m.weight.data.reshape(m.weight.shape[0], -1).T  # (N, M) view, rows = inputs
        n, k = w.shape
        na, nb = -(-n // rows), -(-k // lcols)
        row_g = np.repeat(rng.random((na * rows, nb)) < 0.5, lcols, 1)
        col_g = np.repeat(rng.random((na, nb * lcols)) < 0.3, rows, 0)
        tiles = (rng.random((na, nb)) < 0.2) & (na * nb >= min_tiles)
        tile = np.repeat(np.repeat(tiles, rows, 0), lcols, 1)
        dead = (row_g | col_g | tile)[:n, :k]
        w[torch.from_numpy(dead)] = 0
    return module


def min_zero_overflow_capacity(design: Design, rows: int) -> int:
    """Smallest tracks per gcell edge routing ``design`` with zero overflow (bisection)."""
    from mapping.placement import PlaceConfig, place
    from mapping.routing import RouteConfig, route
    from mapping.spec import CrossbarSpec

    pl = place(design, PlaceConfig())

    def ok(c: int) -> bool:
        cfg = RouteConfig.for_spec(CrossbarSpec(rows, rows), tracks_per_gcell_edge=c,
                                   method="negotiated")
        return route(design, pl, cfg).overflow == 0

    hi = 64
    while not ok(hi):
        hi *= 2
    lo = hi // 2
    while hi - lo > max(1, hi // 50):  # within 2 %
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def mapped(name: str) -> dict:
    import models
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec

    info = models.info(name)
    net = map_model(info.factory(), CrossbarSpec(64, 64), info.input_shape)
    dense = net.dense_baseline().design
    same = layered_design(LENET if name == "lenet" else CONVNET, 64, 64)
    res, rt_dense = place_route(dense, 64)
    res["design"] = f"{name} dense at 64x64 (map_model)"
    res["synthetic_generator_matches_mapper"] = sorted(
        (n.src, n.dst, n.width) for n in same.nets) == sorted(
        (n.src, n.dst, n.width) for n in dense.nets)
    res["min_zero_overflow_capacity"] = min_zero_overflow_capacity(dense, 64)
    old, _ = place_route(dense, 64, {"output_units_per_site": 4}, net_model="two-pin",
                         pin_access="center")  # hardware-model section 3/5 as written
    res["section3_two_pin_buses"] = {k: old[k] for k in (
        "wirelength", "lower_bound", "overflow", "overflow_lower_bound", "max_congestion",
        "net_model", "pin_access")} | {"output_units_per_site": 4}
    from mapping.congestion import routing_area_ratio

    comp = map_model(group_deleted(info.factory(), 64), CrossbarSpec(64, 64),
                     info.input_shape).design
    cres, rt_comp = place_route(comp, 64)
    cres["design"] = f"{name} random group deletion at 64x64 (map_model)"
    cres["routing_area_ratio"] = routing_area_ratio(rt_comp, rt_dense)
    cres["wires_ratio"] = comp.total_wires / dense.total_wires
    res["routing_area_ratio"] = None
    res["group_deleted"] = cres
    res["peak_mb"] = round(_rss_mb(), 1)
    return res


def trained(model: str, checkpoint: str) -> dict:
    """A trained (Group-Scissor-compressed) checkpoint against its dense baseline, both placed
    and routed with the same settings at 64x64: the routing_area_ratio of the paper."""
    import models
    from mapping.congestion import routing_area_ratio
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec
    from models.checkpoint import load_model

    net = map_model(load_model(model, checkpoint), CrossbarSpec(64, 64),
                    models.info(model).input_shape)
    dres, rt_dense = place_route(net.dense_baseline().design, 64)
    res, rt = place_route(net.design, 64)
    res.update(design=f"{model} trained checkpoint at 64x64", checkpoint=checkpoint,
               routing_area_ratio=routing_area_ratio(rt, rt_dense),
               wires_ratio=net.design.total_wires / net.baseline.total_wires,
               dense={k: dres[k] for k in ("wirelength", "lower_bound", "overflow",
                                            "wl_over_lb", "seconds")},
               peak_mb=round(_rss_mb(), 1))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = list(SYNTHETIC) + list(MAPPED)
    ap.add_argument("--only", nargs="*", choices=names, default=names)
    ap.add_argument("--trained", nargs=2, metavar=("MODEL", "CHECKPOINT"),
                    help="only route this trained checkpoint and its dense baseline")
    ap.add_argument("--child", choices=names, help=argparse.SUPPRESS)
    ledger.add_arguments(ap, "ROWS[design] for a design; with --trained, the group_deletion "
                         "row of the checkpoint's run folder plus -routed")
    args = ap.parse_args()
    if args.child:  # one entry in this process, JSON on stdout
        res = synthetic(args.child) if args.child in SYNTHETIC else mapped(args.child)
        print(json.dumps(res))
        return
    if args.trained:
        model, checkpoint = args.trained
        name = args.name or routed_name(model, checkpoint)
        ledger.refuse_existing("routing", name, args.replace)
        res = trained(model, checkpoint)
        config, metrics = split(res)
        ledger.record("routing", ledger.make_row(name, model, config, metrics), args, model)
        print(json.dumps({k: res[k] for k in ("routing_area_ratio", "wires_ratio", "wirelength",
                                              "lower_bound", "overflow", "seconds")}))
        return
    if args.name and len(args.only) != 1:
        ap.error("--name names one row: pass it with --only DESIGN (or --trained)")
    rows = {d: args.name or ROWS[d] for d in args.only}
    for name in rows.values():
        ledger.refuse_existing("routing", name, args.replace)
    for design in args.only:
        out = subprocess.run([sys.executable, __file__, "--child", design], check=True,
                             capture_output=True, text=True).stdout
        res = json.loads(out.strip().splitlines()[-1])
        g = res.get("group_deleted", {})
        print(f"{design:10s} {res['units']:6d} units {res['nets']:6d} nets  place {res['place_s']:6.1f}"
              f" s  route {res['route_s']:6.1f} s  peak {res['peak_mb']:7.1f} MB  wl/lb "
              f"{res['wl_over_lb']:.4f}  overflow {res['overflow']} (>= "
              f"{res['overflow_lower_bound']})  max congestion {res['max_congestion']:.2f}"
              + (f"\n{'':10s} zero overflow needs {res['min_zero_overflow_capacity']} tracks "
                 f"(default {res['tracks_per_gcell_edge']}); group-deleted: routing area "
                 f"{g['routing_area_ratio']:.2%} of dense (wires {g['wires_ratio']:.2%}), "
                 f"wl/lb {g['wl_over_lb']:.4f}, overflow {g['overflow']}" if g else ""),
              flush=True)
        config, metrics = split(res)
        # one row per design, appended under the ledger's lock as each one ends
        ledger.record("routing", ledger.make_row(rows[design], MODEL[design], config, metrics),
                      args, None)


if __name__ == "__main__":
    guarded(main)
