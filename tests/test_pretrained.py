"""Shipped checkpoints: named without a path, verified by sha256, checked against their ledger."""

import json

import pytest
import torch
from typer.testing import CliRunner

import models
from group_scissor.cli import app
from models import pretrained
from models.checkpoint import CheckpointError, load_model


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A manifest with one small LeNet checkpoint, in a folder of the test's own."""
    monkeypatch.setattr(pretrained, "FOLDER", tmp_path)
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "manifest.json")
    torch.manual_seed(0)
    path = tmp_path / "lenet-dense.pt"
    torch.save(models.get("lenet").state_dict(), path)
    entry = {"model": "lenet", "file": path.name, "sha256": pretrained.sha256(path),
             "bytes": path.stat().st_size, "config": {}, "command": "test",
             "ledger": {"experiment": "train_dense", "row": "lenet-dense",
                        "metrics": {"test_accuracy": 0.1}}}
    (tmp_path / "manifest.json").write_text(json.dumps({"checkpoints": {"lenet:dense": entry}}))
    return path


def test_a_name_loads_the_verified_file(shipped):
    model = load_model("lenet", "lenet:dense")
    want = torch.load(shipped, weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in want.items())
    assert pretrained.available() == ["lenet:dense"]


def test_a_corrupt_missing_or_unknown_checkpoint_is_a_clear_error(shipped):
    with pytest.raises(CheckpointError, match="of model 'lenet', not 'convnet'"):
        load_model("convnet", "lenet:dense")
    with pytest.raises(pretrained.PretrainedError, match="no shipped checkpoint named 'lenet:x'"):
        load_model("lenet", "lenet:x")
    data = bytearray(shipped.read_bytes())
    data[-10] ^= 0xFF
    shipped.write_bytes(bytes(data))
    with pytest.raises(pretrained.PretrainedError, match="does not match the sha256"):
        load_model("lenet", "lenet:dense")
    shipped.unlink()
    with pytest.raises(pretrained.PretrainedError, match="is missing"):
        load_model("lenet", "lenet:dense")


def test_the_commands_take_a_shipped_name(shipped, tmp_path):
    r = CliRunner().invoke(app, ["map", "--checkpoint", "lenet:dense", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["models"])
    assert "lenet:dense" in r.output
    r = CliRunner().invoke(app, ["map", "--model", "convnet", "--checkpoint", "lenet:dense",
                                 "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "--model lenet" in r.output


def test_the_shipped_manifest_holds_its_ledger_rows():
    """Every shipped checkpoint's recorded figures are its ledger row's (no stale copy)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import ledger

    for name, e in pretrained.manifest().items():
        row = ledger.row(e["ledger"]["experiment"], e["ledger"]["row"])
        assert row["metrics"] == e["ledger"]["metrics"], name
        assert ledger.headline(e["ledger"]["experiment"], e["model"])["name"] == row["name"], name
        pretrained.resolve(name)  # the file is there and intact


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_compile_starts_from_a_shipped_baseline(tmp_path):
    if "lenet:dense" not in pretrained.available():
        pytest.skip("no shipped lenet:dense")
    from group_scissor.config import CompileConfig
    from group_scissor.pipeline import compile as run_compile
    from tests.test_contracts import TINY

    log: list[str] = []
    cfg = CompileConfig.load(None, TINY + ["baseline_checkpoint=lenet:dense", "distill_weight=0.5"])
    rep = run_compile(cfg, tmp_path, progress=False, log=log.append)
    rec = json.loads((tmp_path / "1-train" / "stage.json").read_text())
    assert rec["metrics"]["checkpoint"] == "lenet:dense" and rep["accuracy"]["baseline"] > 0.5
    assert json.loads((tmp_path / "2-clip" / "config.json").read_text())["distill"]["teacher"] == \
        "lenet:dense"
