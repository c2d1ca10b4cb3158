"""The compile report: report.json (every figure) and report.md (the paper's table + plots)."""

import json
from pathlib import Path

from common.io import write_json, write_text

PAPER = {  # Group Scissor (DAC 2017), Table 2: crossbar area and routing area, % of dense
    "lenet": {"dataset": "mnist", "cell_area_ratio": 0.1362, "routing_area_ratio": 0.081},
    "convnet": {"dataset": "cifar10", "cell_area_ratio": 0.5181,
                "routing_area_ratio": 0.5206},
}


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def build_report(cfg, out: Path, records: dict) -> dict:
    spec = cfg.spec()  # with the weight precision and technology the map stage used
    mapping = _load(out / "4-map" / "mapping.json")
    clip_map = _load(out / "2-clip" / "mapping.json")
    routing = _load(out / "5-route" / "routing.json")
    wires = _load(out / "3-prune" / "wires.json")
    ranks = _load(out / "2-clip" / "ranks.json")
    final_ranks = {}
    for layer in mapping.get("layers", []):
        final_ranks[layer["name"]] = layer.get("rank")
    wire_by_layer = {w["name"]: w for w in wires.get("layers", [])}
    layers = [{
        "name": layer["name"], "shape": layer["shape"], "rank": layer.get("rank"),
        "full_rank": ranks.get("full_ranks", {}).get(layer["name"]),
        "rank_after_clip": ranks.get("ranks", {}).get(layer["name"]),
        "n_crossbars": layer["n_crossbars"], "cells": layer["cells"],
        "utilization": layer.get("utilization"),
        "wires": wire_by_layer.get(layer["name"], {}).get("wires"),
        "dense_wires": wire_by_layer.get(layer["name"], {}).get("dense", {}).get("wires"),
    } for layer in mapping.get("layers", [])]
    acc = {
        "baseline": records["train"]["metrics"]["test_accuracy"],
        "rank_clipped": records["clip"]["metrics"]["test_accuracy"],
        "final": records["prune"]["metrics"]["test_accuracy"],
    }
    return {
        "model": cfg.model, "dataset": cfg.dataset,
        "crossbar": {**spec.to_dict(), "slices": spec.slices},  # crossbars per tile
        "accuracy": acc,
        "rank_clipped": {
            "cell_area_ratio": clip_map.get("cell_area_ratio"),
            "crossbar_area_ratio": clip_map.get("crossbar_area_ratio"),
            "wire_ratio": _ratio(clip_map.get("nets", {}).get("total_wires"),
                                 clip_map.get("baseline", {}).get("total_wires"))},
        "accuracy_drop_points": round(100 * (acc["baseline"] - acc["final"]), 3),
        "layers": layers,
        "n_crossbars": mapping.get("n_crossbars"), "cells": mapping.get("cells"),
        "cell_area_ratio": mapping.get("cell_area_ratio"),
        "crossbar_area_ratio": mapping.get("crossbar_area_ratio"),
        "area_um2": mapping.get("area_um2"),
        "wire_ratio": wires.get("wire_ratio"),
        "routing_area_ratio": routing.get("routing_area_ratio"),
        "routing_area_um2": routing.get("routing_area_um2"),
        "dense_area_um2": mapping.get("baseline", {}).get("area_um2"),
        "dense_routing_area_um2": routing.get("dense", {}).get("routing_area_um2"),
        "wirelength": routing.get("wirelength"),
        # lower_bound: the routed trees' own length (multi-pin nets); signal_bound: a bound
        # that holds for any routing of this placement
        "lower_bound": routing.get("lower_bound"), "signal_bound": routing.get("signal_bound"),
        "congestion": {"max": routing.get("max_congestion"),
                       "mean": routing.get("mean_congestion"),
                       "overflow": routing.get("overflow")},
        # per inference: routed (5-route) if the route stage wrote it, else unrouted (4-map)
        "energy": _load(out / "5-route" / "energy.json") or _load(out / "4-map" / "energy.json")
        or None,
        # stage 7-evaluate (None: no device file, not evaluated)
        "device_accuracy": _device_accuracy(records.get("evaluate")),
        "paper": PAPER.get(cfg.model),
        "stage_seconds": {k: v.get("seconds") for k, v in records.items()},
        "config": cfg.to_dict(),
    }


