"""Energy, latency and throughput per inference (hardware-model.md section 7, mapping/energy.py).

    python benchmarks/energy.py                  # everything -> rows of results/energy.json (a ledger)
    python benchmarks/energy.py --only isaac     # some parts (isaac lenet convnet vgg16)

1. ISAAC (Shafiee et al., ISCA 2016), Table 6 beside the ``isaac_32nm`` preset. The
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
2. LeNet and ConvNet at 64x64 (differential, illustrative technology), dense and compressed,
   placed and routed with the default settings: per layer and total, the interconnect's share.
   No trained checkpoint exists on this machine: the weights are PyTorch's default random
   initialization (seed 0), and "compressed" is one-shot SVD truncation of the registered
   low-rank layers at a tolerance (pairs that do not save cells merged back, as the clip stage
   does) followed by a random crossbar-aligned group deletion (50 % of the input-wire groups,
   30 % of the output-wire groups, 20 % of the tiles of matrices with at least 4 tiles).
   Their accuracy is meaningless; the point is how the energy follows the structure.
3. VGG-16 (ImageNet, configuration D, models/vgg.py) dense at 128x128, random weights; routed if
   placement and routing finish within 120 s, else without interconnect (said in the output).
"""

import argparse
import copy
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from benchmarks.routing_scale import group_deleted  # noqa: E402
from mapping.energy import crossbar_breakdown, energy, format_table  # noqa: E402
from mapping.spec import CrossbarSpec, Technology  # noqa: E402

PARTS = ("isaac", "lenet", "convnet", "vgg16")
ROUTE_BUDGET_S = 120.0
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


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def place_route(design, spec: CrossbarSpec, budget_s: float | None = None):
    """(placement, routing, seconds), or (None, None, seconds) past ``budget_s``."""
    from mapping.placement import PlaceConfig, place
    from mapping.routing import RouteConfig, route

    t0 = time.perf_counter()
    if budget_s is not None:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, budget_s)
    try:
        pl = place(design, PlaceConfig(method="fast"))
        rt = route(design, pl, RouteConfig.for_spec(spec))
    except _Timeout:
        return None, None, time.perf_counter() - t0
    finally:
        if budget_s is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return pl, rt, time.perf_counter() - t0


def compressed(name: str):
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


def small(name: str) -> dict:
    import models
    from mapping.network import map_model

    spec = CrossbarSpec(64, 64)
    model, how = compressed(name)
    net = map_model(model, spec, models.info(name).input_shape)
    dense = net.dense_baseline()
    _, rt, s1 = place_route(net.design, spec)
    _, rtd, s2 = place_route(dense.design, spec)
    rep = energy(net, rt, rtd)
    weights = (f"random init (torch seed 0), SVD-truncated at tolerance {TOLERANCE} (ranks "
               f"{how['ranks']}, merged back {how['merged_back_to_dense']}), then random group "
               f"deletion ({DELETION}); dense = the same model's dense baseline")
    print(f"{name} at {spec}; weights: {weights}")
    print(format_table(rep))
    d = rep.to_dict()
    print(f"compressed / dense: energy {d['ratio_to_dense']['energy']:.2%}, latency "
          f"{d['ratio_to_dense']['latency']:.2%}, throughput x{d['ratio_to_dense']['throughput']:.3g};"
          f" interconnect {d['interconnect_share']:.2%} of the energy (dense "
          f"{d['dense']['interconnect_share']:.2%}); routing overflow {rt.overflow} "
          f"(dense {rtd.overflow}) tracks\n")
    return {"crossbar": str(spec), "weights": weights, "compression": how,
            "route_seconds": round(s1 + s2, 1), "overflow": rt.overflow,
            "dense_overflow": rtd.overflow, "energy": d}


def vgg16() -> dict:
    import torch

    import models
    from mapping.network import map_model

    spec = CrossbarSpec(128, 128)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    net = map_model(models.get("vgg16"), spec, models.info("vgg16").input_shape)
    dense = net.dense_baseline()  # structural: same tiles and nets, no weight copies
    del net
    map_s = time.perf_counter() - t0
    _, rt, route_s = place_route(dense.design, spec, ROUTE_BUDGET_S)
    routed = rt is not None
    rep = energy(dense, rt, rt)
    weights = "random init (torch seed 0), dense (every tile built, every wire live)"
    note = (f"routed in {route_s:.0f} s (overflow {rt.overflow} tracks: congested, lengths as "
            "routed)" if routed else
            f"placement + routing did not finish within {ROUTE_BUDGET_S:.0f} s: energy WITHOUT "
            "interconnect")
    print(f"vgg16 (ImageNet, 224x224) at {spec}; weights: {weights}; {note}")
    print(format_table(rep) + "\n")
    return {"crossbar": str(spec), "weights": weights, "routed": routed, "note": note,
            "map_seconds": round(map_s, 1), "route_seconds": round(route_s, 1),
            "overflow": rt.overflow if routed else None, "energy": rep.to_dict()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    args = ap.parse_args()
    res: dict = {}
    if "isaac" in args.only:
        rows = isaac_rows()
        print_isaac(rows)
        res["isaac_table6"] = {"paper": "Shafiee et al., ISAAC, ISCA 2016, Table 6",
                               "preset": "isaac_32nm", "crossbar": str(isaac_spec()),
                               "rows": rows}
    for name in ("lenet", "convnet"):
        if name in args.only:
            res[name] = small(name)
    if "vgg16" in args.only:
        res["vgg16"] = vgg16()
    config = {"technology": "illustrative (mapping/presets/illustrative.toml) for lenet/convnet/"
                            "vgg16; isaac_32nm for the table",
              "place": "fast", "route": "RouteConfig.for_spec defaults",
              "svd_tolerance": TOLERANCE, "group_deletion": DELETION,
              "route_budget_s": ROUTE_BUDGET_S}
    for part, metrics in res.items():
        model = "isaac" if part == "isaac_table6" else part
        name = "isaac-table6" if part == "isaac_table6" else f"{part}-energy"
        ledger.append("energy", ledger.make_row(name, model, {**config, "part": part}, metrics),
                      replace=True, headline_key=model)
        print(f"recorded row {name!r} in {ledger.path('energy')}")


if __name__ == "__main__":
    guarded(main)
