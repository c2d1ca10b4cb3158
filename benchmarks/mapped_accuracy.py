"""The mapped network against PyTorch on a whole test set (issue 3 acceptance).

    python benchmarks/mapped_accuracy.py --model lenet --checkpoint runs/bench/lenet/checkpoint.pt

Evaluates the model in PyTorch and crossbar by crossbar (mapping.MappedNetwork.forward) on the
full test split; prints both accuracies and the largest absolute output difference, and records
a row (default name: the checkpoint's run folder, -mapped-, the crossbar) in the ledger
benchmarks/results/mapped_accuracy.json.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from group_scissor.data import load_dataset  # noqa: E402
from mapping import CrossbarSpec, map_model  # noqa: E402
from models.checkpoint import load_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--crossbar", default="64x64")
    ap.add_argument("--encoding", default="differential")
    ap.add_argument("--data-dir", default=None)
    ledger.add_arguments(ap, "RUNFOLDER-mapped-CROSSBAR-ENCODING, e.g. "
                         "lenet-mapped-64x64-differential for runs/bench/lenet/checkpoint.pt")
    args = ap.parse_args()
    name = (args.name or f"{Path(args.checkpoint).parent.name or args.model}-mapped-"
            f"{args.crossbar}-{args.encoding}")
    ledger.refuse_existing("mapped_accuracy", name, args.replace)
    info = models.info(args.model)
    model = load_model(args.model, args.checkpoint).eval()
    data = load_dataset(info.default_dataset, args.data_dir)
    mapped = map_model(model, CrossbarSpec.parse(args.crossbar, encoding=args.encoding),
                       info.input_shape)
    x, y = data.test.x, data.test.y
    correct_torch = correct_xbar = 0
    max_err = 0.0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            ref = model(x[i:i + 1000])
            out = mapped.forward(x[i:i + 1000])
            max_err = max(max_err, (out.double() - ref.double()).abs().max().item())
            correct_torch += (ref.argmax(1) == y[i:i + 1000]).sum().item()
            correct_xbar += (out.argmax(1) == y[i:i + 1000]).sum().item()
    config = {"model": args.model, "checkpoint": args.checkpoint,
              "crossbar": f"{args.crossbar} {args.encoding}"}
    metrics = {"test_samples": len(y), "pytorch_accuracy": correct_torch / len(y),
               "crossbar_accuracy": correct_xbar / len(y), "max_abs_error": max_err,
               "n_crossbars": mapped.n_crossbars}
    print(json.dumps({"name": name, **config, **metrics}, indent=1))
    ledger.record("mapped_accuracy", ledger.make_row(name, args.model, config, metrics), args,
                  args.model)


if __name__ == "__main__":
    guarded(main)
