"""compile end to end on the embedded digits data, with tiny epochs."""

import json

import pytest
from typer.testing import CliRunner

from common.errors import ConfigError
from group_scissor.cli import app
from group_scissor.config import CompileConfig
from group_scissor.pipeline import compile as run_compile

TINY = ["train.epochs=2", "clip_train.epochs=2", "clip.fine_tune_epochs=1",
        "clip.tolerance_ramp_epochs=0", "clip.clip_interval=10", "prune_train.epochs=2",
        "prune.fine_tune_epochs=1", "prune.lambda_=0.001", "formats=[\"json\", \"verilog\"]"]


def test_config_round_trips_through_toml(tmp_path):
    cfg = CompileConfig.load(None, ["clip.tolerance=0.2", "crossbar=32x128", "train.epochs=3"])
    assert cfg.clip.tolerance == 0.2 and cfg.crossbar == "32x128" and cfg.train.epochs == 3
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert CompileConfig.load(tmp_path / "c.toml") == cfg


def test_a_run_records_the_files_it_reads_as_absolute_paths(tmp_path, monkeypatch):
    """compile writes config.toml with absolute file paths, so --config RUN/config.toml from
    another folder reads the same files; presets, registered models and shipped names stay."""
    import shutil

    from mapping.spec import PRESETS

    monkeypatch.chdir(tmp_path)
    shutil.copy(PRESETS / "illustrative.toml", "mine.toml")
    cfg = CompileConfig.load(None, ["model=nets/a.onnx", "tech=mine.toml", "data_dir=data",
                                    "baseline_checkpoint=runs/dense.pt",
                                    "evaluate.device_file=dev/x.toml"]).absolute()
    assert (cfg.model, cfg.tech, cfg.data_dir, cfg.baseline_checkpoint,
            cfg.evaluate.device_file) == tuple(str(tmp_path / f) for f in (
                "nets/a.onnx", "mine.toml", "data", "runs/dense.pt", "dev/x.toml"))
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert CompileConfig.load(tmp_path / "c.toml") == cfg
    named = CompileConfig.load(None, ["tech=isaac_32nm", "baseline_checkpoint=lenet:dense",
                                      "evaluate.device_file=rram_4bit"])
    assert named.absolute() == named and CompileConfig().absolute() == CompileConfig()


@pytest.mark.parametrize("override, needle", [
    (["clip.tolerence=0.1"], "unknown setting"), (["bogus=1"], "unknown setting"),
    (["crossbar=0x64"], "must be in"), (["train.lr=-1"], "lr must be"),
    (["formats=[\"gds\"]"], "unknown netlist format"), (["clip.tolerance"], "KEY=VALUE"),
    (["clip.tolerance=abc"], "clip.tolerance must be a number"),
    (["distill_weight=2"], "weight must lie in"),
    (["train.epochs=2.5"], "train.epochs must be a whole number"),
    (["train=3"], r"\[train\] is a table of settings"),
    (["model.x=1"], "model is a single value, not a table"),
    (["prune.threshold=[1]"], "prune.threshold must be a number"),
    (["prune.rebalance=1"], "must be true or false"),
    (["prune.layers={a=1}"], "prune.layers must be a list"),
    (["evaluate.seeds=0"], r"EvaluateConfig.seeds must be in \[1, "),
    (["evaluate.seeds=2.5"], "evaluate.seeds must be a whole number"),
    (["evaluate.test_samples=0"], r"EvaluateConfig.test_samples must be in \[1, "),
    (["evaluate.calibration_samples=-1"], "EvaluateConfig.calibration_samples must be in"),
    (["evaluate.device_file="], "EvaluateConfig.device_file must be a preset name"),
    (["evaluate.device_file=[1]"], "evaluate.device_file must be text")])
def test_bad_settings_are_named(override, needle):
    with pytest.raises((ConfigError, ValueError), match=needle):
        CompileConfig.load(None, override)


def test_evaluate_settings_round_trip_and_have_flags(tmp_path):
    cfg = CompileConfig.load(None, ["evaluate.device_file=rram_4bit", "evaluate.seeds=3",
                                    "evaluate.test_samples=100"])
    assert (cfg.evaluate.device_file, cfg.evaluate.seeds, cfg.evaluate.test_samples) == (
        "rram_4bit", 3, 100)
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert "[evaluate]" in cfg.to_toml() and CompileConfig.load(tmp_path / "c.toml") == cfg
    assert CompileConfig().evaluate.device_file is None  # off unless asked for
    r = CliRunner().invoke(app, ["compile", "--help"], terminal_width=200)
    for flag in ("--device-file", "--seeds", "--calibration-samples", "--test-samples"):
        assert flag in r.output, flag


