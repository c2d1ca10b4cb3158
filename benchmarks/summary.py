"""Print the paper's table beside this project's measured figures, from benchmarks/results/.

    python benchmarks/summary.py

Reads only committed result files (train_dense_*, rank_clipping, group_deletion, routing) and
prints a Markdown table; a figure not measured yet shows as 'not measured'.
"""

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
PAPER = {"lenet": ("MNIST", 13.62, 8.1), "convnet": ("CIFAR-10", 51.81, 52.06)}


def load(name: str) -> dict:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def pct(x) -> str:
    return "not measured" if x is None else f"{100 * x:.2f} %"


def main() -> None:
    rc, gd, rt = load("rank_clipping"), load("group_deletion"), load("routing")
    print("| model | | dense accuracy | crossbar area (cells) | wires | routing area | accuracy |")
    print("|---|---|---|---|---|---|---|")
    for model, (ds, cell, route) in PAPER.items():
        dense = load(f"train_dense_{model}")
        r, g = rc.get(model, {}), gd.get(model, {})
        routed = rt.get("designs", {}).get(f"{model}_compressed_trained", {})
        print(f"| {model} / {ds} | paper | - | {cell} % | - | {route} % | no loss |")
        acc = g.get("test_accuracy", r.get("test_accuracy"))
        print(f"| | this project | {pct(dense.get('test_accuracy'))} | "
              f"{pct(g.get('cell_area_ratio', r.get('cell_area_ratio')))} | "
              f"{pct(g.get('wire_ratio'))} | {pct(routed.get('routing_area_ratio'))} | "
              f"{pct(acc)} |")


if __name__ == "__main__":
    main()
