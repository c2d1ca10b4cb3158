"""The benchmark scripts' plumbing: a mistake ends with a message and exit 2, not a traceback;
two runs recording into one results file keep both entries."""

import json
import multiprocessing as mp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from common.io import update_json

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args, message", [
    (["benchmarks/group_deletion.py", "--model", "lenet", "--checkpoint", "/nonexistent/c.pt",
      "--dataset", "digits", "--runs", "/nonexistent/runs"],
     "checkpoint /nonexistent/c.pt does not exist"),
    (["benchmarks/group_deletion.py", "--model", "lenet", "--checkpoint", "c.pt",
      "--fine-tune-lr", "0.1", "--fine-tune-warmup-epochs", "5"],
     "fine_tune_warmup_epochs (5.0) must be shorter than fine_tune_epochs (2.0)"),
    (["benchmarks/rank_clipping.py", "--model", "lenet", "--fine-tune-warmup-epochs", "1",
      "--runs", "/nonexistent/runs"],
     "fine_tune_warmup_epochs needs fine_tune_lr"),
    (["benchmarks/rank_clipping.py", "--model", "lenet", "--runs", "/nonexistent/runs"],
     "no dense baseline in /nonexistent/runs/lenet"),
    (["benchmarks/rank_clipping.py", "--model", "lenet", "--select", "no-such-tag"],
     "no lenet run tagged 'no-such-tag'"),
])
def test_a_mistake_ends_with_a_message_not_a_traceback(args, message):
    r = _bench(*args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_a_bug_keeps_its_traceback():
    from benchmarks.guard import guarded

    def buggy():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        guarded(buggy)


def _add_keys(path, worker, n):
    for i in range(n):
        update_json(path, lambda d, i=i: {**d, f"{worker}-{i}": i})


def test_concurrent_updates_lose_nothing(tmp_path):
    path = tmp_path / "results.json"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_add_keys, args=(path, w, 40)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(json.loads(path.read_text())) == 120


@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_ir_drop_benchmark_records_its_table(tmp_path):
    out = tmp_path / "ir_drop.json"
    r = _bench("benchmarks/ir_drop.py", "--sizes", "4", "--r-wire", "1,10", "--scaling", "",
               "--no-lenet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert {"command", "date", "machine", "config", "single_tiles"} <= res.keys()
    assert [row["r_wire_ohm"] for row in res["single_tiles"]] == [1.0, 10.0]
    assert all(row["model_err"] < 1e-9 for row in res["single_tiles"])
    assert "ngspice s" in r.stdout
