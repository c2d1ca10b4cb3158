"""Group connection deletion against the dense baseline and against magnitude pruning (issue 5).

    python benchmarks/group_deletion.py --model lenet \
        --checkpoint runs/bench/lenet-clip-plain/checkpoint.pt \
        --baseline-metrics runs/bench/lenet/metrics.json --lambda 2e-3 --epochs 10 --lr 0.01

Runs the prune stage on a rank-clipped checkpoint (the run lives in --runs/<model>-prune,
resumable), then records: total wires vs the dense baseline (wire_ratio), nets, crossbars,
cell_area_ratio, test accuracy beside the dense run's (--baseline-metrics), and the baseline a
user would try first: unstructured magnitude pruning (Han et al. 2015) of the same clipped
model at the same sparsity, matrix by matrix (each mapped matrix gets as many zeros as group
deletion left in it, on its smallest |w|), mapped on the same crossbars, evaluated without and
with a masked fine-tune of --magnitude-fine-tune-epochs. It also times one training epoch of
the clipped model on --overhead-samples training samples without a penalty, with the prox and
with the subgradient form (same trainer; wall and CPU time of the training steps), to check
the penalty's overhead (<= 15 %).
Records a row in the ledger benchmarks/results/group_deletion.json, named after the settings
that tell runs apart (row_name; --name overrides); a model's first row is its headline,
--headline makes this one it.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import flag_errors, guarded  # noqa: E402
from group_scissor.data import Dataset, Split, load_dataset  # noqa: E402
from group_scissor.distill import DistillConfig, distillation  # noqa: E402
from group_scissor.group_lasso import GroupLasso, GroupLassoConfig, KeepMasks, grouped_matrices  # noqa: E402
from group_scissor.prune import (  # noqa: E402
    PruneConfig,
    parse_layer_lambda,  # noqa: E402
    prune_stage,
    wire_report,
)
from group_scissor.train import Callback, TrainConfig, Trainer, evaluate  # noqa: E402
from mapping.network import map_model  # noqa: E402
from mapping.spec import CrossbarSpec  # noqa: E402
from models.checkpoint import load_model  # noqa: E402
from models.masks import set_mask  # noqa: E402


def zeros_per_matrix(model, spec) -> dict[str, tuple[int, int]]:
    """matrix name -> (zero weights, weights), over every matrix the mapper maps."""
    return {g.name: (int((g.matrix == 0).sum()), g.matrix.numel())
            for g in grouped_matrices(model, spec.rows, spec.lcols, GroupLassoConfig())}


@torch.no_grad()
def magnitude_prune(model, spec, zeros: dict[str, tuple[int, int]]) -> None:
    """Mask the k smallest-|w| weights of each matrix, k = zeros[name][0] (Han et al. 2015)."""
    for g in grouped_matrices(model, spec.rows, spec.lcols, GroupLassoConfig()):
        k = zeros[g.name][0]
        if k == 0:
            continue
        w = g.matrix  # (N, M)
        keep = torch.ones(w.numel(), dtype=torch.bool)
        keep[w.abs().flatten().argsort()[:k]] = False
        set_mask(g.module, keep.reshape(w.shape).T)


class StepClock(Callback):
    """Wall and process-CPU seconds from the first step of the epoch to the end of its last
    after_step (listed last, so it includes the other callbacks' work; no evaluation)."""

    def on_epoch_begin(self, trainer):
        self.start = (time.perf_counter(), time.process_time())

    def after_step(self, trainer):
        self.end = (time.perf_counter(), time.process_time())


def penalty_overhead(args, data, spec, lam: float) -> dict:
    """One training epoch of the clipped model on --overhead-samples samples: plain, prox and
    subgradient (no deletion inside), interleaved, --overhead-repeats times; min of each."""
    n = min(args.overhead_samples, len(data.train))
    sub = Dataset(data.name, Split(data.train.x[:n], data.train.y[:n], data.train.augment),
                  Split(data.test.x[:256], data.test.y[:256]), data.num_classes)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=args.lr, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.overhead_threads or threads)
    runs = {k: [] for k in ("plain", "prox", "subgradient")}
    for _ in range(args.overhead_repeats):
        for kind, times in runs.items():
            clock = StepClock()
            cbs = [] if kind == "plain" else [GroupLasso(
                GroupLassoConfig(lambda_=lam, method=kind), spec.rows, spec.lcols,
                delete_step=10**12)]
            Trainer(load_model(args.model, args.checkpoint), sub, cfg, None, cbs + [clock],
                    progress=False).fit()
            times.append([e - s for s, e in zip(clock.start, clock.end, strict=True)])
    torch.set_num_threads(threads)
    wall = {k: min(t[0] for t in v) for k, v in runs.items()}
    cpu = {k: min(t[1] for t in v) for k, v in runs.items()}
    return {"samples": n, "steps": math.ceil(n / args.batch_size),
            "torch_threads": args.overhead_threads or threads,
            "wall_seconds": {k: round(v, 3) for k, v in wall.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()},
            "prox_overhead": round(wall["prox"] / wall["plain"] - 1, 4),
            "subgradient_overhead": round(wall["subgradient"] / wall["plain"] - 1, 4),
            "prox_overhead_cpu": round(cpu["prox"] / cpu["plain"] - 1, 4),
            "subgradient_overhead_cpu": round(cpu["subgradient"] / cpu["plain"] - 1, 4)}


