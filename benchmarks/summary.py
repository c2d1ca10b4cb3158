"""The paper's table beside this project's measured figures, from the ledgers in benchmarks/results/.

    python benchmarks/summary.py             # the paper's table, from the headline rows
    python benchmarks/summary.py --readme    # rewrite README.md's and docs/routing.md's tables
    python benchmarks/summary.py --check     # exit 1 if they differ from the ledgers

Reads only the committed ledgers (benchmarks/ledger.py). The short table takes each model's
headline rows of train_dense, rank_clipping, group_deletion and routing; a figure not measured
yet shows as 'not measured'. The tables between the markers <!-- ledger:NAME --> and
<!-- /ledger --> of README.md (lenet, convnet, device, big, big_compressed), docs/routing.md
(big_detail, big_compressed, scaling, sweep) and docs/device-effects.md (sensitivity) are
written here (``DOCS``): every figure in them
is a metric of a named row (the headlines, their replicates with another batch-order seed, the
rows in SECONDARY, the device_accuracy rows and routing_big.py's rows), every command a row's
command (without --data-dir, which only says where this machine keeps its data sets).
"""

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import ledger  # noqa: E402
from common.errors import ConfigError  # noqa: E402

README = Path(__file__).resolve().parents[1] / "README.md"
PAPER = {"lenet": ("MNIST", 13.62, 8.1), "convnet": ("CIFAR-10", 51.81, 52.06)}
SECONDARY = {
    # the README's other points beside each headline
    "lenet": {
        "clip_without_distillation": ("rank_clipping", "lenet-clip-nuclear-tol0.05"),
        "deletion_more": ("group_deletion",
                          "lenet-deletion-l1.6e-2-ep14-ft5-kd-from-nuclear-tol0.05-kd"),
        "deletion_without_distillation": ("group_deletion",
                                          "lenet-deletion-l5e-3-ep14-ft5-from-nuclear-tol0.05"),
    },
    "convnet": {
        "clip_short_fine_tune": ("rank_clipping", "convnet-clip-nuclear-tol0.035-ft18-epyc"),
        "deletion_more": ("group_deletion", "convnet-deletion-l2.6e-2,3.1e-2,2.6e-2-ep92-ft80-"
                                            "ftlr0.02-rebalance-from-nuclear-tol0.035-ft30-lr0.02"),
    },
}


class Ledgers:
    """Every ledger, read once."""

    def __init__(self, results: Path = ledger.RESULTS):
        self.docs = {e: ledger.load(e, results) for e in ledger.EXPERIMENTS}

    def row(self, experiment: str, name: str) -> dict:
        r = ledger.find(self.docs[experiment], name)
        if r is None:
            raise ConfigError(f"no row {name!r} in the {experiment} ledger")
        return r

    def head(self, experiment: str, key: str, strict: bool = True) -> dict | None:
        name = self.docs[experiment]["headline"].get(key)
        if name is None:
            if strict:
                raise ConfigError(f"the {experiment} ledger has no {key} headline")
            return None
        return self.row(experiment, name)

    def replicates(self, experiment: str, of: dict) -> list[dict]:
        """Rows with ``of``'s config except the batch-order seed (train.seed; the timing
        settings under 'overhead' aside), in seed order."""
        def key(r):
            c = {k: v for k, v in r["config"].items() if k != "overhead"}
            return {**c, "train": {k: v for k, v in c["train"].items() if k != "seed"}}

        return sorted((r for r in self.docs[experiment]["rows"]
                       if r["name"] != of["name"] and key(r) == key(of)),
                      key=lambda r: r["config"]["train"]["seed"])

    def routed(self, deletion: dict) -> dict:
        """The routing row of a group_deletion row's net (its checkpoint is in the run folder)."""
        run = deletion["outputs"]["run"]
        for r in self.docs["routing"]["rows"]:
            if str(Path(r["config"].get("checkpoint", "")).parent) == run:
                return r
        raise ConfigError(f"no routing row for the net of {deletion['name']!r} ({run})")


