"""Contracts every stage and every settings section keeps (one suite over all of them, as
scikit-learn's estimator checks):
- a config section: every field documented, TOML round trip, a flag per field in each command;
- a compile stage: its declared files and a metrics.json written; killed at any file write and
  re-run, it ends identical to an uninterrupted run; a stage killed under other settings is
  never taken for up to date; a copied run folder reads its own files.
The run these are checked on sets a device file, so the optional stage 7-evaluate is one of
them; without a device file it is not run and leaves no folder (checked below).
"""

import functools
import hashlib
import json
import shutil
import sys
import time
import typing
from dataclasses import fields
from pathlib import Path

import pytest
import torch

import common.io
from common.errors import ConfigError
from group_scissor.config import CompileConfig, _dataclass_of
from group_scissor.flags import _raw, field_docs, flags_for
from group_scissor.pipeline import OPTIONAL, STAGE_FILES, STAGES
from group_scissor.pipeline import compile as run_compile

TINY = ["train.epochs=2", "clip_train.epochs=2", "clip.fine_tune_epochs=1",
        "clip.tolerance_ramp_epochs=0", "clip.clip_interval=10", "prune_train.epochs=2",
        "prune.fine_tune_epochs=1", "prune.lambda_=0.05", "train.batch_size=256",
        "clip_train.batch_size=256", "prune_train.batch_size=256"]
DEVICE = ["evaluate.device_file=rram_4bit", "evaluate.seeds=2", "evaluate.test_samples=120"]
"""Stage 7-evaluate on: 2 chips of a preset with variation and read noise, 120 test images."""
TINY = TINY + DEVICE
NO_DEVICE = [o for o in TINY if o not in DEVICE]
SECTIONS = [f.name for f in fields(CompileConfig)
            if _dataclass_of(typing.get_type_hints(CompileConfig)[f.name])]


# ---- settings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("section", [None, *SECTIONS])
def test_every_setting_is_documented(section):
    cls = CompileConfig if section is None else _dataclass_of(
        typing.get_type_hints(CompileConfig)[section])
    docs = field_docs(cls)
    missing = [f.name for f in fields(cls) if not docs.get(f.name)]
    assert not missing, f"{cls.__name__}: fields without a docstring: {missing}"


@pytest.mark.parametrize("section", SECTIONS)
def test_a_section_changed_in_every_field_round_trips_through_toml(tmp_path, section):
    # flip every switch and move every seed and epoch count; the TOML written must load back
    base = CompileConfig()
    sub = getattr(base, section)
    overrides = []
    for f in fields(sub):
        v = getattr(sub, f.name)
        if isinstance(v, bool):
            overrides.append(f"{section}.{f.name}={'false' if v else 'true'}")
        elif isinstance(v, int) and f.name in ("seed", "epochs", "eval_batch_size"):
            overrides.append(f"{section}.{f.name}={v + 1}")
    try:
        cfg = CompileConfig.load(None, overrides)
    except ConfigError:  # a combination this section refuses: the defaults still round-trip
        cfg = base
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert CompileConfig.load(tmp_path / "c.toml") == cfg


@pytest.mark.parametrize("sections", [("train",), ("clip_train", "clip"),
                                      ("prune_train", "prune"), ("place", "route"),
                                      tuple(SECTIONS)])
def test_flags_are_unique_and_every_key_is_a_setting(sections):
    flags = flags_for(("model", "dataset", "crossbar"), sections)
    names = [f.flag for f in flags]
    assert len(names) == len(set(names))
    for f in flags:  # each flag is a --set key the schema takes (defaults: a no-op)
        section, _, leaf = f.key.rpartition(".")
        value = getattr(getattr(CompileConfig(), section) if section else CompileConfig(), leaf)
        if value is not None and not isinstance(value, dict | tuple | list):
            CompileConfig.load(None, [f"{f.key}={_raw(value)}"])


def test_a_bad_setting_fails_before_any_training(tmp_path):
    start = time.perf_counter()
    for bad in ('prune.layers=["fc9"]', 'prune.lambda_={"*" = 0.1, fc9 = 1}'):
        with pytest.raises(ConfigError, match="fc9"):
            run_compile(CompileConfig.load(None, TINY + [bad]), tmp_path, progress=False,
                        log=lambda m: None)
    with pytest.raises(ConfigError, match="fine_tune_epochs"):
        run_compile(CompileConfig.load(None, TINY + ["prune.fine_tune_epochs=5"]),
                    tmp_path, progress=False, log=lambda m: None)
    assert time.perf_counter() - start < 5
    assert not any(tmp_path.iterdir())  # nothing written, no stage.pending left behind


