"""Rank clipping against the dense baseline (issue 4 acceptance).

    python benchmarks/rank_clipping.py --model lenet --method plain
    python benchmarks/rank_clipping.py --model lenet --method nuclear

Starts from the dense checkpoint of benchmarks/train_dense.py (runs/bench/<model>), runs the clip
stage with the recipe below (a run lives in runs/bench/<model>-clip-<method>, resumable), then
prints and records: cell_area_ratio, test accuracy beside the dense baseline's, ranks,
crossbar_area_ratio at 32x32 / 64x64 / 128x128, and the epoch time of clipped training beside
one epoch of dense training timed in the same run. Results merge into
benchmarks/results/rank_clipping.json under "<model>" (the method named by --record-as, default
the first run) and "<model>_methods".
"""

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks.guard import flag_errors, guarded  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from common.errors import ConfigError  # noqa: E402
from common.io import update_json  # noqa: E402
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


def main() -> None:
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
    ap.add_argument("--tag", default="", help="suffix for the run's name and results key")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", default="runs/bench")
    ap.add_argument("--record-as-main", action="store_true",
                    help="also record this run as the model's headline figure")
    ap.add_argument("--select", metavar="TAG", default=None,
                    help="only make the recorded run TAG (e.g. plain-tol0.05) the headline")
    args = ap.parse_args()
    path = Path(__file__).parent / "results" / "rank_clipping.json"
    if args.select:
        def select(allres):
            runs = allres.get(f"{args.model}_methods", {})
            if args.select not in runs:
                raise ConfigError(f"no {args.model} run tagged {args.select!r} in {path}; "
                                 f"recorded: {', '.join(runs) or 'none'}.")
            return {**allres, args.model: {**runs[args.select],
                                           "selected_by": "python " + " ".join(sys.argv)}}

        update_json(path, select)
        return
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
    baseline = json.loads((dense_dir / "metrics.json").read_text())
    tag = f"{args.method}-tol{ccfg.tolerance:g}{args.tag}"
    out = Path(args.runs) / f"{args.model}-clip-{tag}"
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
    figures = {
        "method": args.method, "reg_strength": strength,
        "cell_area_ratio": per_size["64x64"]["cell_area_ratio"],
        "paper_cell_area_ratio": {"lenet": 0.1362, "convnet": 0.5181}[args.model],
        "test_accuracy": res.test_accuracy,
        "baseline_test_accuracy": baseline["test_accuracy"],
        "accuracy_drop_points": round(100 * (baseline["test_accuracy"] - res.test_accuracy), 3),
        "ranks": ranks["ranks"], "full_ranks": ranks["full_ranks"],
        "crossbars": per_size,
        "epoch_seconds_clipped": [h["seconds"] for h in res.history],
        "epoch_seconds_dense_same_run": round(dense_s, 2),
        "recipe": {"train": train_cfg.__dict__, "clip": ccfg.__dict__,
                   "distill": distill.__dict__ if distill else None},
        "checkpoint": str(out / "checkpoint.pt"),
        "command": "python " + " ".join(sys.argv),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "machine": machine(),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps({k: figures[k] for k in ("method", "cell_area_ratio", "test_accuracy",
                                              "baseline_test_accuracy", "ranks")}, indent=1))
    print(f"{'':10s}{'dense':>10s}{'clipped':>10s}")
    print(f"{'accuracy':10s}{baseline['test_accuracy']:10.4f}{res.test_accuracy:10.4f}")
    print(f"{'cells':10s}{1:10.2%}{figures['cell_area_ratio']:10.2%}")
    for size, f in per_size.items():
        print(f"{size:10s}{f['dense_crossbars']:10d}{f['n_crossbars']:10d}  crossbars")
    print(f"{'epoch s':10s}{dense_s:10.1f}{figures['epoch_seconds_clipped'][-1]:10.1f}")
    def record(allres):
        allres.setdefault(f"{args.model}_methods", {})[tag] = figures
        if args.record_as_main or args.model not in allres:
            allres[args.model] = figures
        return allres

    update_json(path, record)


if __name__ == "__main__":
    guarded(main)