def pct(x) -> str:
    return "not measured" if x is None else f"{100 * x:.2f} %"


def command(row: dict) -> str:
    """The row's command as the README shows it: without --data-dir."""
    return "`" + re.sub(r" --data-dir[ =]\S+", "", row["command"]) + "`"


def lambdas(row: dict) -> str:
    lam = row["config"]["prune"]["lambda_"]
    if isinstance(lam, dict):
        return " / ".join(ledger.sci(v) for k, v in lam.items() if k != "*" or v)
    return ledger.sci(lam)


def at(row: dict, ratio: str = "wire_ratio") -> str:
    m = row["metrics"]
    return f"{pct(m[ratio])} at {pct(m['test_accuracy'])}"


def drop(row: dict) -> str:
    m = row["metrics"]
    return f"-{100 * (m['baseline_test_accuracy'] - m['test_accuracy']):.2f} pt"


def overflow(row: dict) -> str:
    n = row["metrics"]["overflow"]
    return "zero overflow" if n == 0 else f"overflow {n}"


def table(head: str, rows: list[tuple[str, str, str, str]]) -> str:
    return grid([head, "paper", "this project", "command"], rows)


def grid(head: list[str], rows) -> str:
    """A Markdown table: the header ``head``, one line per row of cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def measured_by(rows: list[dict]) -> str:
    """'Measured by `cmd`, `cmd`.': the rows' commands, each once, in order."""
    return "Measured by " + ", ".join(dict.fromkeys(map(command, rows))) + "."


def lenet_table(L: Ledgers) -> str:
    _, paper_cells, paper_routing = PAPER["lenet"]
    more = {k: L.row(*v) for k, v in SECONDARY["lenet"].items()}
    dense = L.head("train_dense", "lenet")
    clip = L.head("rank_clipping", "lenet")
    dele = L.head("group_deletion", "lenet")
    route = L.head("routing", "lenet")
    trainer = L.head("trainer_overhead", "lenet")
    seeds = L.replicates("group_deletion", dele)
    more_seeds = L.replicates("group_deletion", more["deletion_more"])
    nokd = more["deletion_without_distillation"]
    mag = dele["metrics"]["magnitude_pruning"]
    routed_net = next(r for r in L.docs["group_deletion"]["rows"]
                      if r["outputs"]["run"] == str(Path(route["config"]["checkpoint"]).parent))
    ranks = ", ".join(str(k) for k in clip["metrics"]["ranks"].values())
    seed_text = (f"; seeds {', '.join(str(r['config']['train']['seed']) for r in seeds)}: "
                 + ", ".join(at(r) for r in seeds)) if seeds else ""
    more_seed_text = "".join(f"; seed {r['config']['train']['seed']}: "
                             f"{pct(r['metrics']['test_accuracy'])}" for r in more_seeds)
    tracks = route["config"]["tracks_per_gcell_edge"]
    both_zero = route["metrics"]["overflow"] == 0 and route["metrics"]["dense"]["overflow"] == 0
    return table("LeNet / MNIST", [
        ("dense accuracy", "- (no loss claimed)",
         f"{pct(dense['metrics']['test_accuracy'])} ({dense['config']['train']['epochs']} epochs)",
         command(dense)),
        ("crossbar area after rank clipping (cells, % of dense)", f"{paper_cells} %",
         f"{at(clip, 'cell_area_ratio')} (ranks {ranks}; nuclear norm and distillation from the "
         f"dense net; without distillation {at(more['clip_without_distillation'], 'cell_area_ratio')})",
         command(clip)),
        ("wires after group deletion (% of dense)", "-",
         f"{at(dele)} (lambda {lambdas(dele)} with distillation{seed_text}); "
         f"{at(more['deletion_more'])} ({lambdas(more['deletion_more'])}{more_seed_text}); "
         f"without distillation {at(nokd)} ({lambdas(nokd)}); more points in "
         "[docs/compression.md](docs/compression.md)",
         command(dele)),
        ("the same for magnitude pruning (Han et al.) at equal sparsity", "-",
         f"{pct(mag['wire_ratio'])} at {pct(mag['test_accuracy_fine_tuned'])} "
         f"({100 * dele['metrics']['weight_sparsity']:.0f} % of the weights zero): almost no wire "
         "removed", "same"),
        ("routing area (% of dense, same placer, router and settings)", f"{paper_routing} %",
         f"{pct(route['metrics']['routing_area_ratio'])} (the lambda {lambdas(routed_net)} model); "
         + (f"both it and the dense LeNet route with zero overflow at {tracks} tracks" if both_zero
            else f"{overflow(route)} (dense: overflow {route['metrics']['dense']['overflow']}) "
                 f"at {tracks} tracks"),
         command(route)),
        ("trainer overhead (epoch vs a bare PyTorch loop)", "-",
         f"{trainer['metrics']['ratio_min_over_min']:.3f}", command(trainer)),
    ])


