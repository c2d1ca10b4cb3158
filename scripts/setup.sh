#!/usr/bin/env bash
# Installs everything group-scissor needs on a fresh machine (idempotent, quick when done).
# torch is pinned to the CPU build first, so the package's `torch>=2.3` range pulls nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
# External tools the netlist tests run for real (Debian packages).
missing=()
for tool in ngspice yosys iverilog; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not installed (needs root: apt-get install ${missing[*]}); their tests will skip" >&2
  fi
fi