def test_a_toml_value_of_the_wrong_kind_is_named(tmp_path):
    (tmp_path / "c.toml").write_text("model = 5\n")
    with pytest.raises(ConfigError, match="model must be text, got 5"):
        CompileConfig.load(tmp_path / "c.toml")


def test_a_lambda_table_with_a_star_key_round_trips_through_toml(tmp_path):
    cfg = CompileConfig.load(None, ['prune.lambda_={"*" = 0.2, fc1 = 0.1}'])
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert CompileConfig.load(tmp_path / "c.toml") == cfg


def test_a_single_string_for_a_list_setting_is_one_item():
    cfg = CompileConfig.load(None, ["prune.layers=fc1", "formats=json"])
    assert cfg.prune.layers == ("fc1",) and cfg.formats == ("json",)


@pytest.mark.slow
def test_compile_runs_resumes_and_reports(tmp_path):
    cfg = CompileConfig.load(None, TINY)
    log: list[str] = []
    rep = run_compile(cfg, tmp_path, progress=False, log=log.append)
    for key in ("accuracy", "layers", "cell_area_ratio", "crossbar_area_ratio",
                "routing_area_ratio", "congestion", "stage_seconds", "crossbar"):
        assert key in rep
    assert set(rep["accuracy"]) == {"baseline", "rank_clipped", "final"}
    assert 0 < rep["cell_area_ratio"] < 1.5 and rep["routing_area_ratio"] is not None
    assert set(rep["stage_seconds"]) == {"train", "clip", "prune", "map", "route", "export"}
    assert rep["device_accuracy"] is None and not (tmp_path / "7-evaluate").exists()
    for f in ("report.json", "report.md", "config.toml", "2-clip/ranks.png",
              "5-route/routing.json", "6-export/chip.json", "6-export/chip.v"):
        assert (tmp_path / f).is_file(), f
    assert "| Group Scissor (this run) |" in (tmp_path / "report.md").read_text()
    # a second run skips every stage
    log.clear()
    run_compile(cfg, tmp_path, progress=False, log=log.append)
    assert sum("skipped" in m for m in log) == 6
    # changing a routing setting redoes only routing and what follows
    log.clear()
    cfg2 = CompileConfig.load(None, TINY + ["place.seed=1"])
    run_compile(cfg2, tmp_path, progress=False, log=log.append)
    assert [m.split("]")[0][1:] for m in log if "running" in m] == ["5-route", "6-export"]
    # distilling from the dense baseline redoes the training stages after it
    log.clear()
    run_compile(CompileConfig.load(None, TINY + ["place.seed=1", "distill_weight=0.5"]),
                tmp_path, progress=False, log=log.append)
    assert [m.split("]")[0][1:] for m in log if "running" in m] == [
        "2-clip", "3-prune", "4-map", "5-route", "6-export"]
    clip_cfg = json.loads((tmp_path / "2-clip" / "config.json").read_text())
    assert clip_cfg["distill"] == {"teacher": str(tmp_path / "1-train" / "checkpoint.pt"),
                                   "temperature": 4.0, "weight": 0.5}


