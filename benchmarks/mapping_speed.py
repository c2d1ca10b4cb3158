"""Mapping speed at VGG-16 scale (138M weights) on 128x128 crossbars, dense vs group-sparse.

    python benchmarks/mapping_speed.py            # row vgg16-128x128 of results/mapping_speed.json
    python benchmarks/mapping_speed.py --no-model # matrices only (skip map_model on VGG-16)

1. map_matrix on the 16 VGG-16 matrices (float32), dense and with Group-Scissor-like
   deletion (input-wire groups, output-wire groups and whole tiles zeroed at random):
   wall time and peak traced memory of the mapping alone (the weights are not counted).
2. map_model on a VGG-16 nn.Module (224x224 input): dry run, weight extraction, mapping,
   nets and the dense baseline, end to end.
Peak process memory (ru_maxrss) is reported too; target: <= 10 s for step 1.
"""

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from mapping import CrossbarSpec, map_matrix, map_model  # noqa: E402

CH = [3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG16 = [(f"conv{i + 1}", CH[i] * 9, CH[i + 1]) for i in range(13)] + [
    ("fc6", 25088, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]


def group_sparse(n: int, m: int, spec: CrossbarSpec, rng: np.random.Generator) -> np.ndarray:
    """Random float32 (n, m) with ~50% input-wire groups, ~30% output-wire groups and ~20%
    of the tiles deleted (vectorized masks on the tile grid)."""
    r, c = spec.rows, spec.lcols
    na, nb = -(-n // r), -(-m // c)
    W = rng.standard_normal((n, m), dtype=np.float32)
    row_g = rng.random((na * r, nb)) < 0.5  # (rows, B) input-wire groups deleted
    col_g = rng.random((na, nb * c)) < 0.3  # (A, cols) output-wire groups deleted
    tile = np.repeat(np.repeat(rng.random((na, nb)) < 0.2, r, 0), c, 1)  # (A*r, B*c)
    dead = np.repeat(row_g, c, 1) | np.repeat(col_g, r, 0) | tile
    W[dead[:n, :m]] = 0
    return W


def timed(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    dt = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, dt, peak / 2**20


def map_all(mats: dict[str, np.ndarray], spec: CrossbarSpec) -> dict:
    ms = [map_matrix(W, spec, name) for name, W in mats.items()]
    return {"n_crossbars": sum(m.n_crossbars for m in ms), "cells": sum(m.cells for m in ms),
            "nonzeros": sum(m.nonzeros for m in ms),
            "wires": sum(m.input_wires + m.output_wires for m in ms)}


def vgg16_module():
    import torch
    from torch import nn

    torch.manual_seed(0)
    layers, c = [], 3
    for i, f in enumerate(CH[1:]):
        layers += [nn.Conv2d(c, f, 3, padding=1), nn.ReLU()]
        if i in (1, 3, 6, 9, 12):
            layers.append(nn.MaxPool2d(2))
        c = f
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(25088, 4096), nn.ReLU(),
                         nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crossbar", default="128x128")
    ap.add_argument("--no-model", action="store_true", help="skip map_model on a VGG-16 module")
    ledger.add_arguments(ap, "vgg16-CROSSBAR, with -matrices-only under --no-model")
    args = ap.parse_args()
    row_name = args.name or f"vgg16-{args.crossbar}" + ("-matrices-only" if args.no_model else "")
    ledger.refuse_existing("mapping_speed", row_name, args.replace)
    spec = CrossbarSpec.parse(args.crossbar)
    rng = np.random.default_rng(0)
    dense = {name: rng.standard_normal((n, m), dtype=np.float32) for name, n, m in VGG16}
    weights = sum(W.size for W in dense.values())
    map_all({"warmup": dense["conv1"]}, spec)
    d_stats, d_time, d_mem = timed(map_all, dense, spec)
    del dense
    sparse = {name: group_sparse(n, m, spec, rng) for name, n, m in VGG16}
    s_stats, s_time, s_mem = timed(map_all, sparse, spec)
    del sparse
    res = {
        "weights": weights,
        "map_matrix": {
            "dense": {"seconds": round(d_time, 3), "peak_traced_mib": round(d_mem, 1), **d_stats},
            "group_sparse": {"seconds": round(s_time, 3), "peak_traced_mib": round(s_mem, 1),
                             **s_stats},
        },
    }
    print(f"VGG-16 matrices, {weights:,} weights, {spec}")
    print(f"{'':14}{'seconds':>9}{'peak MiB':>10}{'crossbars':>11}{'cells':>13}{'wires':>11}")
    for k, v in res["map_matrix"].items():
        print(f"{k:14}{v['seconds']:9.2f}{v['peak_traced_mib']:10.0f}{v['n_crossbars']:11,}"
              f"{v['cells']:13,}{v['wires']:11,}")
    if not args.no_model:
        model = vgg16_module()
        net, t, mem = timed(map_model, model, spec, (3, 224, 224))
        res["map_model_vgg16"] = {"seconds": round(t, 3), "peak_traced_mib": round(mem, 1),
                                  "n_crossbars": net.n_crossbars, "nets": len(net.nets),
                                  "baseline_crossbars": net.baseline.n_crossbars}
        print(f"map_model(VGG-16 module): {t:.2f} s, peak traced {mem:.0f} MiB, "
              f"{net.n_crossbars:,} crossbars (dense baseline {net.baseline.n_crossbars:,}), "
              f"{len(net.nets):,} nets")
    res["ru_maxrss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(f"process peak RSS {res['ru_maxrss_mib']:.0f} MiB")
    config = {"crossbar": str(spec), "map_model": not args.no_model}
    ledger.record("mapping_speed", ledger.make_row(row_name, "vgg16", config, res), args, "vgg16")


if __name__ == "__main__":
    guarded(main)