def convnet_table(L: Ledgers) -> str:
    _, paper_cells, paper_routing = PAPER["convnet"]
    more = {k: L.row(*v) for k, v in SECONDARY["convnet"].items()}
    dense = L.head("train_dense", "convnet")
    clip = L.head("rank_clipping", "convnet")
    dele = L.head("group_deletion", "convnet")
    route = L.head("routing", "convnet")
    alt = more["deletion_more"]
    short = more["clip_short_fine_tune"]
    c, p = clip["config"]["clip"], dele["config"]["prune"]
    m = dele["metrics"]
    layers = ", ".join(k for k in p["lambda_"] if k != "*")
    penalty_epochs = dele["config"]["train"]["epochs"] - round(p["fine_tune_epochs"])

    def seeds(row):
        return "".join(f"; with batch order seed {r['config']['train']['seed']}: {at(r)}"
                       for r in L.replicates("group_deletion", row))

    alt_route = L.routed(alt)
    return table("ConvNet / CIFAR-10", [
        ("dense accuracy", "- (no loss claimed)",
         f"{pct(dense['metrics']['test_accuracy'])} ({dense['config']['train']['epochs']} epochs; "
         "Caffe's reference for this net: 81.65 %)", command(dense)),
        ("crossbar area after rank clipping (cells, % of dense)", f"{paper_cells} %",
         f"{at(clip, 'cell_area_ratio')} (ranks "
         f"{', '.join(str(k) for k in clip['metrics']['ranks'].values())}; {drop(clip)}; a "
         f"{c['fine_tune_epochs']}-epoch fine-tune restarted at lr {c['fine_tune_lr']:g}); "
         f"{at(short, 'cell_area_ratio')} with {short['config']['clip']['fine_tune_epochs']} "
         "fine-tune epochs"
         + (", no restart" if short["config"]["clip"]["fine_tune_lr"] is None else ""),
         command(clip)),
        ("wires after group deletion (% of dense)", "-",
         f"{at(dele)} ({drop(dele)}; lambda {lambdas(dele)} on {layers} for {penalty_epochs} "
         f"epochs, then the pairs rebalanced and {p['fine_tune_epochs']:g} fine-tune epochs "
         f"restarted at lr {p['fine_tune_lr']:g}; the clipped net alone: "
         f"{pct(m['clipped_wires']['wires'] / m['dense_baseline_wires']['wires'])}{seeds(dele)}); "
         f"{at(alt)} ({lambdas(alt)}{seeds(alt)}); magnitude pruning at the same sparsity: "
         f"{pct(m['magnitude_pruning']['wire_ratio'])}; see [docs/compression.md](docs/compression.md)",
         command(dele)),
        ("routing area (% of dense)", f"{paper_routing} %",
         f"{pct(route['metrics']['routing_area_ratio'])}, {overflow(route)} (the "
         f"{pct(m['wire_ratio'])} net above; the {pct(alt['metrics']['wire_ratio'])} net: "
         f"{pct(alt_route['metrics']['routing_area_ratio'])})", command(route)),
    ])


