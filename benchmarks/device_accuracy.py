"""Accuracy under device effects (hardware-model section 8): dense against compressed networks.

    python benchmarks/device_accuracy.py                        # the shipped LeNets (and ConvNets)
    python benchmarks/device_accuracy.py --plot runs/device_accuracy.png
    python benchmarks/device_accuracy.py --only convnet --plot runs/device_accuracy_convnet.png
    python benchmarks/device_accuracy.py --from-ledger --plot docs/device_accuracy.png  # no run
    python benchmarks/device_accuracy.py --network dense=runs/bench/lenet/checkpoint.pt \\
        --network group-scissor=runs/x/checkpoint.pt --test-samples 1000     # a quick look

Networks: the shipped checkpoints ``lenet:dense``, ``lenet:group-scissor``, ``convnet:dense``
and ``convnet:group-scissor`` (``--only`` picks the models; ``--network clipped=convnet:clipped``
adds the rank-clipped net), each mapped on 64x64 differential crossbars. On the full test set
of its data set, each is evaluated on:

- the ideal chip (exact; equal to PyTorch), beside every figure;
- ADC 4, 6 and 8 bits per bit line (ranges calibrated per bit line on the first 256 training
  images), every other effect off: no random effect, so one chip stands for every seed;
- programming variation 0.05, 0.1 and 0.2 (lognormal, multiplicative), every other effect off:
  5 chip seeds (0..4) each, mean and spread (sample std, min, max).

Each (network, setting) is a row of the ledger benchmarks/results/device_accuracy.json, named
``<model>-<variant>-<setting>`` (``lenet-group-scissor-adc6``); a row that exists is refused
before anything runs (``--replace``). Without the shipped checkpoints (models/pretrained.py)
the script says so and stops: it trains nothing. ``--test-samples`` (a quick look) records
nothing. The products run in float32 on 1 thread (``--threads``). On the full test sets (2
cores): both LeNets about 6 minutes on 1 thread, both ConvNets 34 minutes with ``--threads 2``.
``--from-ledger`` evaluates nothing and plots every recorded row (docs/device_accuracy.png).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from group_scissor.evaluate import accuracy, chip_accuracies, resolve_model, summary  # noqa: E402
from mapping import CrossbarSpec, DeviceModel, map_model  # noqa: E402

EXPERIMENT = "device_accuracy"
SHIPPED = ("lenet:dense", "lenet:group-scissor", "convnet:dense", "convnet:group-scissor")
ADC_BITS = (4, 6, 8)
VARIATIONS = (0.05, 0.1, 0.2)
CALIBRATION_SAMPLES = 256
ORDER = ("dense", "clipped", "group-scissor")
"""Variants in the plot's order (and colours): dense, rank-clipped, clipped + deleted."""


def settings(seeds: int) -> list[tuple[str, DeviceModel, str]]:
    """(row suffix, device, what it is) for every setting of the sweep."""
    out = [(f"adc{b}", DeviceModel(adc_bits=b), f"ADC {b} bits") for b in ADC_BITS]
    out += [(f"var{s:g}", DeviceModel(variation_sigma=s), f"variation {s:g}") for s in VARIATIONS]
    return out


def networks(args) -> list[tuple[str, str, str]]:
    """(model, variant, checkpoint) to evaluate: --network overrides, else the shipped ones."""
    if args.network:
        out = []
        for spec in args.network:
            variant, _, path = spec.partition("=")
            if not variant or not path:
                raise ledger.ConfigError(f"--network {spec!r}: use VARIANT=CHECKPOINT, e.g. "
                                         "dense=runs/bench/lenet/checkpoint.pt")
            out.append((resolve_model(path, args.model), variant, path))
        return out
    from models import pretrained

    shipped = pretrained.available()
    return [(name.split(":")[0], name.split(":")[1], name) for name in SHIPPED
            if name in shipped and name.split(":")[0] in args.only]