def test_compile_cli_bad_input_is_clean(tmp_path):
    r = CliRunner().invoke(app, ["compile", "--model", "nope", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "unknown model" in r.output
    r = CliRunner().invoke(app, ["compile", "--config", str(tmp_path / "missing.toml"),
                                 "--out", str(tmp_path)])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_runner_skips_redoes_and_survives_a_corrupt_record(tmp_path):
    from group_scissor.pipeline import _Runner

    calls = []

    def stage(folder, resume):
        calls.append(resume)
        return {"value": len(calls)}

    r = _Runner(tmp_path, force=False, log=lambda m: None)
    assert r.run(1, "a", {"x": 1}, stage)["metrics"] == {"value": 1}
    r2 = _Runner(tmp_path, force=False, log=lambda m: None)
    assert r2.run(1, "a", {"x": 1}, stage)["metrics"] == {"value": 1} and len(calls) == 1
    r3 = _Runner(tmp_path, force=False, log=lambda m: None)
    r3.run(1, "a", {"x": 2}, stage)  # new settings: redone
    assert len(calls) == 2
    (tmp_path / "1-a" / "stage.json").write_text("{not json")
    r4 = _Runner(tmp_path, force=False, log=lambda m: None)
    assert r4.run(1, "a", {"x": 2}, stage)["metrics"] == {"value": 3}
    r5 = _Runner(tmp_path, force=True, log=lambda m: None)
    r5.run(1, "a", {"x": 2}, stage)
    assert len(calls) == 4


@pytest.mark.parametrize("args, needle", [
    ((4, 2, None, 1.0), "needs a fine-tune learning rate"),
    ((4, 2, 0.1, 2.0), "shorter than the fine-tuning"),
    ((4, 0, 0.1, 0.0), "0 < fine-tune epochs < epochs")])
def test_fine_tune_restart_names_the_mistake(args, needle):
    from group_scissor.stages import fine_tune_restart
    from group_scissor.train import TrainConfig

    epochs, *rest = args
    with pytest.raises(ConfigError, match=needle):
        fine_tune_restart(TrainConfig(epochs=epochs), *rest)


def test_fine_tune_restart_sets_the_warm_restart():
    from group_scissor.stages import fine_tune_restart
    from group_scissor.train import TrainConfig

    cfg = fine_tune_restart(TrainConfig(epochs=10), 4, 0.05, 1.0)
    assert (cfg.restart_epoch, cfg.restart_lr, cfg.restart_warmup_epochs) == (6, 0.05, 1.0)


def test_weight_precision_settings_give_the_spec_its_slices(tmp_path):
    from mapping.routing import RouteConfig

    cfg = CompileConfig.load(None, ["weight_bits=8", "cell_bits=2", "crossbar=32x32"])
    spec = cfg.spec()
    assert (spec.weight_bits, spec.cell_bits, spec.slices) == (8, 2, 4)
    assert cfg.route.gcells_per_site == RouteConfig.for_spec(spec).gcells_per_site
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert "weight_bits = 8" in cfg.to_toml() and CompileConfig.load(tmp_path / "c.toml") == cfg
    # a [route] table is laid over the sliced spec's grid, not the unsliced one's
    assert CompileConfig.load(None, ["weight_bits=8", "cell_bits=2", "route.seed=3"]).route.seed == 3
    assert CompileConfig().spec().slices == 1 and "weight_bits" not in CompileConfig().to_toml()
    assert CompileConfig(weight_bits=6).spec().slices == 1  # quantized, one cell per weight


@pytest.mark.parametrize("override, needle", [
    (["cell_bits=2"], "^cell_bits slices weights of a fixed precision: set weight_bits too"),
    (["weight_bits=1"], "^weight_bits must be >= 2"),
    (["weight_bits=33"], "^weight_bits must be an int in 1..32"),
    (["weight_bits=8", "cell_bits=0"], "^cell_bits must be an int in 1..32"),
    (["weight_bits=8.5"], "weight_bits must be a whole number"),
    (["weight_bits=true"], "weight_bits must be a whole number"),
    (["weight_bits.x=1"], "weight_bits is a single value")])
def test_bad_weight_precision_is_named(override, needle):
    with pytest.raises(ConfigError, match=needle):
        CompileConfig.load(None, override)
    with pytest.raises(ConfigError):
        CompileConfig(weight_bits=None, cell_bits=2)


def test_weight_precision_reruns_map_and_after_not_training(tmp_path, monkeypatch):
    """The stages are stubbed: only the fingerprints and the spec map receives are tested."""
    from types import SimpleNamespace

    from group_scissor import compress, physical, prune, report, stages

    def trained(*a, **k):
        return SimpleNamespace(test_accuracy=0.5, extra={"wires": {
            "wire_ratio": 1.0, "total": {"wires": 1}, "dense_baseline": {"wires": 1}}})

    specs = []
    monkeypatch.setattr(stages, "train_stage", trained)
    monkeypatch.setattr(compress, "clip_stage", trained)
    monkeypatch.setattr(prune, "prune_stage", trained)
    monkeypatch.setattr(physical, "map_stage", lambda m, c, spec, out: specs.append(spec) or {})
    monkeypatch.setattr(physical, "route_stage", lambda *a: {})
    monkeypatch.setattr(physical, "export_stage", lambda *a: {})
    monkeypatch.setattr(report, "build_report", lambda *a: {})
    monkeypatch.setattr(report, "write_report", lambda *a: None)

    def ran(*settings):
        log = []
        run_compile(CompileConfig.load(None, list(settings)), tmp_path, progress=False,
                    log=log.append)
        return [m.split("]")[0][1:] for m in log if "running" in m]

    assert ran() == ["1-train", "2-clip", "3-prune", "4-map", "5-route", "6-export"]
    assert ran() == []
    assert ran("weight_bits=8", "cell_bits=2") == ["4-map", "5-route", "6-export"]
    assert specs[-1].slices == 4
    assert ran("weight_bits=8", "cell_bits=2") == []
    assert ran("weight_bits=8", "cell_bits=4") == ["4-map", "5-route", "6-export"]
    assert specs[-1].slices == 2
    assert ran() == ["4-map", "5-route", "6-export"] and specs[-1].slices == 1


def test_report_states_the_weight_precision():
    from group_scissor.report import _precision

    assert _precision(CompileConfig().spec().to_dict()) == ""
    assert "(one cell each)" in _precision({"weight_bits": 6})
    xb = {**CompileConfig(weight_bits=8, cell_bits=2).spec().to_dict(), "slices": 4}
    assert "8-bit weights sliced over 4 crossbars of 2-bit cells per tile" in _precision(xb)