def totals(report: dict) -> dict:
    return {k: report[k] for k in ("wire_ratio", "net_ratio", "crossbar_area_ratio",
                                   "cell_area_ratio")} | {"wires": report["total"]}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("lenet", "convnet"), required=True)
    ap.add_argument("--checkpoint", required=True, help="the rank-clipped checkpoint.pt")
    ap.add_argument("--baseline-metrics", default=None, help="metrics.json of the dense run")
    ap.add_argument("--dataset", default=None, help="default: the model's (mnist / cifar10)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--lambda", dest="lam", type=float, default=2e-3)
    ap.add_argument("--layer-lambda", default=None,
                    help="per-matrix or per-layer strengths overriding --lambda, "
                         "e.g. 'fc1=1e-2,conv1.U=0'")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--fine-tune-epochs", type=float, default=2.0)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--fine-tune-lr", type=float, default=None,
                    help="restart the learning rate from this after deletion (default: the "
                         "schedule runs on); magnitude pruning then fine-tunes from it too")
    ap.add_argument("--fine-tune-warmup-epochs", type=float, default=0.0,
                    help="warm up to --fine-tune-lr over this many epochs (the magnitude "
                         "baseline's fine-tune too)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="batch order and augmentation of the "
                    "prune run and of the magnitude baseline's fine-tune")
    ap.add_argument("--threshold", type=float, default=0.05, help="relative deletion threshold")
    ap.add_argument("--subgradient", action="store_true", help="default: prox")
    ap.add_argument("--sqrt-size-weighting", action="store_true")
    ap.add_argument("--rebalance", action="store_true",
                    help="at deletion, equalize each low-rank pair's factor norms (exact)")
    ap.add_argument("--crossbar", default="64x64")
    ap.add_argument("--encoding", default="differential")
    ap.add_argument("--magnitude-fine-tune-epochs", type=int, default=None,
                    help="default: round(--fine-tune-epochs); 0: report without fine-tune")
    ap.add_argument("--overhead-samples", type=int, default=6400, help="0: skip the timing")
    ap.add_argument("--overhead-repeats", type=int, default=3)
    ap.add_argument("--overhead-threads", type=int, default=1,
                    help="torch threads while timing (0: as the run); 1 is least disturbed by "
                         "other jobs on the machine")
    ap.add_argument("--runs", default="runs/bench")
    ap.add_argument("--teacher", default=None, help="distil from this checkpoint (e.g. the dense "
                    "baseline's); the magnitude baseline's fine-tune distils from it too")
    ap.add_argument("--distill-weight", type=float, default=0.9)
    ap.add_argument("--distill-temperature", type=float, default=4.0)
    ap.add_argument("--fresh", action="store_true", help="start the prune run over (default: "
                    "resume an unfinished run with the same settings)")
    ledger.add_arguments(ap, "row_name(): the model, lambda, epochs, the settings that differ "
                         "from the defaults, and the clipped checkpoint's run folder")
    return ap


