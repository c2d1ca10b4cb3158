"""Crossbar design-space sweep: area against accuracy for crossbar sizes and encodings.

    python examples/crossbar_sweep.py --model lenet --checkpoint runs/lenet/checkpoint.pt \
        --dataset mnist --sizes 32x32,64x64,128x128,256x256,32x128 --out runs/sweep

For every (size, encoding) the model is mapped and its crossbars, cells, area_um2 and
utilization are recorded, with the test accuracy of the mapped network simulated crossbar by
crossbar under a device model (--levels conductance levels, --sigma lognormal programming
variation, seeded) on the first --test-samples test samples. Writes OUT/sweep.csv,
OUT/sweep.json (rows, Pareto front, settings, command, date) and OUT/pareto.png (area against
accuracy, the Pareto front highlighted). Without --checkpoint the model is freshly initialised
(seed 0): the figures are then about the hardware only.
"""

import argparse
import csv
import datetime as dt
import io
import os
import sys
from pathlib import Path

import numpy as np
import torch

import mapping
import models
from common.errors import UserError
from common.io import write_json, write_text
from group_scissor import load_dataset, load_model

FIELDS = ("size", "rows", "cols", "encoding", "n_crossbars", "dense_crossbars", "cells",
          "area_um2", "utilization", "cell_area_ratio", "crossbar_area_ratio", "accuracy")


def mapped_accuracy(mapped, x: torch.Tensor, y: torch.Tensor, device, batch: int = 250) -> float:
    """Accuracy of the crossbar simulation on x: (P, *input_shape), y: (P,), in batches."""
    hits = sum((mapped.forward(x[i:i + batch], device).argmax(1) == y[i:i + batch]).sum().item()
               for i in range(0, len(y), batch))
    return hits / len(y)


def pareto_front(area: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """(n,) bool: no other point has smaller-or-equal area and higher accuracy (or equal
    accuracy and smaller area)."""
    order = np.lexsort((-acc, area))  # area ascending, then accuracy descending
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], acc[order][:-1]]))
    front = np.zeros(len(area), dtype=bool)
    front[order] = acc[order] > best_before
    return front


def plot_pareto(rows: list[dict], front: np.ndarray, title: str, path: Path) -> Path:
    from matplotlib.figure import Figure

    area = np.array([r["area_um2"] for r in rows])
    acc = np.array([r["accuracy"] for r in rows])
    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    ax.scatter(area[~front], acc[~front], c="grey", label="dominated")
    order = np.argsort(area[front])
    ax.step(area[front][order], acc[front][order], where="post", c="tab:red", alpha=0.5)
    ax.scatter(area[front], acc[front], c="tab:red", label="Pareto front", zorder=3)
    for r, a, b in zip(rows, area, acc, strict=True):
        ax.annotate(f"{r['size']} {r['encoding'][:4]}", (a, b), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("crossbar area with periphery (um2)")
    ax.set_ylabel("test accuracy (mapped, device model)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def sweep(args) -> dict:
    info = models.info(args.model)
    torch.manual_seed(0)
    model = load_model(info.name, args.checkpoint).eval()  # fresh model if no checkpoint
    data = load_dataset(args.dataset, args.data_dir)
    if data.input_shape != info.input_shape:
        raise ValueError(f"{info.name} takes {info.input_shape} inputs but {data.name} has "
                         f"{data.input_shape}; pick --dataset {info.default_dataset}")
    n = min(args.test_samples, len(data.test))
    x, y = data.test.x[:n], data.test.y[:n]  # (n, C, H, W), (n,)
    with torch.no_grad():
        software = (model(x).argmax(1) == y).float().mean().item()
    device = mapping.DeviceModel(levels=args.levels or None, variation_sigma=args.sigma,
                                 seed=args.seed)
    rows = []
    for size in args.sizes.split(","):
        for enc in args.encodings.split(","):
            spec = mapping.CrossbarSpec.parse(size, encoding=enc.strip())
            m = mapping.map_model(model, spec, info.input_shape)
            row = {"size": f"{spec.rows}x{spec.cols}", "rows": spec.rows, "cols": spec.cols,
                   "encoding": spec.encoding, "n_crossbars": m.n_crossbars,
                   "dense_crossbars": m.baseline.n_crossbars, "cells": m.cells,
                   "area_um2": round(m.area_um2, 3),
                   "utilization": round(m.cells / (m.n_crossbars * spec.rows * spec.lcols), 6),
                   "cell_area_ratio": round(m.cell_area_ratio, 6),
                   "crossbar_area_ratio": round(m.crossbar_area_ratio, 6),
                   "accuracy": round(mapped_accuracy(m, x, y, device), 6)}
            rows.append(row)
            print(f"{row['size']:>8s} {row['encoding']:12s} crossbars {row['n_crossbars']:5d}  "
                  f"area {row['area_um2']:12.1f} um2  util {row['utilization']:6.1%}  "
                  f"accuracy {row['accuracy']:.4f}")
    front = pareto_front(np.array([r["area_um2"] for r in rows]),
                         np.array([r["accuracy"] for r in rows]))
    for r, f in zip(rows, front, strict=True):
        r["pareto"] = bool(f)
    args.out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, (*FIELDS, "pareto"), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(args.out / "sweep.csv", buf.getvalue())
    result = {
        "model": info.name, "checkpoint": args.checkpoint, "dataset": data.name,
        "test_samples": n, "software_accuracy": software,
        "device": {"levels": device.levels, "variation_sigma": device.variation_sigma,
                   "variation": device.variation, "seed": device.seed},
        "rows": rows, "pareto": [f"{r['size']} {r['encoding']}" for r in rows if r["pareto"]],
        "command": "python " + " ".join(sys.argv),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    write_json(args.out / "sweep.json", result)
    plot_pareto(rows, front, f"{info.name} on {data.name} ({n} test samples), levels "
                f"{device.levels}, sigma {device.variation_sigma}; software accuracy "
                f"{software:.4f}", args.out / "pareto.png")
    print(f"software accuracy {software:.4f}; Pareto front: {', '.join(result['pareto'])}")
    print(f"wrote {args.out}/sweep.csv, sweep.json, pareto.png")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet", help="registered model name")
    ap.add_argument("--checkpoint", default=None, help="checkpoint.pt (default: a fresh model)")
    ap.add_argument("--dataset", default=None,
                    help="digits, mnist or cifar10 (default: the model's own data set)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--sizes", default="32x32,64x64,128x128,256x256,32x128",
                    help="comma-separated ROWSxCOLS")
    ap.add_argument("--encodings", default="differential,offset",
                    help="comma-separated: differential, offset, unsigned")
    ap.add_argument("--levels", type=int, default=16, help="conductance levels (0: continuous)")
    ap.add_argument("--sigma", type=float, default=0.05, help="lognormal programming variation")
    ap.add_argument("--seed", type=int, default=0, help="seed of the variation draws")
    ap.add_argument("--test-samples", type=int, default=1000, help="first N test samples")
    ap.add_argument("--out", type=Path, default=Path("runs/sweep"))
    args = ap.parse_args()
    try:
        if args.dataset is None:
            args.dataset = models.info(args.model).default_dataset or "digits"
        if args.test_samples < 1:
            raise ValueError(f"--test-samples must be >= 1, got {args.test_samples}")
        sweep(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
