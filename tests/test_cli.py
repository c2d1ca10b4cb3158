"""The CLI end to end on the embedded data, and every bad input it must refuse cleanly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from group_scissor.cli import app
from tests.test_data import fake_mnist

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *needles):
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 2, text
    assert "Traceback" not in text and result.exception is None or isinstance(
        result.exception, SystemExit), text
    for n in needles:
        assert n in text, text


def test_help_lists_every_command():
    out = run("--help").output
    for cmd in ("train", "clip", "prune", "compile", "models", "map", "route", "export", "evaluate"):
        assert cmd in out


def test_train_on_digits_writes_checkpoint_and_metrics(tmp_path):
    r = run("train", "--model", "lenet", "--dataset", "digits", "--epochs", 1, "--out", tmp_path,
            "--quiet")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m) >= {"model", "dataset", "epochs", "test_accuracy"}
    assert 0 <= m["test_accuracy"] <= 1 and m["epochs"][0]["epoch"] == 1
    torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    # a second run into the same folder refuses to clobber it ...
    assert_clean_error(run("train", "--dataset", "digits", "--epochs", 1, "--out", tmp_path),
                       "--resume")
    # ... and --resume with more epochs continues it
    r = run("train", "--dataset", "digits", "--epochs", 2, "--out", tmp_path, "--resume",
            "--quiet")
    assert r.exit_code == 0, r.output


def test_unknown_model(tmp_path):
    assert_clean_error(run("train", "--model", "resnet", "--dataset", "digits", "--out", tmp_path),
                       "unknown model 'resnet'", "lenet")


def test_unknown_dataset(tmp_path):
    assert_clean_error(run("train", "--dataset", "imagenet", "--out", tmp_path),
                       "unknown dataset 'imagenet'")


def test_missing_data_dir(tmp_path):
    assert_clean_error(run("train", "--dataset", "mnist", "--data-dir", tmp_path / "none",
                           "--out", tmp_path / "o"), "does not exist")


def test_truncated_idx(tmp_path):
    raw = fake_mnist(tmp_path / "d")
    f = raw / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-8])
    assert_clean_error(run("train", "--dataset", "mnist", "--data-dir", tmp_path / "d",
                           "--out", tmp_path / "o"), "t10k-labels-idx1-ubyte.gz")


def test_corrupt_checkpoint(tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 10)
    assert_clean_error(run("train", "--dataset", "digits", "--checkpoint", bad,
                           "--out", tmp_path / "o"), "corrupt")


def test_checkpoint_that_is_not_pickled_torch(tmp_path):
    bad = tmp_path / "text.pt"
    bad.write_text("root:x:0:0:root:/root:/bin/bash\n")
    assert_clean_error(run("train", "--dataset", "digits", "--checkpoint", bad,
                           "--out", tmp_path / "o"), "corrupt")


def test_model_that_does_not_fit_the_data(tmp_path):
    assert_clean_error(run("train", "--model", "convnet", "--dataset", "digits",
                           "--out", tmp_path), "(3, 32, 32)", "(1, 28, 28)")


def test_bad_setting(tmp_path):
    assert_clean_error(run("train", "--dataset", "digits", "--lr", -1, "--out", tmp_path),
                       "lr must be a positive number")


def test_console_script_error_has_no_traceback(tmp_path):
    p = subprocess.run([sys.executable, "-m", "group_scissor", "train", "--model", "nope",
                        "--dataset", "digits", "--out", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "unknown model" in p.stderr


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node=2", "-m", "group_scissor", "train", "--model", "lenet",
                        "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path), "--quiet"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert len(m["epochs"]) == 1 and m["test_accuracy"] > 0.5
    assert p.stdout.count("test accuracy") == 1  # only rank 0 reports
