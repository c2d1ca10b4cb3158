#!/usr/bin/env bash
# Reproduce the ConvNet figures of the Group Scissor paper's table (DAC 2017: crossbar area
# 51.81 %, routing area 52.06 % of dense) with the committed benchmarks, in order:
#   1. dense ConvNet on CIFAR-10                        -> runs/bench/convnet
#   2. rank clipping, the recipe's default tolerance    -> runs/bench/convnet-clip-plain-tol<T>
#   3. group connection deletion (64x64 groups)         -> runs/bench/convnet-prune
#   4. placement + routing of the pruned chip and its dense baseline -> runs/bench/convnet-route
# Figures land in benchmarks/results/{train_dense_convnet,rank_clipping,group_deletion}.json and
# runs/bench/convnet-route/routing.json; a summary is printed at the end.
# Expected wall time on a 2-core machine: several hours (dense 30 epochs ~1.5-2 h, clipping
# 20 epochs ~1-1.5 h, group deletion ~1 h, routing ~1 min). Needs CIFAR-10
# (cifar-10-batches-py/) in $GROUP_SCISSOR_DATA, ./data or ../shared/datasets. An interrupted
# training step resumes where it stopped. The group-deletion settings are the benchmark's
# defaults (lambda 2e-3, 10 epochs) with the ConvNet recipes' batch size of 128.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=convnet
RUNS=runs/bench
# the tolerance rank_clipping.py uses for ConvNet when --tolerance is not given (names the run)
TOL=$(python -c "import sys; sys.path.insert(0, 'benchmarks'); from rank_clipping import RECIPES; \
print(format(RECIPES['$MODEL']['clip']['tolerance'], 'g'))")
CLIPPED=$RUNS/$MODEL-clip-plain-tol$TOL/checkpoint.pt
PRUNED=$RUNS/$MODEL-prune/checkpoint.pt
ROUTE=$RUNS/$MODEL-route

python benchmarks/train_dense.py --model $MODEL
python benchmarks/rank_clipping.py --model $MODEL --method plain
python benchmarks/group_deletion.py --model $MODEL --checkpoint "$CLIPPED" \
    --baseline-metrics "$RUNS/$MODEL/metrics.json" --lambda 2e-3 --epochs 10 --lr 0.01 \
    --batch-size 128 --crossbar 64x64
group-scissor route --model $MODEL --checkpoint "$PRUNED" --crossbar 64x64 --out "$ROUTE"

python - "$MODEL" "plain-tol$TOL" "$ROUTE/routing.json" <<'PY'
import json, sys
model, tag, routing = sys.argv[1:]
clip = json.load(open("benchmarks/results/rank_clipping.json"))[f"{model}_methods"][tag]
prune = json.load(open("benchmarks/results/group_deletion.json"))[model]
route = json.load(open(routing))
print(f"{model}: dense accuracy {clip['baseline_test_accuracy']:.4f}, clipped "
      f"{clip['test_accuracy']:.4f}, pruned {prune['test_accuracy']:.4f}")
print(f"cell_area_ratio (crossbar area) {clip['cell_area_ratio']:.2%} after clipping, "
      f"{prune['cell_area_ratio']:.2%} after deletion; wire_ratio {prune['wire_ratio']:.2%}")
print(f"routing_area_ratio {route['routing_area_ratio']:.4f} "
      f"({route['routing_area_ratio']:.2%} of dense; paper 52.06 %)")
PY
