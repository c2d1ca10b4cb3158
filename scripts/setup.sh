#!/usr/bin/env bash
# Installs everything group-scissor needs on a fresh machine (idempotent, quick when done).
# torch is pinned to the CPU build first, so the package's `torch>=2.3` range pulls nothing more.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages first: the external tools the netlist tests run for real, and the cairo
# headers pycairo (a dependency of badcrossbar, in the dev extras) is built against.
missing=()
for tool in ngspice yosys iverilog; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if ! pkg-config --exists cairo 2>/dev/null; then missing+=(pkg-config libcairo2-dev); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "note: ${missing[*]} not installed (needs root: apt-get install ${missing[*]}); their tests will skip" >&2
  fi
fi
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
if ! python3 -m pip install -q --disable-pip-version-check -e ".[dev]"; then
  # without the cairo headers pycairo cannot build; badcrossbar's solver does not need it
  echo "note: installing badcrossbar without its plotting dependencies (no cairo headers)" >&2
  python3 -m pip install -q --disable-pip-version-check -e . "pytest>=7.4" "pytest-timeout>=2.2" \
    "hypothesis>=6.90" "ruff>=0.5" "jsonschema>=4.0" pathvalidate
  python3 -m pip install -q --disable-pip-version-check --no-deps "badcrossbar>=1.1"
fi