# ---- stages -----------------------------------------------------------------------------------

def _digest(out: Path) -> dict:
    """What must be identical between two runs of the same settings: weights, designs,
    layouts, netlists, reports (less the run times)."""
    d = {}
    for stage in ("1-train", "2-clip", "3-prune"):
        sd = torch.load(out / stage / "checkpoint.pt", weights_only=True)
        d[stage] = hashlib.sha256(b"".join(v.numpy().tobytes() for v in sd.values())).hexdigest()
    for rel in ("4-map/design.json", "4-map/dense.json", "5-route/routed.json",
                "5-route/placement.json", "5-route/routes.json", "6-export/chip.json",
                "6-export/chip.sp", "6-export/chip.v"):
        d[rel] = hashlib.sha256((out / rel).read_bytes()).hexdigest()
    for rel in ("5-route/routing.json", "7-evaluate/evaluate.json", "report.json"):
        doc = json.loads((out / rel).read_text())
        for k in ("seconds", "stage_seconds"):
            doc.pop(k, None)
        d[rel] = doc
    return d


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("clean")
    run_compile(CompileConfig.load(None, TINY), out, progress=False, log=lambda m: None)
    return out


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_writes_its_declared_files_and_metrics(clean_run, stage):
    folder = clean_run / f"{STAGES.index(stage) + 1}-{stage}"
    for name in ("stage.json", "metrics.json", *STAGE_FILES[stage]):
        assert (folder / name).is_file(), f"{stage}: {name} missing"
    rec = json.loads((folder / "stage.json").read_text())
    assert rec["metrics"] and rec["schema_version"] and rec["fingerprint"]
    assert not list(clean_run.glob(".*.tmp")) and not list(folder.glob("stage.pending"))


