"""Run folders and bad inputs: one writer per --out, a clear error (never a traceback) for every
input the user can fix, raised before the work it would waste, and a warning when a setting
silently does nothing."""

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from common.errors import ConfigError, UserError
from group_scissor.cli import app
from group_scissor.compress import ClipStageConfig, clip_stage
from group_scissor.config import CompileConfig
from group_scissor.distill import DistillConfig
from group_scissor.prune import PruneConfig, prune_stage
from group_scissor.stages import train_stage
from group_scissor.train import TrainConfig, Trainer
from models.checkpoint import CheckpointError
from models.lowrank import to_low_rank
from tests.helpers import StopAt, fresh, small_digits

REPO = Path(__file__).resolve().parents[1]
ONE = TrainConfig(epochs=1, batch_size=256, lr=0.02)
TWO = TrainConfig(epochs=2, batch_size=256, lr=0.02)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    for n in needles:
        assert n in result.output, result.output


# ---- 3./4. checkpoints: NaN, directories, damaged resume state -----------------------------------

def nan_checkpoint(tmp_path, key="fc1.weight", value=float("nan"), low_rank=False):
    model = fresh()
    if low_rank:
        to_low_rank(model, ["fc1"])
    state = model.state_dict()
    state[key].view(-1)[0] = value
    path = tmp_path / f"bad-{key}.pt"
    torch.save(state, path)
    return path


def test_clip_of_a_nan_checkpoint_names_the_tensors(tmp_path):
    bad = nan_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"NaN or infinite.*fc1\.weight"):
        clip_stage("lenet", "digits", None, TWO, ClipStageConfig(), tmp_path / "o",
                   checkpoint=bad, progress=False)
    r = run("clip", "--dataset", "digits", "--checkpoint", bad, "--out", tmp_path / "o2")
    assert_clean_error(r, "fc1.weight")
    assert "training diverged" not in r.output


def test_a_nan_bias_or_low_rank_factor_is_refused_at_load(tmp_path):
    with pytest.raises(CheckpointError, match=r"conv1\.bias"):
        train_stage("lenet", "digits", None, ONE, tmp_path / "o", progress=False,
                    checkpoint=nan_checkpoint(tmp_path, "conv1.bias"))
    with pytest.raises(CheckpointError, match=r"fc1\.U\.weight"):
        prune_stage("lenet", "digits", None, TWO, PruneConfig(), tmp_path / "p", progress=False,
                    checkpoint=nan_checkpoint(tmp_path, "fc1.U.weight", float("inf"),
                                              low_rank=True))


def test_a_nan_teacher_is_not_reported_as_divergence_or_another_model(tmp_path):
    teacher = nan_checkpoint(tmp_path, "fc2.weight", float("-inf"))
    with pytest.raises(UserError, match=r"--teacher.*NaN or infinite.*fc2\.weight") as e:
        clip_stage("lenet", "digits", None, TWO, ClipStageConfig(), tmp_path / "o",
                   distill=DistillConfig(str(teacher)), progress=False)
    assert "training diverged" not in str(e.value) and "same registered model" not in str(e.value)


def test_a_directory_where_a_file_belongs_is_named_a_directory(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        train_stage("lenet", "digits", None, ONE, tmp_path / "o", checkpoint=tmp_path / "run",
                    progress=False)
    with pytest.raises(UserError, match="is a directory"):
        clip_stage("lenet", "digits", None, TWO, ClipStageConfig(), tmp_path / "o",
                   distill=DistillConfig(str(tmp_path / "run")), progress=False)
    with pytest.raises(ConfigError, match="is a directory"):
        CompileConfig.load(tmp_path / "run")


@pytest.fixture
def stopped_run(tmp_path):
    """A run folder whose resume.pt holds 1 of 2 epochs."""
    data = small_digits(128)
    with pytest.raises(KeyboardInterrupt):
        Trainer(fresh(), data, TWO, tmp_path, callbacks=[StopAt(1)], progress=False).fit()
    return data, tmp_path


@pytest.mark.parametrize("damage", ["no optimizer", "no config", "history not a list",
                                    "checkpoint.pt copied over it", "bad optimizer state"])
def test_a_damaged_resume_state_is_a_clear_error(stopped_run, damage):
    data, out = stopped_run
    state = torch.load(out / "resume.pt", weights_only=True)
    if damage == "no optimizer":
        del state["optimizer"]
    elif damage == "no config":
        del state["config"]
    elif damage == "history not a list":
        state["history"] = 3
    elif damage == "checkpoint.pt copied over it":
        state = torch.load(out / "checkpoint.pt", weights_only=True)
    else:
        state["optimizer"] = {"state": {}, "param_groups": [{"params": [0]}]}
    torch.save(state, out / "resume.pt")
    with pytest.raises(CheckpointError, match=r"resume\.pt.*(--force|another --out)"):
        Trainer(fresh(), data, TWO, out, progress=False).fit(resume=True)


# ---- 3. output folders and disk errors --------------------------------------------------------


def test_a_deeply_nested_toml_config_is_a_config_error(tmp_path):
    cfg = tmp_path / "chip.toml"
    cfg.write_text("model = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match="nested"):
        CompileConfig.load(cfg)
    with pytest.raises(ConfigError, match="nested"):
        CompileConfig.load(None, ["prune.lambda_=" + "{a = " * 5000 + "1" + "}" * 5000])


# ---- 4. settings checked before any data or training -------------------------------------------

def test_seed_out_of_range_is_a_config_error(tmp_path):
    for seed in (2**70, 2**63, -1):
        with pytest.raises(ConfigError, match="seed"):
            TrainConfig(seed=seed)
    assert_clean_error(run("train", "--dataset", "digits", "--seed", 2**70, "--out", tmp_path),
                       "seed")
    # the largest valid seed trains (batch order and augmentation seeds derive from it)
    cfg = TrainConfig(epochs=1, batch_size=256, seed=2**63 - 1)
    assert Trainer(fresh(), small_digits(64), cfg, progress=False).fit().history