def _device_accuracy(rec: dict | None) -> dict | None:
    """The figures of stage 7-evaluate: accuracy over the chips beside the ideal chip's."""
    if rec is None:
        return None
    m = rec["metrics"]
    return {"device_file": m["device_file"], "device_name": m["device_name"],
            "chips": len(m["accuracies"]), "seeds": m["seeds"], "deterministic": m["deterministic"],
            "accuracy": m["accuracy"], "accuracies": m["accuracies"],
            "ideal_accuracy": m["ideal_accuracy"], "pytorch_accuracy": m["pytorch_accuracy"],
            "test_samples": m["test_samples"], "full_test_set": m["full_test_set"],
            "report": "7-evaluate/evaluate.json"}


def device_line(d: dict | None) -> str:
    """One line of the device accuracy (compile's summary), or 'not evaluated'."""
    if d is None:
        return "device effects not evaluated (no --device-file)"
    a = d["accuracy"]
    return (f"accuracy on {d['device_name'] or d['device_file']} chips {a['mean']:.4f} +- "
            f"{a['std']:.4f} ({d['chips']} seeds; ideal chip {d['ideal_accuracy']:.4f})")


def _sum(a, b):
    return None if a is None or b is None else a + b


def _ratio(a, b):
    return None if a is None or not b else a / b


