"""One-shot SVD truncation of a dense net, no training: the baseline rank clipping must beat.

    python benchmarks/svd_truncation.py --model convnet
    python benchmarks/svd_truncation.py --model lenet

Takes the dense checkpoint of benchmarks/train_dense.py (runs/bench/<model>), factorizes the
layers rank clipping would (the model's registered low-rank layers), truncates every pair at
each tolerance with the same rule as a clip (smallest rank keeping all but ``tolerance`` of the
weight energy), merges back pairs that cost more cells than the dense layer (as the clip stage
does), and records ranks, cell_area_ratio (64x64) and test accuracy beside the dense model's.
It shows how much of the cell saving is free and how much must be trained for.
Records a row (default name <model>-svd-truncation) in the ledger
benchmarks/results/svd_truncation.json.
"""

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from group_scissor.compress import merge_unprofitable  # noqa: E402
from group_scissor.data import load_dataset  # noqa: E402
from group_scissor.rank_clip import clip_pair  # noqa: E402
from group_scissor.train import evaluate  # noqa: E402
from mapping.network import map_model  # noqa: E402
from mapping.spec import CrossbarSpec  # noqa: E402
from models.checkpoint import load_model  # noqa: E402
from models.lowrank import low_rank_layers, to_low_rank  # noqa: E402

TOLERANCES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("lenet", "convnet"), required=True)
    ap.add_argument("--tolerances", type=float, nargs="+", default=list(TOLERANCES))
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--runs", default="runs/bench")
    ledger.add_arguments(ap, "MODEL-svd-truncation")
    args = ap.parse_args()
    row_name = args.name or f"{args.model}-svd-truncation"
    ledger.refuse_existing("svd_truncation", row_name, args.replace)
    info = models.info(args.model)
    dense_ckpt = Path(args.runs) / args.model / "checkpoint.pt"
    if not dense_ckpt.is_file():
        ap.error(f"no dense checkpoint at {dense_ckpt}; run benchmarks/train_dense.py "
                 f"--model {args.model} first")
    data = load_dataset(info.default_dataset, args.data_dir)
    dense = load_model(args.model, dense_ckpt)
    spec = CrossbarSpec.parse("64x64")
    dense_acc = evaluate(dense, data.test.x, data.test.y)[1]
    rows = []
    print(f"{'tolerance':>10s}{'ranks':>18s}{'cells':>10s}{'accuracy':>10s}   dense {dense_acc:.4f}")
    for tol in args.tolerances:
        m = to_low_rank(copy.deepcopy(dense), list(info.low_rank_layers) or None)
        ranks = {name: clip_pair(pair, tol)[1] for name, pair in low_rank_layers(m).items()}
        merged = merge_unprofitable(m)  # as the clip stage does: dense where a pair costs more
        cells = map_model(m, spec, info.input_shape).cell_area_ratio
        acc = evaluate(m, data.test.x, data.test.y)[1]
        rows.append({"tolerance": tol, "ranks": ranks, "merged_back_to_dense": merged,
                     "cell_area_ratio": round(cells, 4), "test_accuracy": acc})
        print(f"{tol:10g}{str(list(ranks.values())):>18s}{cells:10.2%}{acc:10.4f}")
    config = {"model": args.model, "checkpoint": str(dense_ckpt), "crossbar": str(spec),
              "tolerances": list(args.tolerances)}
    metrics = {"baseline_test_accuracy": dense_acc, "truncations": rows}
    ledger.record("svd_truncation", ledger.make_row(row_name, args.model, config, metrics), args,
                  args.model)


if __name__ == "__main__":
    guarded(main)
