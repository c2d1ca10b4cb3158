"""Dense baselines: LeNet on full MNIST, ConvNet on full CIFAR-10 (issue 2 acceptance).

    python benchmarks/train_dense.py --model lenet      # ~99.1 % target
    python benchmarks/train_dense.py --model convnet    # ~81 % target

Trains with the project's trainer (resumable: the run lives in runs/bench/<model>), prints the
accuracy per epoch and the total wall time, and records a row (default name <model>-dense) in
the ledger benchmarks/results/train_dense.json. The dense model is its own baseline here; the
compression benchmarks reuse these checkpoints.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from group_scissor.stages import train_stage  # noqa: E402
from group_scissor.train import TrainConfig  # noqa: E402

RECIPES = {
    "lenet": dict(dataset="mnist", target=0.991,
                  cfg=TrainConfig(epochs=15, batch_size=64, lr=0.01, weight_decay=5e-4,
                                  schedule="cosine", warmup_epochs=1, seed=0)),
    "convnet": dict(dataset="cifar10", target=0.81,
                    cfg=TrainConfig(epochs=30, batch_size=128, lr=0.05, weight_decay=5e-4,
                                    schedule="cosine", warmup_epochs=2, seed=0)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(RECIPES), required=True)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", default="runs/bench")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    ledger.add_arguments(ap, "MODEL-dense, MODEL-dense-epEPOCHS with --epochs")
    args = ap.parse_args()
    recipe = RECIPES[args.model]
    cfg = recipe["cfg"]
    if args.epochs:
        cfg = TrainConfig(**{**cfg.__dict__, "epochs": args.epochs})
    name = args.name or f"{args.model}-dense" + (f"-ep{args.epochs}" if args.epochs else "")
    ledger.refuse_existing("train_dense", name, args.replace)
    out = Path(args.runs) / args.model
    resume = (out / "resume.pt").is_file()
    start = time.perf_counter()
    res = train_stage(args.model, recipe["dataset"], args.data_dir, cfg, out, resume=resume,
                      progress=False)
    wall = time.perf_counter() - start
    hist = res.history
    epoch_seconds = sum(h["seconds"] for h in hist)
    metrics = {
        "epochs": len(hist), "test_accuracy": res.test_accuracy,
        "target_accuracy": recipe["target"], "meets_target": res.test_accuracy >= recipe["target"],
        "train_seconds_total": round(epoch_seconds, 1),
        "seconds_per_epoch": round(epoch_seconds / len(hist), 1),
        "wall_seconds_this_invocation": round(wall, 1), "resumed": resume,
        "accuracy_per_epoch": [round(h["test_accuracy"], 4) for h in hist],
    }
    row = ledger.make_row(name, args.model, {"model": args.model, "dataset": recipe["dataset"],
                                             "train": cfg.__dict__}, metrics,
                          outputs={"checkpoint": str(out / "checkpoint.pt")})
    print(json.dumps({k: v for k, v in row.items() if k != "metrics"}
                     | {"metrics": {k: v for k, v in metrics.items() if k != "accuracy_per_epoch"}},
                     indent=1))
    ledger.record("train_dense", row, args, args.model)


if __name__ == "__main__":
    guarded(main)