def _precision(xb: dict) -> str:
    """The weight precision of a report's crossbar, as a phrase (empty for analog weights)."""
    if xb.get("weight_bits") is None:
        return ""
    if xb.get("cell_bits") is None:
        return f", {xb['weight_bits']}-bit weights (one cell each)"
    return (f", {xb['weight_bits']}-bit weights sliced over {xb['slices']} crossbars of "
            f"{xb['cell_bits']}-bit cells per tile (crossbar counts, area and energy include "
            "the slices)")


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _num(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def report_markdown(rep: dict, out: Path) -> str:
    a, paper, rc = rep["accuracy"], rep.get("paper") or {}, rep["rank_clipped"]
    xb = rep["crossbar"]
    lines = [
        f"# Group Scissor report: {rep['model']} on {rep['dataset']}",
        "",
        f"Crossbar {xb['rows']}x{xb['cols']} {xb['encoding']}{_precision(xb)}.",
        "",
        "| | crossbar area (cells, % of dense) | crossbar count (% of dense) | routing area "
        "(% of dense) | wires (% of dense) | accuracy |",
        "|---|---|---|---|---|---|",
        f"| dense baseline | 100 % | 100 % | 100 % | 100 % | {a['baseline']:.4f} |",
        f"| rank clipping | {_pct(rc['cell_area_ratio'])} | {_pct(rc['crossbar_area_ratio'])} | "
        f"- | {_pct(rc['wire_ratio'])} | {a['rank_clipped']:.4f} |",
        f"| Group Scissor (this run) | {_pct(rep['cell_area_ratio'])} | "
        f"{_pct(rep['crossbar_area_ratio'])} | {_pct(rep['routing_area_ratio'])} | "
        f"{_pct(rep['wire_ratio'])} | {a['final']:.4f} |",
    ]
    if paper:
        lines.append(f"| paper ({rep['model']} on {paper['dataset']}) | "
                     f"{_pct(paper['cell_area_ratio'])} | - | "
                     f"{_pct(paper['routing_area_ratio'])} | - | no loss |")
    lines += ["", "## Layers", "",
              "| layer | shape | rank (full -> clipped) | crossbars | cells | wires (dense) |",
              "|---|---|---|---|---|---|"]
    for layer in rep["layers"]:
        shape = "x".join(str(s) for s in layer["shape"])
        rank = (f"{layer['full_rank']} -> {layer['rank']}" if layer["rank"] else "dense")
        lines.append(f"| {layer['name']} | {shape} | {rank} | {layer['n_crossbars']} | "
                     f"{layer['cells']} | {layer['wires']} ({layer['dense_wires']}) |")
    c = rep["congestion"]
    total = _sum(rep["area_um2"], rep["routing_area_um2"])
    dense_total = _sum(rep.get("dense_area_um2"), rep.get("dense_routing_area_um2"))
    gap = _ratio(rep["wirelength"], rep["signal_bound"])
    lines += ["", "## Area", "",
              "| | crossbars (um2) | routing (um2) | total (um2) |", "|---|---|---|---|",
              f"| dense baseline | {_num(rep.get('dense_area_um2'))} | "
              f"{_num(rep.get('dense_routing_area_um2'))} | {_num(dense_total)} |",
              f"| Group Scissor | {_num(rep['area_um2'])} | {_num(rep['routing_area_um2'])} | "
              f"{_num(total)} ({_pct(_ratio(total, dense_total))} of dense) |",
              "", "## Routing", "",
              f"Wirelength {rep['wirelength']} track-gcells, {_num(gap)}x the bound that holds "
              f"for any routing of this placement ({rep['signal_bound']}); routing area "
              f"{_num(rep['routing_area_um2'])} um2; congestion max "
              f"{_num(c['max'])}, mean {_num(c['mean'])}, overflow {c['overflow']} tracks."]
    lines += ["", "## Accuracy under device effects", "", *_device_lines(rep.get("device_accuracy"))]
    if rep.get("energy"):
        from mapping.energy import markdown_lines

        lines += ["", "## Energy and latency", "", *markdown_lines(rep["energy"])]
    lines += ["", "## Run time per stage (s)", "",
              " | ".join(f"{k} {v}" for k, v in rep["stage_seconds"].items()), "", "## Plots", ""]
    for title, rel in (("Cells per layer", "area_per_layer.png"),
                       ("Rank history", "2-clip/ranks.png"), ("Deleted groups", "3-prune/tiles.png"),
                       ("Floorplan", "5-route/floorplan.png"),
                       ("Congestion", "5-route/congestion.png"),
                       ("Dense baseline floorplan", "5-route/dense_floorplan.png"),
                       ("Dense baseline congestion", "5-route/dense_congestion.png")):
        if (out / rel).is_file():
            lines.append(f"![{title}]({rel})")
    return "\n".join(lines) + "\n"


def _device_lines(d: dict | None) -> list[str]:
    if d is None:
        return ["Not evaluated: no device file (`--device-file`, `[evaluate] device_file`)."]
    a = d["accuracy"]
    chips = ("1 chip: the device has no random effect, every seed is the same chip"
             if d["deterministic"] else f"{d['chips']} chips, seeds {d['seeds'][0]} .. "
             f"{d['seeds'][-1]}")
    images = f"{d['test_samples']} test images" + ("" if d["full_test_set"] else
                                                   " (not the full test set)")
    return [f"Device `{d['device_name'] or d['device_file']}` ({chips}; {images}; "
            f"[{d['report']}]({d['report']})).", "",
            "| | accuracy |", "|---|---|",
            f"| PyTorch (final network) | {d['pytorch_accuracy']:.4f} |",
            f"| ideal chip (same mapping, no effect) | {d['ideal_accuracy']:.4f} |",
            f"| chips with device effects, mean +- std (min, max) | {a['mean']:.4f} +- "
            f"{a['std']:.4f} ({a['min']:.4f}, {a['max']:.4f}) |"]


def plot_area_per_layer(rep: dict, path: Path) -> None:
    """Bars of cells per layer: dense baseline against the compressed network."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.io import save_figure

    layers = rep["layers"]
    names = [layer["name"] for layer in layers]
    dense = [layer["shape"][0] * layer["shape"][1] for layer in layers]
    final = [layer["cells"] for layer in layers]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.bar([i - 0.2 for i in x], dense, 0.4, label="dense")
    ax.bar([i + 0.2 for i in x], final, 0.4, label="Group Scissor")
    ax.set(xticks=list(x), xticklabels=names, ylabel="cells (logical weights)", yscale="log",
           title="crossbar area per layer")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_report(rep: dict, out: Path) -> None:
    if rep["layers"]:
        plot_area_per_layer(rep, out / "area_per_layer.png")
    write_json(out / "report.json", rep)
    write_text(out / "report.md", report_markdown(rep, out))
