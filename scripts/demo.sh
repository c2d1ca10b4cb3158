#!/usr/bin/env bash
# Set-up, then the main job: `group-scissor compile` on the embedded digits data set
# (no download): dense LeNet -> rank clipping -> group deletion -> mapping -> placement and
# routing -> netlists -> report. Re-running resumes; pass --force to redo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
group-scissor compile --out runs/demo --quiet "$@"
echo "report: runs/demo/report.md"