DEVICE_SETTINGS = ("adc4", "adc6", "adc8", "var0.05", "var0.1", "var0.2")
DEVICE_VARIANTS = ("dense", "clipped", "group-scissor")


def device_table(L: Ledgers) -> str:
    """Accuracy under device effects (device_accuracy rows): per shipped network, the ideal
    chip and each setting's mean +- std over the chip seeds; the rows' command below."""
    doc = L.docs["device_accuracy"]
    out, used = [], []
    for model in ("lenet", "convnet"):
        for variant in DEVICE_VARIANTS:
            rows = [ledger.find(doc, f"{model}-{variant}-{s}") for s in DEVICE_SETTINGS]
            if not all(rows):
                continue
            cells = [f"{100 * r['metrics']['accuracy']['mean']:.2f}" if r["metrics"]["deterministic"]
                     else f"{100 * r['metrics']['accuracy']['mean']:.2f} ± "
                          f"{100 * r['metrics']['accuracy']['std']:.2f}" for r in rows]
            m = rows[0]["metrics"]
            out.append([f"{model} {variant}", str(m["n_crossbars"]),
                        f"{100 * m['ideal_accuracy']:.2f}", *cells])
            used += rows
    head = ["network", "crossbars", "ideal chip", "ADC 4 bits", "ADC 6 bits", "ADC 8 bits",
            "variation 0.05", "variation 0.1", "variation 0.2"]
    return grid(head, out) + "\n\n" + measured_by(used)


NAMES = {"vgg16": "VGG-16", "resnet18": "ResNet-18", "resnet50": "ResNet-50",
         "mobilenet_v2": "MobileNetV2", "lenet": "LeNet", "convnet": "ConvNet"}
BIG = ("vgg16", "resnet18", "resnet50", "mobilenet_v2")
"""routing_big.py's networks, in its order; SWEEP_SIZES and SCALES as it runs them."""
SWEEP_SIZES = (32, 64, 128, 256)
SCALES = (512, 256, 128, 64)


def _big(L: Ledgers, part: str, net: str) -> dict:
    return L.row("routing", f"routable-{part}{net}-128x128")["metrics"]


def _die(m: dict) -> float:
    return m["die_area_um2"] / m["crossbar_area_um2"]


def big_table(L: Ledgers) -> str:
    """README: the dense big networks routed (routing_big.py's network parts)."""
    rows = []
    for net in BIG:
        m = _big(L, "", net)
        rows.append([NAMES[net], f"{m['crossbars']:,}", f"{m['wires']:,}", f"{m['flow_s']:.1f} s",
                     f"{m['peak_mb']:,.0f} MB", f"{m['die_over_crossbar_area']:.2f}",
                     f"{m['wl_over_bound']:.3f}"])
    return grid(["network", "crossbars", "wires", "map + place + route", "peak RSS",
                 "die / crossbar area", "wirelength / bound"], rows)


def big_detail_table(L: Ledgers) -> str:
    """docs/routing.md: the same rows, every figure."""
    rows = []
    for net in BIG:
        m = _big(L, "", net)
        rows.append([NAMES[net], f"{m['crossbars']:,}", f"{m['cells'] / 1e6:.1f} M",
                     f"{m['wires']:,}", f"{m['map_s']:.1f} / {m['place_s']:.2f} / "
                     f"{m['route_s']:.1f} ({m['flow_s']:.1f})",
                     f"{m['map_peak_mb']:,.0f} / {m['route_peak_mb']:,.0f} MB", str(m["overflow"]),
                     f"{m['die_area_um2'] / 1e6:#.3g} / {m['crossbar_area_um2'] / 1e6:#.3g} mm2 = "
                     f"{_die(m):.2f}", f"{m['wl_over_bound']:.3f}"])
    return grid(["network", "crossbars", "cells", "wires", "map / place / route s",
                 "peak RSS map / route", "overflow (200 tracks)", "die / crossbar area",
                 "wirelength / signal_bound"], rows)


