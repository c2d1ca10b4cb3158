"""Rank clipping against the dense baseline (issue 4 acceptance).

    python benchmarks/rank_clipping.py --model lenet --method plain
    python benchmarks/rank_clipping.py --model lenet --method nuclear

Starts from the dense checkpoint of benchmarks/train_dense.py (runs/bench/<model>), runs the clip
stage with the recipe below (a run lives in runs/bench/<model>-clip-<method>, resumable), then
prints and records: cell_area_ratio, test accuracy beside the dense baseline's, ranks,
crossbar_area_ratio at 32x32 / 64x64 / 128x128, and the epoch time of clipped training beside
one epoch of dense training timed in the same run. Records a row in the ledger
benchmarks/results/rank_clipping.json named as the run folder, <model>-clip-<method>-tol<T><tag>
(--name overrides); a model's first row is its headline, --headline makes this one it.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import flag_errors, guarded  # noqa: E402
from common.errors import ConfigError  # noqa: E402
from group_scissor.compress import ClipStageConfig, clip_stage  # noqa: E402
from group_scissor.data import load_dataset  # noqa: E402
from group_scissor.distill import DistillConfig  # noqa: E402
from group_scissor.train import TrainConfig, Trainer  # noqa: E402
from mapping.network import map_model  # noqa: E402
from mapping.spec import CrossbarSpec  # noqa: E402
from models.checkpoint import load_model  # noqa: E402

RECIPES = {
    "lenet": dict(
        dataset="mnist",
        train=TrainConfig(epochs=12, batch_size=64, lr=0.01, weight_decay=5e-4,
                          schedule="cosine", seed=0),
        clip=dict(tolerance=0.08, clip_interval=300, tolerance_ramp_epochs=2,
                  fine_tune_epochs=5)),
    "convnet": dict(
        dataset="cifar10",
        train=TrainConfig(epochs=20, batch_size=128, lr=0.01, weight_decay=5e-4,
                          schedule="cosine", seed=0),
        clip=dict(tolerance=0.03, clip_interval=300, tolerance_ramp_epochs=2,
                  fine_tune_epochs=8)),
}
REG_STRENGTH = {"plain": 0.0, "nuclear": 5e-4, "force": 1e-6}


def dense_epoch_seconds(model_name, data, cfg, checkpoint) -> float:
    """Time one epoch of dense training of the same model on the same data (not saved)."""
    model = load_model(model_name, checkpoint)
    one = TrainConfig(**{**cfg.__dict__, "epochs": 1})
    start = time.perf_counter()
    Trainer(model, data, one, None, progress=False).fit()
    return time.perf_counter() - start


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(RECIPES), required=True)
    ap.add_argument("--method", choices=sorted(REG_STRENGTH), default="plain")
    ap.add_argument("--reg-strength", type=float, default=None)
    ap.add_argument("--tolerance", type=float, default=None, help="override the recipe's")
    ap.add_argument("--epochs", type=int, default=None, help="override the recipe's")
    ap.add_argument("--fine-tune-epochs", type=int, default=None, help="override the recipe's")
    ap.add_argument("--lr", type=float, default=None, help="override the recipe's")
    ap.add_argument("--fine-tune-lr", type=float, default=None,
                    help="restart the learning rate from this after the last clip")
    ap.add_argument("--fine-tune-warmup-epochs", type=float, default=0.0,
                    help="warm up to --fine-tune-lr over this many epochs")
    ap.add_argument("--distill", action="store_true",
                    help="distil from the dense baseline (knowledge distillation)")
    ap.add_argument("--distill-weight", type=float, default=0.9)
    ap.add_argument("--distill-temperature", type=float, default=4.0)
    ap.add_argument("--tag", default="", help="suffix of the run folder's and the row's name "
                    "(e.g. --tag=-kd)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", default="runs/bench")
    ledger.add_arguments(ap, "the run folder's, MODEL-clip-METHOD-tolT plus --tag")
    return ap


def run_name(args) -> str:
    """The run folder's name under --runs, and the row's unless --name: the model, the method,
    the tolerance (the recipe's unless --tolerance) and --tag."""
    tol = args.tolerance or RECIPES[args.model]["clip"]["tolerance"]
    return f"{args.model}-clip-{args.method}-tol{tol:g}{args.tag}"


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    r = RECIPES[args.model]
    dense_dir = Path(args.runs) / args.model
    strength = REG_STRENGTH[args.method] if args.reg_strength is None else args.reg_strength
    clip_kw = {**r["clip"], **({"tolerance": args.tolerance} if args.tolerance else {})}
    if args.fine_tune_epochs is not None:
        clip_kw["fine_tune_epochs"] = args.fine_tune_epochs
    overrides = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None}
    clip_kw["fine_tune_lr"] = args.fine_tune_lr
    clip_kw["fine_tune_warmup_epochs"] = args.fine_tune_warmup_epochs
    with flag_errors(ap):
        train_cfg = TrainConfig(**{**r["train"].__dict__, **overrides})
        ccfg = ClipStageConfig(**clip_kw, regularizer="none" if args.method == "plain"
                               else args.method, reg_strength=strength)
        distill = (DistillConfig(str(dense_dir / "checkpoint.pt"), args.distill_temperature,
                                 args.distill_weight) if args.distill else None)
    if not (dense_dir / "metrics.json").is_file():
        raise ConfigError(f"no dense baseline in {dense_dir}: run 'python benchmarks/train_dense.py "
                         f"--model {args.model} --runs {args.runs}' first (or pass --runs).")
    name = args.name or run_name(args)
    ledger.refuse_existing("rank_clipping", name, args.replace)
    baseline = json.loads((dense_dir / "metrics.json").read_text())
    out = Path(args.runs) / run_name(args)
    res = clip_stage(args.model, r["dataset"], args.data_dir, train_cfg, ccfg, out,
                     checkpoint=dense_dir / "checkpoint.pt",
                     resume=(out / "resume.pt").is_file(), progress=False, distill=distill)
    data = load_dataset(r["dataset"], args.data_dir)
    dense_s = dense_epoch_seconds(args.model, data, train_cfg, dense_dir / "checkpoint.pt")
    shape = models.info(args.model).input_shape
    per_size = {}
    for size in ("32x32", "64x64", "128x128"):
        m = map_model(res.model, CrossbarSpec.parse(size), shape)
        per_size[size] = {"crossbar_area_ratio": round(m.crossbar_area_ratio, 4),
                          "cell_area_ratio": round(m.cell_area_ratio, 4),
                          "n_crossbars": m.n_crossbars, "dense_crossbars": m.baseline.n_crossbars}
    ranks = json.loads((out / "ranks.json").read_text())
    metrics = {
        "cell_area_ratio": per_size["64x64"]["cell_area_ratio"],
        "paper_cell_area_ratio": {"lenet": 0.1362, "convnet": 0.5181}[args.model],
        "test_accuracy": res.test_accuracy,
        "baseline_test_accuracy": baseline["test_accuracy"],
        "accuracy_drop_points": round(100 * (baseline["test_accuracy"] - res.test_accuracy), 3),
        "ranks": ranks["ranks"], "full_ranks": ranks["full_ranks"],
        "crossbars": per_size,
        "epoch_seconds_clipped": [h["seconds"] for h in res.history],
        "epoch_seconds_dense_same_run": round(dense_s, 2),
    }
    config = {"model": args.model, "method": args.method, "reg_strength": strength,
              "dense_checkpoint": str(dense_dir / "checkpoint.pt"), "train": train_cfg.__dict__,
              "clip": ccfg.__dict__, "distill": distill.__dict__ if distill else None}
    row = ledger.make_row(name, args.model, config, metrics,
                          outputs={"checkpoint": str(out / "checkpoint.pt")})
    print(json.dumps({"name": name, "method": args.method} | {k: metrics[k] for k in (
        "cell_area_ratio", "test_accuracy", "baseline_test_accuracy", "ranks")}, indent=1))
    print(f"{'':10s}{'dense':>10s}{'clipped':>10s}")
    print(f"{'accuracy':10s}{baseline['test_accuracy']:10.4f}{res.test_accuracy:10.4f}")
    print(f"{'cells':10s}{1:10.2%}{metrics['cell_area_ratio']:10.2%}")
    for size, f in per_size.items():
        print(f"{size:10s}{f['dense_crossbars']:10d}{f['n_crossbars']:10d}  crossbars")
    print(f"{'epoch s':10s}{dense_s:10.1f}{metrics['epoch_seconds_clipped'][-1]:10.1f}")
    ledger.record("rank_clipping", row, args, args.model)


if __name__ == "__main__":
    guarded(main)
