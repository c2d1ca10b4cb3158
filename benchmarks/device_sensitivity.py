"""Which matrices a device effect hurts: the effect on one matrix at a time, the others ideal.

    python benchmarks/device_sensitivity.py --only convnet --threads 2
    python benchmarks/device_sensitivity.py --only lenet --test-samples 1000   # a quick look

device_accuracy.py shows that Group Scissor makes the chip less robust (docs/device-effects.md).
This says where: for each shipped network (``<model>:dense`` and ``<model>:group-scissor``,
64x64 differential) and each of two effects, programming variation 0.2 (``--seeds`` chips,
default 2) and a 4-bit ADC (one chip: no random effect), every matrix in turn is the only one
with the effect (``MappedNetwork.simulator(..., matrices=[name])``); the test-set accuracy is
set against the ideal chip's. A rank-clipped layer is two matrices (``conv2.U``, inputs x rank, feeds
``conv2.V``, rank x outputs).

Each (network, effect) is a row of the ledger benchmarks/results/device_sensitivity.json,
named ``<model>-<variant>-<effect>-per-matrix``, its metrics one entry per matrix: shape
(rows, cols), tiles, accuracies, mean and std, and the loss against the ideal chip in points.
A row that exists is refused before anything runs (``--replace``); ``--test-samples`` records
nothing.
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
from group_scissor.evaluate import accuracy, chip_accuracies, summary  # noqa: E402
from mapping import CrossbarSpec, DeviceModel, map_model  # noqa: E402

EXPERIMENT = "device_sensitivity"
VARIANTS = ("dense", "group-scissor")
CALIBRATION_SAMPLES = 256


def effects(variation: float, adc_bits: int) -> list[tuple[str, DeviceModel]]:
    return [(f"var{variation:g}", DeviceModel(variation_sigma=variation)),
            (f"adc{adc_bits}", DeviceModel(adc_bits=adc_bits))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["lenet", "convnet"], choices=["lenet", "convnet"])
    ap.add_argument("--seeds", type=int, default=2, help="chips per matrix under variation")
    ap.add_argument("--variation", type=float, default=0.2)
    ap.add_argument("--adc-bits", type=int, default=4)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--test-samples", type=int, default=None,
                    help="only the first N test images: a quick look, recorded nowhere")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--replace", action="store_true",
                    help="replace the ledger's rows of the same names (default: refuse to run)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from group_scissor.data import load_dataset
    from models import pretrained
    from models.checkpoint import load_model

    nets = [(m, v) for m in args.only for v in VARIANTS if f"{m}:{v}" in pretrained.available()]
    if not nets:
        raise ledger.ConfigError(f"no shipped checkpoints of {', '.join(args.only)} "
                                 "(benchmarks/ship_checkpoints.py writes them)")
    record = args.test_samples is None
    sweep = effects(args.variation, args.adc_bits)
    if record:
        for m, v in nets:
            for suffix, _ in sweep:
                ledger.refuse_existing(EXPERIMENT, f"{m}-{v}-{suffix}-per-matrix", args.replace)
    spec = CrossbarSpec(64, 64, "differential")
    rows, start = [], time.perf_counter()
    for model, variant in nets:
        info = models.info(model)
        data = load_dataset(info.default_dataset, args.data_dir)
        mapped = map_model(load_model(model, f"{model}:{variant}").eval(), spec, info.input_shape)
        x, y = data.test.x[:args.test_samples], data.test.y[:args.test_samples]
        calib = data.train.x[:CALIBRATION_SAMPLES]
        ideal = accuracy(mapped.simulator(), x, y)
        print(f"{model}:{variant}: {mapped.n_crossbars} crossbars, ideal chip {ideal:.4f}", flush=True)
        for suffix, device in sweep:
            t, per = time.perf_counter(), []
            for mm in mapped.matrices:
                accs, det = chip_accuracies(mapped, device, args.seeds, x, y, calib,
                                            torch.float32, matrices=[mm.name])
                a = summary(accs)
                per.append({"matrix": mm.name, "shape": list(mm.shape),
                            "tiles": int(mm.built.sum()), "accuracies": accs, "accuracy": a,
                            "deterministic": det, "loss_points": 100 * (ideal - a["mean"])})
                print(f"  {suffix:8s} {mm.name:12s} {str(tuple(mm.shape)):12s} "
                      f"{a['mean']:.4f} +- {a['std']:.4f}  loss {per[-1]['loss_points']:6.2f} pt",
                      flush=True)
            rows.append((model, variant, suffix, device, per, ideal, len(y),
                         time.perf_counter() - t))
    print(f"({len(y)} test images per network, {time.perf_counter() - start:.0f} s in all)")
    if not record:
        print("not recorded: --test-samples evaluates part of the test set")
        return
    for model, variant, suffix, device, per, ideal, n, seconds in rows:
        config = {"model": model, "checkpoint": f"{model}:{variant}", "crossbar": str(spec),
                  "device": device.to_dict(), "seeds": args.seeds,
                  "calibration": f"first {CALIBRATION_SAMPLES} training images",
                  "compute_dtype": "float32", "effect_on": "one matrix at a time"}
        metrics = {"matrices": per, "ideal_accuracy": ideal, "test_samples": n,
                   "seconds": seconds}
        ledger.record(EXPERIMENT, ledger.make_row(f"{model}-{variant}-{suffix}-per-matrix",
                                                  model, config, metrics),
                      argparse.Namespace(replace=args.replace, headline=False),
                      f"{model}-{variant}" if suffix.startswith("var") else None)


if __name__ == "__main__":
    guarded(main)