def compressed_table(L: Ledgers) -> str:
    """README and docs/routing.md: compressed / dense (routing_big.py --only compressed)."""
    rows = []
    for net in BIG:
        m = _big(L, "compressed-", net)
        r = m["ratio_to_dense"]
        rows.append([NAMES[net], *(pct(r[k]) for k in ("crossbars", "cells", "wires",
                                                        "routing_area", "die_area")),
                     f"{_die(m['dense']):.2f} -> {_die(m['compressed']):.2f}"])
    return grid(["network", "crossbars", "cells", "wires", "routing area", "die area",
                 "die / crossbar area, dense -> compressed"], rows)


def scaling_table(L: Ledgers) -> str:
    """docs/routing.md: the synthetic VGG-16 at four crossbar sizes (--only scaling)."""
    rows = []
    for size in SCALES:
        m = L.row("routing", f"routable-scaling-vgg16-{size}x{size}")["metrics"]
        rows.append([f"{size}x{size}", f"{m['tiles']:,}", f"{m['nets']:,}",
                     f"{m['place_s']:.2f} + {m['route_s']:.2f}", f"{m['peak_mb']:,.0f} MB",
                     str(m["overflow"]), f"{_die(m):.2f}", f"{m['wl_over_bound']:.2f}"])
    return grid(["crossbar", "tiles", "nets", "place + route s", "peak RSS", "overflow",
                 "die / crossbar area", "wirelength / signal_bound"], rows)


def sweep_table(L: Ledgers) -> str:
    """docs/routing.md: LeNet and ConvNet at four sizes, both flows (--only sweep)."""
    rows = []
    for model in ("lenet", "convnet"):
        for size in SWEEP_SIZES:
            m = L.row("routing", f"routable-sweep-{model}-{size}x{size}")["metrics"]
            cells = [f"{NAMES[model]} {size}x{size}"]
            for how in ("default", "trees"):
                for k in ("dense", "compressed"):
                    x = m[how][k]
                    cells.append(f"{x['overflow']}, {x['wl_over_bound']:.2f}, {_die(x):.2f}")
                cells.append(f"{100 * m[how]['routing_area_ratio']:.1f} %")
            rows.append(cells)
    return grid(["design", "auto dense", "auto compressed", "auto ratio", "trees dense",
                 "trees compressed", "trees ratio"], rows)


def sensitivity_table(L: Ledgers) -> str:
    """docs/device-effects.md: loss against the ideal chip with the effect on one matrix only
    (device_sensitivity rows), per network and matrix."""
    doc = L.docs["device_sensitivity"]
    out, used = [], []
    for model in ("lenet", "convnet"):
        for variant in ("dense", "group-scissor"):
            var = ledger.find(doc, f"{model}-{variant}-var0.2-per-matrix")
            adc = ledger.find(doc, f"{model}-{variant}-adc4-per-matrix")
            if var is None or adc is None:
                continue
            for v, a in zip(var["metrics"]["matrices"], adc["metrics"]["matrices"], strict=True):
                out.append([f"{model} {variant}", v["matrix"], f"({v['shape'][0]}, {v['shape'][1]})",
                            str(v["tiles"]), f"{v['loss_points']:.2f} ± "
                            f"{100 * v['accuracy']['std']:.2f}", f"{a['loss_points']:.2f}"])
            used += [var, adc]
    return grid(["network", "matrix", "(rows, cols)", "tiles", "variation 0.2: loss (pt)",
                 "ADC 4 bits: loss (pt)"], out) + "\n\n" + measured_by(used)


