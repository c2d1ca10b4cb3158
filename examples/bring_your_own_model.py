"""Bring your own model: a network defined in this file, taken to a placed and routed chip.

    python examples/bring_your_own_model.py                    # -> runs/byom
    python examples/bring_your_own_model.py --epochs 0 --rank 8 --crossbar 32x32 --out /tmp/byom

Steps: define an nn.Module -> train it briefly on the embedded digits set -> (optionally) turn
conv2 and fc1 into low-rank pairs U.V -> map it onto crossbars and print the table -> check the
crossbar-by-crossbar simulation computes what the model computes -> place and route it and its
dense baseline -> write the floorplan / congestion PNGs, JSON and Verilog netlists and
summary.json. Nothing is downloaded; it runs in seconds on one CPU core.
"""

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import mapping
import netlists
from group_scissor import TrainConfig, Trainer, load_dataset, to_low_rank
from mapping.congestion import report as routing_report  # (mapping.report is the module)


class TinyCNN(nn.Module):
    """Any nn.Module whose weighted layers are Linear / Conv2d can be mapped (chains as here,
    or graphs: residual adds, concatenations, batch norms, grouped/depthwise convs).

    Crossbar matrices (rows = inputs, cols = outputs): conv1 25x8, conv2 200x16, fc1 256x64,
    fc2 64x10.
    """

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)  # (B,1,28,28) -> (B,8,24,24)
        self.conv2 = nn.Conv2d(8, 16, 5)  # (B,8,12,12) -> (B,16,8,8)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)  # (B,256) -> (B,64)
        self.fc2 = nn.Linear(64, num_classes)  # (B,64) -> (B,10)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))  # (B,8,12,12)
        x = self.pool(torch.relu(self.conv2(x)))  # (B,16,4,4)
        x = torch.relu(self.fc1(x.flatten(1)))  # (B,64)
        return self.fc2(x)  # (B,10) logits


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return (logits.argmax(1) == y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/byom"), help="output folder")
    ap.add_argument("--epochs", type=int, default=2, help="training epochs on digits (0: skip)")
    ap.add_argument("--rank", type=int, default=0,
                    help="low-rank conv2 (<= 16) and fc1 (<= 64) to this rank (0: keep dense)")
    ap.add_argument("--crossbar", default="64x64", help="crossbar size ROWSxCOLS")
    ap.add_argument("--encoding", default="differential", help="differential, offset, unsigned")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    # 1. the model and the data: digits are 8x8 images upsampled to (1, 28, 28), 10 classes
    model = TinyCNN()
    data = load_dataset("digits")  # data.train.x: (1437, 1, 28, 28), data.test.x: (360, ...)
    if args.epochs > 0:
        cfg = TrainConfig(epochs=args.epochs, batch_size=32, lr=0.05)
        Trainer(model, data, cfg, progress=False).fit()
    model.eval()
    x, y = data.test.x, data.test.y
    with torch.no_grad():
        print(f"test accuracy (software): {accuracy(model(x), y):.4f}")

    # 2. optional low-rank pairs: W (N, M) ~= U (N, K) @ V (K, M), K = rank (truncated SVD)
    if args.rank > 0:
        to_low_rank(model, ["conv2", "fc1"], rank={"conv2": min(args.rank, 16), "fc1": args.rank})
        with torch.no_grad():
            print(f"test accuracy after rank-{args.rank} truncation: {accuracy(model(x), y):.4f}")

    # 3. map onto crossbars: every matrix tiled onto rows x lcols logical crossbars
    spec = mapping.CrossbarSpec.parse(args.crossbar, encoding=args.encoding)
    mapped = mapping.map_model(model, spec, input_shape=(1, 28, 28))
    print(mapping.format_table(mapped))

    # 4. the chip computes the same: tile-by-tile simulation (float64) against the model
    with torch.no_grad():
        y_model = model(x)  # (360, 10)
    y_chip = mapped.forward(x)  # (360, 10), crossbar by crossbar
    err = (y_chip - y_model).abs().max().item()
    print(f"max abs error chip vs model: {err:.2e} (chip accuracy {accuracy(y_chip, y):.4f})")

    # 5. place and route the chip and its dense baseline with the same settings
    place_cfg = mapping.PlaceConfig(method="fast")
    route_cfg = mapping.RouteConfig.for_spec(spec, method="negotiated")
    design = mapped.design  # units (tiles T, output units A, input IN), buses (nets), row signals
    pl = mapping.place(design, place_cfg)
    rt = mapping.route(design, pl, route_cfg)
    dense = mapped.dense_baseline().design
    rt_dense = mapping.route(dense, mapping.place(dense, place_cfg), route_cfg)
    rep = routing_report(rt, dense=rt_dense)
    print(f"placed {len(design.units)} units on {pl.grid_sites[0]}x{pl.grid_sites[1]} sites; "
          f"routed {rep.nets} nets ({rep.wires} wires): wirelength {rep.wirelength} gcell edges "
          f"(lower bound {rep.lower_bound}), routing area {rep.routing_area_um2:.1f} um2 = "
          f"{rep.routing_area_ratio:.2%} of dense, max congestion {rep.max_congestion:.2f}, "
          f"overflow {rep.overflow}")

    # 6. pictures and netlists
    mapping.plot_floorplan(design, pl, rt, args.out / "floorplan.png")
    mapping.plot_congestion(rt, args.out / "congestion.png")
    netlists.write_json(mapped, args.out / "chip.json", pl, rt)
    netlists.write_verilog(mapped, args.out / "chip.v")
    mapping.write_reports(mapped, args.out)  # mapping.json / .csv / .txt
    summary = {"crossbar": str(spec), "n_crossbars": mapped.n_crossbars, "cells": mapped.cells,
               "area_um2": mapped.area_um2, "cell_area_ratio": mapped.cell_area_ratio,
               "crossbar_area_ratio": mapped.crossbar_area_ratio, "max_abs_error": err,
               "test_accuracy": accuracy(y_model, y), "routing": rep.to_dict()}
    tmp = args.out / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=float) + "\n")
    tmp.replace(args.out / "summary.json")
    print(f"wrote {args.out}/: floorplan.png congestion.png chip.json chip.v mapping.* "
          "summary.json")


if __name__ == "__main__":
    main()
