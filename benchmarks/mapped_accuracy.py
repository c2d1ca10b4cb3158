"""The mapped network against PyTorch on a whole test set (issue 3 acceptance).

    python benchmarks/mapped_accuracy.py --model lenet --checkpoint runs/bench/lenet/checkpoint.pt

Evaluates the model in PyTorch and crossbar by crossbar (mapping.MappedNetwork.forward) on the
full test split; prints both accuracies and the largest absolute output difference, and writes
benchmarks/results/mapped_accuracy.json (merged by model).
"""

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from common.io import update_json  # noqa: E402
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
    args = ap.parse_args()
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
    figures = {"model": args.model, "checkpoint": args.checkpoint,
               "crossbar": f"{args.crossbar} {args.encoding}", "test_samples": len(y),
               "pytorch_accuracy": correct_torch / len(y),
               "crossbar_accuracy": correct_xbar / len(y), "max_abs_error": max_err,
               "n_crossbars": mapped.n_crossbars,
               "command": "python " + " ".join(sys.argv),
               "date": dt.datetime.now().isoformat(timespec="seconds")}
    print(json.dumps(figures, indent=1))
    path = Path(__file__).parent / "results" / "mapped_accuracy.json"
    update_json(path, lambda allres: {**allres, args.model: figures})


if __name__ == "__main__":
    guarded(main)