def readme_tables(L: Ledgers) -> dict[str, str]:
    """The README's tables by marker, generated from the ledgers."""
    return {"lenet": lenet_table(L), "convnet": convnet_table(L), "device": device_table(L),
            "big": big_table(L), "big_compressed": compressed_table(L)}


def routing_doc_tables(L: Ledgers) -> dict[str, str]:
    """docs/routing.md's tables by marker."""
    return {"big_detail": big_detail_table(L), "big_compressed": compressed_table(L),
            "scaling": scaling_table(L), "sweep": sweep_table(L)}


DOCS = {README: readme_tables, README.parent / "docs" / "routing.md": routing_doc_tables,
        README.parent / "docs" / "device-effects.md": lambda L: {"sensitivity":
                                                                 sensitivity_table(L)}}
"""Every file with generated tables, and the function that makes its tables."""


BLOCK = re.compile(r"(<!-- ledger:(\w+) -->\n)(.*?)(<!-- /ledger -->)", re.S)


def readme_blocks(text: str) -> dict[str, str]:
    """The tables between the markers of ``text`` (a README), by marker."""
    return {m.group(2): m.group(3).rstrip("\n") for m in BLOCK.finditer(text)}


def with_tables(text: str, tables: dict[str, str]) -> str:
    found = readme_blocks(text)
    if set(found) != set(tables):
        raise ConfigError(f"ledger markers {sorted(found)}, expected {sorted(tables)}")
    return BLOCK.sub(lambda m: m.group(1) + tables[m.group(2)] + "\n" + m.group(4), text)


def paper_table(L: Ledgers) -> str:
    lines = ["| model | | dense accuracy | crossbar area (cells) | wires | routing area | accuracy |",
             "|---|---|---|---|---|---|---|"]
    for model, (ds, cell, route) in PAPER.items():
        dense = (L.head("train_dense", model, False) or {}).get("metrics", {})
        r = (L.head("rank_clipping", model, False) or {}).get("metrics", {})
        g = (L.head("group_deletion", model, False) or {}).get("metrics", {})
        routed = (L.head("routing", model, False) or {}).get("metrics", {})
        lines.append(f"| {model} / {ds} | paper | - | {cell} % | - | {route} % | no loss |")
        lines.append(f"| | this project | {pct(dense.get('test_accuracy'))} | "
                     f"{pct(g.get('cell_area_ratio', r.get('cell_area_ratio')))} | "
                     f"{pct(g.get('wire_ratio'))} | {pct(routed.get('routing_area_ratio'))} | "
                     f"{pct(g.get('test_accuracy', r.get('test_accuracy')))} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--readme", action="store_true",
                      help="rewrite the tables between the ledger markers of README.md and "
                           "docs/routing.md")
    what.add_argument("--check", action="store_true",
                      help="exit 1 if those tables differ from the ledgers'")
    args = ap.parse_args()
    L = Ledgers()
    if not (args.readme or args.check):
        print(paper_table(L))
        return
    stale = []
    texts = {path: path.read_text() for path in DOCS}
    news = {path: with_tables(texts[path], make(L)) for path, make in DOCS.items()}  # all first
    for path, text in texts.items():
        new = news[path]
        if args.readme:
            if new != text:
                from common.io import write_text

                write_text(path, new)
            print(f"{path}: tables {'rewritten' if new != text else 'already current'}")
            continue
        old, fresh = readme_blocks(text), readme_blocks(new)
        for k in (k for k in fresh if old[k] != fresh[k]):
            stale.append(k)
            print(f"{path.name} table {k!r} differs from the ledgers:")
            for a, b in zip(old[k].splitlines(), fresh[k].splitlines(), strict=False):
                if a != b:
                    print(f"  file:    {a}\n  ledgers: {b}")
    if stale:
        print("run: python benchmarks/summary.py --readme")
        raise SystemExit(1)
    if args.check:
        print("the tables match the ledgers")


if __name__ == "__main__":
    from benchmarks.guard import guarded

    guarded(main)
