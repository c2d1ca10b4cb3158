"""The examples run end to end as a user would run them (subprocesses, digits data, tmp out)."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mapping import CrossbarSpec

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PNG = b"\x89PNG\r\n\x1a\n"


def run(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, str(REPO / "examples" / script), *args], cwd=REPO,
                       env=ENV, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_bring_your_own_model_low_rank(tmp_path):
    out = tmp_path / "byom"
    p = run("bring_your_own_model.py", "--epochs", "1", "--rank", "8", "--out", str(out))
    printed = float(re.search(r"max abs error chip vs model: (\S+)", p.stdout).group(1))
    s = json.loads((out / "summary.json").read_text())
    assert printed < 1e-4 and s["max_abs_error"] < 1e-4
    # fixed by the model: conv1 25x8 (1 tile), conv2 200x8 + 8x16 (4 + 1), fc1 256x8 + 8x64
    # (4 + 2), fc2 64x10 (1) on 64x64 differential crossbars (32 logical columns); dense 14
    assert s["n_crossbars"] == 13
    assert s["cells"] == 25 * 8 + 200 * 8 + 8 * 16 + 256 * 8 + 8 * 64 + 64 * 10
    assert s["crossbar_area_ratio"] == pytest.approx(13 / 14)
    assert s["area_um2"] == pytest.approx(13 * CrossbarSpec(64, 64).crossbar_area_um2)
    assert s["test_accuracy"] > 0.5  # one epoch on digits, after the rank-8 truncation
    r = s["routing"]
    assert r["overflow"] == 0 and r["wirelength"] >= r["lower_bound"] > 0
    assert 0 < r["routing_area_ratio"] < 1  # fewer wires than the dense baseline
    for png in ("floorplan.png", "congestion.png"):
        assert (out / png).read_bytes()[:8] == PNG
    chip = json.loads((out / "chip.json").read_text())
    assert sum(u["kind"] == "tile" for u in chip["units"]) == 13
    assert all("site" in u for u in chip["units"])  # placed
    assert "module chip" in (out / "chip.v").read_text()
    assert json.loads((out / "mapping.json").read_text())["n_crossbars"] == 13


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_crossbar_sweep_ideal_devices(tmp_path):
    out = tmp_path / "sweep"
    run("crossbar_sweep.py", "--model", "lenet", "--dataset", "digits", "--sizes", "32x32,64x64",
        "--encodings", "differential", "--levels", "0", "--sigma", "0", "--test-samples", "64",
        "--out", str(out))
    d = json.loads((out / "sweep.json").read_text())
    assert [r["size"] for r in d["rows"]] == ["32x32", "64x64"]  # one row per size
    assert d["test_samples"] == 64 and d["dataset"] == "digits"
    # LeNet's dense matrices 25x20, 500x50, 800x500, 500x10 (430,500 weights), every tile built
    for r, n in zip(d["rows"], (882, 233), strict=True):
        spec = CrossbarSpec(r["rows"], r["cols"])
        assert r["n_crossbars"] == r["dense_crossbars"] == n
        assert r["cells"] == 430_500
        assert r["area_um2"] == pytest.approx(n * spec.crossbar_area_um2, abs=1e-3)
        assert r["utilization"] == pytest.approx(430_500 / (n * spec.rows * spec.lcols), abs=1e-6)
        # ideal devices: the mapped network computes the model (an argmax tie may flip one)
        assert abs(r["accuracy"] - d["software_accuracy"]) <= 1 / 64
    # 64x64 is smaller; it is on the front unless 32x32 is strictly more accurate
    assert d["rows"][1]["pareto"]
    assert d["rows"][0]["pareto"] == (d["rows"][0]["accuracy"] > d["rows"][1]["accuracy"])
    assert d["command"].startswith("python ") and d["date"]
    with open(out / "sweep.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["n_crossbars"]) for r in rows] == [882, 233]
    assert (out / "pareto.png").read_bytes()[:8] == PNG


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_crossbar_sweep_device_model_and_bad_input(tmp_path):
    out = tmp_path / "sweep"
    run("crossbar_sweep.py", "--dataset", "digits", "--sizes", "256x256", "--encodings",
        "offset,differential", "--levels", "4", "--sigma", "0.2", "--test-samples", "32",
        "--out", str(out))
    d = json.loads((out / "sweep.json").read_text())
    assert [r["encoding"] for r in d["rows"]] == ["offset", "differential"]
    assert d["device"] == {"levels": 4, "variation_sigma": 0.2, "variation": "lognormal",
                           "seed": 0}
    assert all(0 <= r["accuracy"] <= 1 for r in d["rows"])
    assert d["rows"][0]["n_crossbars"] < d["rows"][1]["n_crossbars"]  # offset: 255 lcols
    assert d["rows"][0]["pareto"]  # the smallest area is always on the front
    bad = run("crossbar_sweep.py", "--model", "nope", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode == 2 and "error:" in bad.stderr and "Traceback" not in bad.stderr
