"""The benchmark scripts' plumbing: a mistake ends with a message and exit 2, not a traceback;
two runs recording into one results file keep both entries; one ledger per experiment, whose
rows are complete and named as the scripts name them, and the README's tables are the ledgers'."""

import json
import multiprocessing as mp
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import ledger, summary
from common.errors import ConfigError
from common.io import update_json

ROOT = Path(__file__).resolve().parents[1]
LEDGERS = {e: ledger.load(e) for e in ledger.EXPERIMENTS}


def _bench(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
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
    (["benchmarks/ledger.py", "headline", "rank_clipping", "lenet", "no-such-row"],
     "no row 'no-such-row' in rank_clipping"),
    # the README's command, run again without --replace: its row exists, so it stops before
    # training (with --replace it would re-record the row of the repository's ledger)
    ([a for a in shlex.split(ledger.headline("group_deletion", "convnet")["command"])[1:]
      if a != "--replace"],
     f"has a row '{ledger.headline('group_deletion', 'convnet')['name']}' already"),
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


def _row(name, **config):
    return ledger.make_row(name, "lenet", config, {"test_accuracy": 0.99}, command="python x.py",
                           date="2026-01-01T00:00:00", machine={})


def test_a_row_is_replaced_only_when_asked(tmp_path):
    ledger.append("rank_clipping", _row("a", tol=0.05), headline_key="lenet", results=tmp_path)
    with pytest.raises(ConfigError, match="has a row 'a' already"):
        ledger.append("rank_clipping", _row("a", tol=0.03), results=tmp_path)
    with pytest.raises(ConfigError, match="pass --replace"):
        ledger.refuse_existing("rank_clipping", "a", replace=False, results=tmp_path)
    same = ledger.append("rank_clipping", _row("b", tol=0.05), headline_key="lenet",
                         results=tmp_path)
    assert same == ["a"]  # the same config under another name is reported
    ledger.append("rank_clipping", _row("a", tol=0.03), replace=True, results=tmp_path)
    doc = ledger.load("rank_clipping", tmp_path)
    assert [r["name"] for r in doc["rows"]] == ["a", "b"]  # replaced in place
    assert doc["rows"][0]["config"] == {"tol": 0.03}
    assert doc["headline"] == {"lenet": "a"}  # a key's first row, until asked otherwise
    ledger.append("rank_clipping", _row("c"), headline_key="lenet", make_headline=True,
                  results=tmp_path)
    assert ledger.load("rank_clipping", tmp_path)["headline"] == {"lenet": "c"}
    with pytest.raises(ConfigError, match="row name"):
        _row("two words")


def test_config_hash_is_of_the_canonical_json():
    assert ledger.config_hash({"a": 1, "b": [1, 2]}) == ledger.config_hash({"b": [1, 2], "a": 1})
    assert ledger.config_hash({"a": 1}) != ledger.config_hash({"a": 1.5})
    row = _row("x", ranks=(6, 9), path=Path("runs/x"))  # stored as JSON gives it back
    assert row["config"] == {"ranks": [6, 9], "path": "runs/x"}
    assert row["config_hash"] == ledger.config_hash(json.loads(json.dumps(row["config"])))


def test_results_hold_one_ledger_per_experiment():
    files = {p.name for p in ledger.RESULTS.iterdir()}
    assert set(ledger.AWAITING) <= set(ledger.EXPERIMENTS)
    assert files == {f"{e}.json" for e in ledger.EXPERIMENTS if e not in ledger.AWAITING}, (
        "an experiment that has run has a ledger; remove it from ledger.AWAITING")


@pytest.mark.parametrize("experiment", [e for e in ledger.EXPERIMENTS if e not in ledger.AWAITING])
def test_every_row_is_complete_and_hashes_to_its_config(experiment):
    doc = LEDGERS[experiment]
    assert doc["experiment"] == experiment and doc["rows"]
    names = [r["name"] for r in doc["rows"]]
    assert len(set(names)) == len(names), "row names are unique"
    for r in doc["rows"]:
        missing = [k for k in ledger.REQUIRED if k not in r]
        assert not missing, f"{r.get('name')}: no {missing}"
        assert ledger.NAME.fullmatch(r["name"]), r["name"]
        assert isinstance(r["config"], dict) and isinstance(r["metrics"], dict)
        assert isinstance(r["machine"], dict) and r["command"].startswith("python benchmarks/")
        assert r["config_hash"] == ledger.config_hash(r["config"]), r["name"]
    assert doc["headline"] and set(doc["headline"].values()) <= set(names)


def test_the_readme_tables_are_the_ledgers():
    L = summary.Ledgers()
    for path, make in summary.DOCS.items():
        assert summary.readme_blocks(path.read_text()) == make(L), (
            f"{path.name}'s tables differ from the ledgers: python benchmarks/summary.py --readme")


def test_the_routed_headline_is_the_deletion_headline():
    for model in ("lenet", "convnet"):
        routed = ledger.headline("routing", model)
        pruned = ledger.headline("group_deletion", model)
        assert str(Path(routed["config"]["checkpoint"]).parent) == pruned["outputs"]["run"]
        assert routed["name"] == pruned["name"] + "-routed"


def test_a_rows_name_is_the_one_its_command_gives():
    """Run again, a row's command names the same row (and is refused without --replace)."""
    from benchmarks import group_deletion, rank_clipping
    from group_scissor.prune import parse_layer_lambda

    for r in LEDGERS["group_deletion"]["rows"]:
        args = group_deletion.parser().parse_args(shlex.split(r["command"])[2:])
        lam = ({"*": args.lam, **parse_layer_lambda(args.layer_lambda)} if args.layer_lambda
               else args.lam)
        assert (args.name or group_deletion.row_name(args, lam)) == r["name"]
        assert lam == r["config"]["prune"]["lambda_"]
    for r in LEDGERS["rank_clipping"]["rows"]:
        args = rank_clipping.parser().parse_args(shlex.split(r["command"])[2:])
        assert (args.name or rank_clipping.run_name(args)) == r["name"]


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
@pytest.mark.skipif(shutil.which("ngspice") is None, reason="ngspice not installed")
def test_ir_drop_benchmark_records_its_table(tmp_path):
    r = _bench("benchmarks/ir_drop.py", "--sizes", "4", "--r-wire", "1,10", "--scaling", "",
               "--no-lenet", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    row = ledger.headline("ir_drop", "crossbar", tmp_path)
    assert row["name"] == "ir-drop-4-r1-10" and {"command", "date", "machine"} <= row.keys()
    res = row["metrics"]
    assert [x["r_wire_ohm"] for x in res["single_tiles"]] == [1.0, 10.0]
    assert all(x["model_err"] < 1e-9 for x in res["single_tiles"])
    assert "ngspice s" in r.stdout


def test_a_row_supersedes_others_only_when_asked(tmp_path):
    for name in ("old", "keep", "older"):
        ledger.append("energy", _row(name, n=name), headline_key=name, results=tmp_path)
    with pytest.raises(ConfigError, match="pass --replace"):
        ledger.append("energy", _row("new"), supersedes=("old",), results=tmp_path)
    ledger.append("energy", _row("new"), replace=True, headline_key="x",
                  supersedes=("old", "older", "absent"), results=tmp_path)
    doc = ledger.load("energy", tmp_path)
    assert [r["name"] for r in doc["rows"]] == ["new", "keep"]  # in the first one's place
    assert doc["headline"] == {"old": "new", "keep": "keep", "older": "new", "x": "new"}


def test_device_accuracy_plots_its_ledger(tmp_path):
    """--from-ledger evaluates nothing: every row goes back to (model, variant, setting) as its
    name was made from them, and the plot is written."""
    from benchmarks import device_accuracy

    res = device_accuracy.ledger_results()
    rows = LEDGERS["device_accuracy"]["rows"]
    assert [f"{r['model']}-{r['variant']}-{r['setting']}" for r in res] == [r["name"] for r in rows]
    assert {r["setting"] for r in res} <= {s for s, _, _ in device_accuracy.settings(1)}
    assert {r["variant"] for r in res} == set(device_accuracy.ORDER)  # all three, no stray
    r = _bench("benchmarks/device_accuracy.py", "--from-ledger", "--plot", str(tmp_path / "p.png"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").stat().st_size > 10_000 and f"{len(rows)} rows" in r.stdout
