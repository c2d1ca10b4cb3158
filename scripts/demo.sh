#!/usr/bin/env bash
# Set-up, then the main job on the embedded digits data set (no download, a few minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out="${1:-runs/demo}"
group-scissor train --model lenet --dataset digits --epochs 5 --out "$out/train" --force --quiet
echo "done: see $out"