def plot(results: list[dict], path: Path) -> None:
    """Accuracy against ADC bits (left) and variation (right), one row of panels per model
    (their accuracies differ too much to share an axis), a line per variant, ideal dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from common.io import save_figure

    models_ = sorted({r["model"] for r in results})
    if not models_:
        raise ledger.ConfigError("nothing to plot: no results")
    fig, axes = plt.subplots(len(models_), 2, figsize=(10, 4 * len(models_)), squeeze=False)
    for row, model in zip(axes, models_, strict=True):
        variants = sorted({r["variant"] for r in results if r["model"] == model},
                          key=lambda v: (ORDER.index(v) if v in ORDER else len(ORDER), v))
        for i, variant in enumerate(variants):
            colour = f"C{ORDER.index(variant) if variant in ORDER else len(ORDER) + i}"
            rows = [r for r in results if (r["model"], r["variant"]) == (model, variant)]
            for ax, kind, key in ((row[0], "adc", "adc_bits"), (row[1], "var", "variation_sigma")):
                pts = sorted((r["device"][key], r["accuracy"]["mean"], r["accuracy"]["std"])
                             for r in rows if r["setting"].startswith(kind))
                if pts:
                    xs, ms, ss = zip(*pts, strict=True)
                    line = ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, color=colour,
                                       label=f"{model} {variant}")
                    ax.axhline(rows[0]["ideal_accuracy"], ls="--", lw=0.8,
                               color=line[0].get_color())
        row[0].set(xlabel="ADC bits (per bit line)", ylabel=f"{model} test accuracy",
                   xticks=list(ADC_BITS))
        row[1].set(xlabel="programming variation sigma (lognormal)")
        row[0].legend(title="dashed: ideal chip")
    fig.suptitle("Accuracy under device effects (64x64 differential; mean +- std over chips)")
    save_figure(fig, path)
    plt.close(fig)


def ledger_results() -> list[dict]:
    """The ledger's rows as results to plot (``--from-ledger``)."""
    known = [suffix for suffix, _, _ in settings(1)]
    out = []
    for r in ledger.load(EXPERIMENT)["rows"]:
        model = r["config"]["model"]
        setting = next((s for s in known if r["name"].endswith("-" + s)), None)
        if setting is None or not r["name"].startswith(model + "-"):
            raise ledger.ConfigError(f"device_accuracy row {r['name']!r} is not named "
                                     f"<model>-<variant>-<setting> with a setting of {known}")
        variant = r["name"][len(model) + 1:-len(setting) - 1]
        out.append({"model": model, "variant": variant, "setting": setting,
                    "device": r["config"]["device"], "accuracy": r["metrics"]["accuracy"],
                    "ideal_accuracy": r["metrics"]["ideal_accuracy"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", action="append", default=None, metavar="VARIANT=CHECKPOINT",
                    help="evaluate this checkpoint as VARIANT (repeatable) instead of the shipped ones")
    ap.add_argument("--model", default=None, help="model of the --network checkpoints (default: "
                    "the config.json beside each)")
    ap.add_argument("--only", nargs="+", default=["lenet", "convnet"], choices=["lenet", "convnet"],
                    help="shipped models to evaluate (default: both, those shipped)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--crossbar", default="64x64")
    ap.add_argument("--encoding", default="differential")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--test-samples", type=int, default=None,
                    help="only the first N test images: a quick look, recorded nowhere")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", type=Path, default=Path("runs/device_accuracy.png"))
    ap.add_argument("--replace", action="store_true",
                    help="replace the ledger's rows of the same names (default: refuse to run)")
    ap.add_argument("--headline", action="store_true", help="make the var0.1 rows the headlines")
    ap.add_argument("--from-ledger", action="store_true",
                    help="evaluate nothing: plot every row of the ledger to --plot")
    args = ap.parse_args()
    if args.from_ledger:
        results = ledger_results()
        plot(results, args.plot)
        print(f"plot of the ledger's {len(results)} rows: {args.plot}")
        return
    torch.set_num_threads(args.threads)
    from group_scissor.data import load_dataset
    from models.checkpoint import load_model

    nets = networks(args)
    if not nets:
        from models import pretrained

        have = ", ".join(pretrained.available()) or "none"
        print("device_accuracy: skipped. It needs trained checkpoints and this installation ships "
              f"none of the {', '.join(args.only)} ones in {', '.join(SHIPPED)} (shipped: {have}; "
              "benchmarks/ship_checkpoints.py writes them). Nothing was trained or recorded; run "
              "it again once they ship, or pass --network VARIANT=CHECKPOINT.")
        return
    record = args.test_samples is None
    sweep = settings(args.seeds)
    spec = CrossbarSpec.parse(args.crossbar, encoding=args.encoding)
    if record:
        for model, variant, _ in nets:
            for suffix, _, _ in sweep:
                ledger.refuse_existing(EXPERIMENT, f"{model}-{variant}-{suffix}", args.replace)
    results, start = [], time.perf_counter()
    for model, variant, ckpt in nets:
        info = models.info(model)
        data = load_dataset(info.default_dataset, args.data_dir)
        net = load_model(model, ckpt).eval()
        mapped = map_model(net, spec, info.input_shape)
        x, y = data.test.x[:args.test_samples], data.test.y[:args.test_samples]
        calib = data.train.x[:CALIBRATION_SAMPLES]
        t = time.perf_counter()
        ideal, torch_acc = accuracy(mapped.simulator(), x, y), accuracy(net, x, y)
        print(f"{model} {variant} ({ckpt}): {mapped.n_crossbars} crossbars; ideal chip {ideal:.4f}, "
              f"PyTorch {torch_acc:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
        for suffix, device, what in sweep:
            t = time.perf_counter()
            accs, det = chip_accuracies(mapped, device, args.seeds, x, y, calib, torch.float32)
            r = {"model": model, "variant": variant, "checkpoint": ckpt, "setting": suffix,
                 "what": what, "device": device.to_dict(), "accuracies": accs,
                 "accuracy": summary(accs), "deterministic": det, "ideal_accuracy": ideal,
                 "pytorch_accuracy": torch_acc, "n_crossbars": mapped.n_crossbars,
                 "test_samples": len(y), "seconds": time.perf_counter() - t}
            results.append(r)
            a = r["accuracy"]
            print(f"  {what:14s} {a['mean']:.4f} +- {a['std']:.4f} (min {a['min']:.4f}, max "
                  f"{a['max']:.4f}{', one chip: no random effect' if det else ''}) ideal {ideal:.4f}"
                  f"  [{r['seconds']:.0f} s]", flush=True)
    print(f"\n{'network':26s} {'setting':16s} {'mean':>7s} {'std':>7s} {'min':>7s} {'max':>7s} "
          f"{'ideal':>7s}")
    for r in results:
        a = r["accuracy"]
        print(f"{r['model'] + ' ' + r['variant']:26s} {r['what']:16s} {a['mean']:7.4f} {a['std']:7.4f} "
              f"{a['min']:7.4f} {a['max']:7.4f} {r['ideal_accuracy']:7.4f}")
    print(f"({len(y)} test images per network, {time.perf_counter() - start:.0f} s in all)")
    plot(results, args.plot)
    print(f"plot: {args.plot}")
    if not record:
        print("not recorded: --test-samples evaluates part of the test set")
        return
    for r in results:
        name = f"{r['model']}-{r['variant']}-{r['setting']}"
        config = {"model": r["model"], "checkpoint": r["checkpoint"], "crossbar": str(spec),
                  "device": r["device"], "seeds": list(range(args.seeds)),
                  "calibration": f"first {CALIBRATION_SAMPLES} training images",
                  "compute_dtype": "float32"}
        metrics = {k: r[k] for k in ("accuracies", "accuracy", "deterministic", "ideal_accuracy",
                                     "pytorch_accuracy", "n_crossbars", "test_samples", "seconds")}
        key = f"{r['model']}-{r['variant']}"
        row = ledger.make_row(name, r["model"], config, metrics)
        ledger.record(EXPERIMENT, row, argparse.Namespace(
            replace=args.replace, headline=args.headline and r["setting"] == "var0.1"),
            key if r["setting"] == "var0.1" else None)


if __name__ == "__main__":
    guarded(main)