def test_a_copied_run_folder_reads_its_own_files(clean_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(clean_run, copy)
    for stage in ("1-train", "2-clip", "3-prune"):  # records name files inside the folder only
        rec = json.loads((copy / stage / "stage.json").read_text())
        assert not Path(rec["metrics"]["checkpoint"]).is_absolute()
    ev = json.loads((copy / "7-evaluate" / "evaluate.json").read_text())
    assert ev["checkpoint"] == "3-prune/checkpoint.pt"
    moved = tmp_path / "moved"
    shutil.move(copy, moved)
    log: list[str] = []
    run_compile(CompileConfig.load(None, TINY), moved, progress=False, log=log.append)
    assert sum("skipped" in m for m in log) == len(STAGES) == 7
    assert _digest(moved) == _digest(clean_run)


def test_a_stage_killed_under_other_settings_is_redone(clean_run, tmp_path, monkeypatch):
    out = tmp_path / "run"
    shutil.copytree(clean_run, out)
    # re-run with another lambda, killed in the middle of the prune stage's training
    other = CompileConfig.load(None, TINY + ["prune.lambda_=0.2"])
    _kill_at_write(monkeypatch, lambda path: "3-prune" in str(path) and path.name == "resume.pt")
    with pytest.raises(KeyboardInterrupt):
        run_compile(other, out, progress=False, log=lambda m: None)
    monkeypatch.undo()
    log: list[str] = []
    run_compile(CompileConfig.load(None, TINY), out, progress=False, log=log.append)
    assert "[3-prune] running" in log  # the killed stage is not up to date
    assert _digest(out) == _digest(clean_run)


def test_the_run_holds_every_stage_the_optional_ones_included(clean_run):
    # the contracts above are checked on every stage: none is silently left out of the run
    ran = sorted(p.name for p in clean_run.iterdir() if (p / "stage.json").is_file())
    assert ran == [f"{i + 1}-{s}" for i, s in enumerate(STAGES)]
    assert set(OPTIONAL) <= set(STAGES)


# ---- the optional stage 7-evaluate ------------------------------------------------------------

def test_evaluate_figures_are_in_the_report(clean_run):
    rep = json.loads((clean_run / "report.json").read_text())
    ev = json.loads((clean_run / "7-evaluate" / "evaluate.json").read_text())
    d = rep["device_accuracy"]
    assert d["device_name"] == "rram_4bit" and d["chips"] == 2 and d["seeds"] == [0, 1]
    assert d["accuracy"] == ev["accuracy"] and d["ideal_accuracy"] == ev["ideal_accuracy"]
    assert d["accuracies"] == ev["accuracies"] and len(ev["accuracies"]) == 2
    assert not d["deterministic"] and d["test_samples"] == 120 and not d["full_test_set"]
    assert 0 <= d["accuracy"]["min"] <= d["accuracy"]["mean"] <= d["accuracy"]["max"] <= 1
    # the model as the chip sees it: the final (pruned) network, as compile's report has it
    assert ev["pytorch_accuracy"] == pytest.approx(_accuracy_of(clean_run, 120))
    assert ev["dataset"] == "digits" and ev["crossbar"]["rows"] == 64
    assert "evaluate" in rep["stage_seconds"]
    md = (clean_run / "report.md").read_text()
    a = d["accuracy"]
    assert "## Accuracy under device effects" in md and "`rram_4bit`" in md
    assert f"{a['mean']:.4f} +- {a['std']:.4f}" in md and f"{d['ideal_accuracy']:.4f}" in md


def _accuracy_of(out: Path, n: int) -> float:
    from group_scissor.data import load_dataset
    from group_scissor.evaluate import accuracy
    from models.checkpoint import load_model

    model = load_model("lenet", out / "3-prune" / "checkpoint.pt").eval()
    data = load_dataset("digits")
    return accuracy(model, data.test.x[:n], data.test.y[:n])


def _ran(out: Path, overrides) -> list[str]:
    """The stages a compile of ``overrides`` into ``out`` runs (not skips)."""
    log: list[str] = []
    run_compile(CompileConfig.load(None, overrides), out, progress=False, log=log.append)
    return [m.split("]")[0][1:] for m in log if "running" in m]


def test_evaluate_reruns_alone_when_its_settings_change(clean_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(clean_run, out)
    before = json.loads((out / "7-evaluate" / "evaluate.json").read_text())
    assert _ran(out, TINY) == []  # nothing changed: every stage skipped
    assert _ran(out, TINY + ["evaluate.seeds=3"]) == ["7-evaluate"]
    after = json.loads((out / "7-evaluate" / "evaluate.json").read_text())
    assert after["seeds"] == [0, 1, 2] and after["accuracies"][:2] == before["accuracies"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["device_accuracy"]["chips"] == 3


def test_evaluate_depends_on_the_mapping_and_the_device_file_content(clean_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(clean_run, out)
    ran = functools.partial(_ran, out)
    # placement, routing and netlists do not change what the chips compute: evaluate stays
    assert ran(TINY + ["place.seed=1"]) == ["5-route", "6-export"]
    # the device file's content is in the fingerprint, not only its name
    dev = tmp_path / "dev.toml"
    dev.write_text("levels = 16\nvariation_sigma = 0.05\n")
    with_file = NO_DEVICE + ["place.seed=1", f"evaluate.device_file={dev}", "evaluate.seeds=1",
                             "evaluate.test_samples=60"]
    assert ran(with_file) == ["7-evaluate"]
    assert ran(with_file) == []
    dev.write_text("levels = 8\nvariation_sigma = 0.05\n")
    assert ran(with_file) == ["7-evaluate"]
    assert json.loads((out / "7-evaluate" / "evaluate.json").read_text())["device"]["levels"] == 8


def test_without_a_device_file_evaluate_is_not_run_and_leaves_no_folder(clean_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(clean_run, out)
    (out / ".7-evaluate.4242.tmp").mkdir()  # what a killed evaluate left
    log: list[str] = []
    rep = run_compile(CompileConfig.load(None, NO_DEVICE), out, progress=False, log=log.append)
    assert sum("skipped" in m for m in log) == len(STAGES) - len(OPTIONAL)
    assert not any("running" in m for m in log)
    assert not (out / "7-evaluate").exists() and not list(out.glob(".7-evaluate.*"))
    assert rep["device_accuracy"] is None and "evaluate" not in rep["stage_seconds"]
    assert json.loads((out / "report.json").read_text())["device_accuracy"] is None
    assert "Not evaluated: no device file" in (out / "report.md").read_text()
    assert "device_file" not in (out / "config.toml").read_text()


def test_a_bad_device_file_fails_before_any_training(tmp_path):
    from tests.test_cli import assert_clean_error, run

    start = time.perf_counter()
    missing = tmp_path / "nowhere" / "dev.toml"
    with pytest.raises(ConfigError, match=r"evaluate.device_file .*no such device file"):
        run_compile(CompileConfig.load(None, NO_DEVICE + [f"evaluate.device_file={missing}"]),
                    tmp_path / "run", progress=False, log=lambda m: None)
    with pytest.raises(ConfigError, match="no device preset named 'rram_9bit'"):
        run_compile(CompileConfig.load(None, NO_DEVICE + ["evaluate.device_file=rram_9bit"]),
                    tmp_path / "run", progress=False, log=lambda m: None)
    (tmp_path / "bad.toml").write_text("adc_bit = 6\n")
    with pytest.raises(ConfigError, match="unknown device field"):
        run_compile(CompileConfig.load(None, NO_DEVICE + [
            f"evaluate.device_file={tmp_path / 'bad.toml'}"]), tmp_path / "run", progress=False,
            log=lambda m: None)
    with pytest.raises(ConfigError, match="encoding 'unsigned'"):
        run_compile(CompileConfig.load(None, NO_DEVICE + [
            "evaluate.device_file=rram_4bit", "encoding=unsigned"]), tmp_path / "run",
            progress=False, log=lambda m: None)
    assert time.perf_counter() - start < 5
    assert not (tmp_path / "run").exists()  # nothing written: no stage started
    assert_clean_error(run("compile", "--device-file", missing, "--out", tmp_path / "run"),
                       "no such device file")
    assert not (tmp_path / "run").exists()


def _kill_at_write(monkeypatch, when):
    """Raise KeyboardInterrupt (as kill would stop the run) at the first atomic write of a
    file for which ``when(path)`` holds, before it lands."""
    original = common.io.atomic_open

    def dying(path, mode="w"):
        if when(Path(path)):
            raise KeyboardInterrupt
        return original(path, mode)

    for mod in list(sys.modules.values()):
        if getattr(mod, "atomic_open", None) is original:
            monkeypatch.setattr(mod, "atomic_open", dying)


@pytest.mark.slow
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("nth", [1, 3])
def test_kill_anywhere_then_rerun_ends_identical(clean_run, tmp_path, monkeypatch, stage, nth):
    """Fault injection: kill compile at the nth file write of a stage (fresh run), re-run:
    the result is bit-identical to the uninterrupted run."""
    folder = f"{STAGES.index(stage) + 1}-{stage}"
    count = {"n": 0}

    def when(path):
        if folder in str(path) or f".{folder}." in str(path):
            count["n"] += 1
            return count["n"] == nth
        return False

    out = tmp_path / "run"
    _kill_at_write(monkeypatch, when)
    with pytest.raises(KeyboardInterrupt):
        run_compile(CompileConfig.load(None, TINY), out, progress=False, log=lambda m: None)
    monkeypatch.undo()
    assert not (out / folder / "stage.json").exists()
    run_compile(CompileConfig.load(None, TINY), out, progress=False, log=lambda m: None)
    assert _digest(out) == _digest(clean_run)


def test_a_rerun_sweeps_what_a_killed_run_left(clean_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(clean_run, out)
    (out / ".5-route.4242.tmp").mkdir()  # a half-built stage folder of a killed run
    (out / ".6-export.4242.old").mkdir()
    (out / "5-route" / ".floorplan.png.x1y2.tmp").write_bytes(b"half")
    run_compile(CompileConfig.load(None, TINY + ["place.seed=1"]), out, progress=False,
                log=lambda m: None)
    assert not list(out.glob(".*.tmp")) and not list(out.glob(".*.old"))
    assert not list((out / "5-route").glob(".*.tmp"))


@pytest.mark.slow  # a second process (spawned: a fork would inherit the lock table)
def test_one_compile_per_run_folder(clean_run, tmp_path):
    from common.errors import UserError
    from common.io import folder_lock

    out = tmp_path / "run"
    shutil.copytree(clean_run, out)
    with folder_lock(out), pytest.raises(UserError, match="in use by another run"):
        import multiprocessing as mp  # the lock is per process: take it in another one

        ctx = mp.get_context("spawn")  # a fork would inherit the lock table
        q = ctx.Queue()
        p = ctx.Process(target=_compile_into, args=(out, q))
        p.start()
        p.join(60)
        kind, msg = q.get(timeout=5)
        if kind == "error":
            raise UserError(msg)


def _compile_into(out, q):
    try:
        run_compile(CompileConfig.load(None, TINY), out, progress=False, log=lambda m: None)
        q.put(("ok", ""))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        q.put(("error", str(e)))
