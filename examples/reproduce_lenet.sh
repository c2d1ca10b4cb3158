#!/usr/bin/env bash
# Reproduce the LeNet figures of the Group Scissor paper's table (DAC 2017: crossbar area
# 13.62 %, routing area 8.1 % of dense) with the committed benchmarks, in order:
#   1. dense LeNet on MNIST                      -> runs/bench/lenet
#   2. rank clipping + nuclear norm, tol 0.05, distilled from the dense net
#                                                -> runs/bench/lenet-clip-nuclear-tol0.05-kd
#   3. group connection deletion (64x64 groups, lambda 1.3e-2, distilled)
#                                                -> runs/bench-l13kd/lenet-prune
#   4. placement + routing of the pruned chip and its dense baseline -> runs/bench/lenet-route
# Each benchmark records its row in its ledger, benchmarks/results/{train_dense,rank_clipping,
# group_deletion}.json, replacing the committed row of the same settings (--replace: then
# `git diff benchmarks/results` shows what moved on this machine); the routing lands in
# runs/bench/lenet-route/routing.json. A summary is printed at the end.
# Expected wall time on a 2-core machine: 15-60 minutes, with the CPU (dense 15 epochs,
# clipping 12, group deletion 14, routing < 1 min; 17-90 s an epoch). Needs MNIST (MNIST/raw/*.gz) in $GROUP_SCISSOR_DATA,
# ./data or ../shared/datasets. An interrupted training step resumes where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=lenet
TOL=0.05
RUNS=runs/bench
METHOD=nuclear
LAMBDA=1.3e-2
TAG=-kd
DENSE=$RUNS/$MODEL/checkpoint.pt
CLIPPED=$RUNS/$MODEL-clip-$METHOD-tol$TOL$TAG/checkpoint.pt
PRUNED=runs/bench-l13kd/$MODEL-prune/checkpoint.pt
ROUTE=$RUNS/$MODEL-route

python benchmarks/train_dense.py --model $MODEL --replace
python benchmarks/rank_clipping.py --model $MODEL --method $METHOD --tolerance $TOL \
    --distill --tag=$TAG --replace
python benchmarks/group_deletion.py --model $MODEL --checkpoint "$CLIPPED" \
    --baseline-metrics "$RUNS/$MODEL/metrics.json" --lambda $LAMBDA --epochs 14 \
    --fine-tune-epochs 5 --lr 0.01 --teacher "$DENSE" --crossbar 64x64 --runs runs/bench-l13kd \
    --replace
group-scissor route --model $MODEL --checkpoint "$PRUNED" --crossbar 64x64 --out "$ROUTE"

python - "$MODEL" "$MODEL-clip-$METHOD-tol$TOL$TAG" "$(dirname "$PRUNED")" \
    "$ROUTE/routing.json" <<'PY'
import json, sys
sys.path.insert(0, ".")
from benchmarks import ledger
model, clip_row, prune_run, routing = sys.argv[1:]
clip = ledger.row("rank_clipping", clip_row)["metrics"]
prune = next(r for r in ledger.load("group_deletion")["rows"]
             if r["outputs"]["run"] == prune_run)["metrics"]
route = json.load(open(routing))
print(f"{model}: dense accuracy {clip['baseline_test_accuracy']:.4f}, clipped "
      f"{clip['test_accuracy']:.4f}, pruned {prune['test_accuracy']:.4f}")
print(f"cell_area_ratio (crossbar area) {clip['cell_area_ratio']:.2%} after clipping, "
      f"{prune['cell_area_ratio']:.2%} after deletion; wire_ratio {prune['wire_ratio']:.2%}")
print(f"routing_area_ratio {route['routing_area_ratio']:.4f} "
      f"({route['routing_area_ratio']:.2%} of dense; paper 8.1 %)")
PY