def row_name(args, lam: float | dict) -> str:
    """A readable name that tells this run from the others: model, lambda (per-matrix values in
    order, the '*' default left out when 0), epochs and fine-tune epochs, the settings that
    differ from the defaults, then the clipped net it starts from (its run folder, without the
    MODEL-clip- prefix), e.g. lenet-deletion-l1.3e-2-ep14-ft5-kd-from-nuclear-tol0.05-kd."""
    if isinstance(lam, dict):
        vals = [ledger.sci(v) for k, v in lam.items() if k != "*" or v != 0]
        lam_label = ",".join(vals)
    else:
        lam_label = ledger.sci(lam)
    parts = [args.model, "deletion", f"l{lam_label}", f"ep{args.epochs}",
             f"ft{args.fine_tune_epochs:g}"]
    if args.fine_tune_lr is not None:
        parts.append(f"ftlr{args.fine_tune_lr:g}")
    if args.fine_tune_warmup_epochs:
        parts.append(f"warmup{args.fine_tune_warmup_epochs:g}")
    if args.lr != 0.01:
        parts.append(f"lr{args.lr:g}")
    if args.threshold != 0.05:
        parts.append(f"th{args.threshold:g}")
    if args.subgradient:
        parts.append("subgradient")
    if args.sqrt_size_weighting:
        parts.append("sqrt")
    if args.rebalance:
        parts.append("rebalance")
    if args.teacher:
        parts.append("kd" if args.distill_weight == 0.9 and args.distill_temperature == 4.0
                     else f"kd{args.distill_weight:g}t{args.distill_temperature:g}")
    if args.seed:
        parts.append(f"s{args.seed}")
    if (args.crossbar, args.encoding) != ("64x64", "differential"):
        parts.append(f"{args.crossbar}-{args.encoding}")
    clip = Path(args.checkpoint).parent.name
    clip = clip.removeprefix(f"{args.model}-clip-")
    return "-".join(parts + ["from", clip or "checkpoint"])


def main() -> None:
    ap = parser()
    args = ap.parse_args()
    start = time.perf_counter()
    dataset = args.dataset or models.info(args.model).default_dataset
    spec = CrossbarSpec.parse(args.crossbar, encoding=args.encoding)
    with flag_errors(ap):
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          seed=args.seed)
        lam = args.lam
        if args.layer_lambda:
            lam = {"*": args.lam, **parse_layer_lambda(args.layer_lambda)}
        pcfg = PruneConfig(lambda_=lam, method="subgradient" if args.subgradient else "prox",
                           threshold=args.threshold, sqrt_size_weighting=args.sqrt_size_weighting,
                           fine_tune_epochs=args.fine_tune_epochs, fine_tune_lr=args.fine_tune_lr,
                           fine_tune_warmup_epochs=args.fine_tune_warmup_epochs,
                           rebalance=args.rebalance)
        distill = (DistillConfig(args.teacher, args.distill_temperature, args.distill_weight)
                   if args.teacher else None)
        mag_ft = (round(args.fine_tune_epochs) if args.magnitude_fine_tune_epochs is None
                  else args.magnitude_fine_tune_epochs)
        if args.fine_tune_warmup_epochs and 0 < mag_ft <= args.fine_tune_warmup_epochs:
            raise ValueError("--fine-tune-warmup-epochs must be shorter than "
                             "--magnitude-fine-tune-epochs (the baseline warms up too)")
    name = args.name or row_name(args, lam)
    ledger.refuse_existing("group_deletion", name, args.replace)
    out = Path(args.runs) / f"{args.model}-prune"
    resume = (out / "resume.pt").is_file() and not args.fresh
    res = prune_stage(args.model, dataset, args.data_dir, cfg, pcfg, out,
                      checkpoint=args.checkpoint, resume=resume, force=not resume,
                      progress=False, crossbar=args.crossbar, encoding=args.encoding,
                      distill=distill)
    wires = res.extra["wires"]
    data = load_dataset(dataset, args.data_dir)
    shape = models.info(args.model).input_shape

    clipped = load_model(args.model, args.checkpoint)
    clipped_acc = evaluate(clipped, data.test.x, data.test.y)[1]
    zeros = zeros_per_matrix(res.model, spec)
    magnitude_prune(clipped, spec, zeros)
    mag = totals(wire_report(map_model(clipped, spec, shape)))
    mag["test_accuracy_no_fine_tune"] = evaluate(clipped, data.test.x, data.test.y)[1]
    ft = mag_ft
    ft_lr = args.fine_tune_lr or args.lr * 0.1
    mag["test_accuracy_fine_tuned"] = mag["wires_after_fine_tune"] = None
    if ft > 0:  # masked fine-tune, cosine from the prune run's fine-tune lr (default lr/10)
        fcfg = TrainConfig(epochs=ft, batch_size=args.batch_size, lr=ft_lr, seed=args.seed,
                           warmup_epochs=args.fine_tune_warmup_epochs)
        cbs = [KeepMasks()] + ([distillation(distill, args.model)] if distill else [])
        mag["test_accuracy_fine_tuned"] = Trainer(clipped, data, fcfg, None, cbs,
                                                  progress=False).fit().test_accuracy
        mag["wires_after_fine_tune"] = map_model(clipped, spec, shape).total_wires
    n_zero, n_all = (sum(v[i] for v in zeros.values()) for i in (0, 1))
    baseline = (json.loads(Path(args.baseline_metrics).read_text())
                if args.baseline_metrics else {})
    config = {
        "model": args.model, "dataset": data.name, "crossbar": str(spec),
        "checkpoint": args.checkpoint, "baseline_metrics": args.baseline_metrics,
        "train": cfg.__dict__, "prune": pcfg.__dict__,
        "distill": distill.__dict__ if distill else None,
        "magnitude": {"fine_tune_epochs": ft, "fine_tune_lr": ft_lr if ft else None,
                      "fine_tune_warmup_epochs": args.fine_tune_warmup_epochs if ft else None},
        "overhead": ({"samples": args.overhead_samples, "repeats": args.overhead_repeats,
                      "threads": args.overhead_threads} if args.overhead_samples > 0 else None),
    }
    metrics = {
        **totals(wires), "dense_baseline_wires": wires["dense_baseline"],
        "clipped_wires": wires["before"],
        "test_accuracy": res.test_accuracy,
        "baseline_test_accuracy": baseline.get("test_accuracy"),
        "clipped_test_accuracy": clipped_acc,
        "weight_sparsity": n_zero / n_all, "zero_weights": n_zero, "weights": n_all,
        "magnitude_pruning": mag,
        "penalty_overhead": (penalty_overhead(args, data, spec, args.lam)
                             if args.overhead_samples > 0 else None),
        "epoch_seconds": [h["seconds"] for h in res.history],
        "seconds": round(time.perf_counter() - start, 1),
    }
    d, t, c, m = (metrics["dense_baseline_wires"], metrics["wires"], metrics["clipped_wires"],
                  mag["wires"])
    acc = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    print(f"{'':12s}{'dense':>10s}{'clipped':>10s}{'group del':>10s}{'magnitude':>10s}")
    for k in ("wires", "nets", "crossbars", "cells"):
        print(f"{k:12s}{d[k]:10d}{c[k]:10d}{t[k]:10d}{m[k]:10d}")
    print(f"{'wire ratio':12s}{1:10.2%}{c['wires'] / d['wires']:10.2%}"
          f"{metrics['wire_ratio']:10.2%}{mag['wire_ratio']:10.2%}")
    print(f"{'accuracy':12s}{acc(metrics['baseline_test_accuracy']):>10s}{acc(clipped_acc):>10s}"
          f"{acc(res.test_accuracy):>10s}{acc(mag.get('test_accuracy_fine_tuned')):>10s}"
          f"  (magnitude without fine-tune {mag['test_accuracy_no_fine_tune']:.4f})")
    print(f"weight sparsity {metrics['weight_sparsity']:.2%}, cell_area_ratio "
          f"{metrics['cell_area_ratio']:.2%}")
    print(f"penalty overhead per epoch: {json.dumps(metrics['penalty_overhead'])}")
    row = ledger.make_row(name, args.model, config, metrics, outputs={"run": str(out)})
    ledger.record("group_deletion", row, args, args.model)


if __name__ == "__main__":
    guarded(main)
