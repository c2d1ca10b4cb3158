"""Run folders and bad inputs: one writer per --out, a clear error (never a traceback) for every
input the user can fix, raised before the work it would waste, and a warning when a setting
silently does nothing."""

import errno
import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from common.errors import ConfigError, UserError
from common.io import save_torch
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


def missing_mnist(tmp_path):
    """Arguments naming a data set that is not there: an error about anything else came first."""
    return dict(model_name="lenet", dataset="mnist", data_dir=tmp_path / "no-data")


# ---- 1. one writer per run folder ------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from group_scissor.stages import train_stage
from group_scissor.train import Callback, TrainConfig

class Hold(Callback):
    def on_train_begin(self, trainer):
        print("training", flush=True)
        time.sleep(600)

train_stage("lenet", "digits", None, TrainConfig(epochs=1), Path(sys.argv[1]), progress=False,
            callbacks=[Hold()])
"""


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_a_second_run_into_a_busy_folder_fails_at_once_and_a_killed_one_does_not_block(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "training"
        with pytest.raises(UserError, match=rf"in use by another run \(pid {holder.pid}\).*wait.*--out"):
            train_stage("lenet", "digits", None, ONE, out, progress=False)
        assert_clean_error(run("train", "--dataset", "digits", "--epochs", 1, "--out", out,
                               "--force", "--quiet"), f"pid {holder.pid}")
        for stage in (clip_stage, prune_stage):
            cfg = ClipStageConfig() if stage is clip_stage else PruneConfig()
            with pytest.raises(UserError, match=f"pid {holder.pid}"):
                stage("lenet", "digits", None, TWO, cfg, out, force=True, progress=False)
        assert not (out / "checkpoint.pt").exists()  # nobody wrote into the holder's folder
    finally:
        holder.kill()  # SIGKILL: no clean-up, the lock file stays behind
        holder.wait()
    assert (out / ".lock").read_text().split() == [str(holder.pid)]  # stale, informative only
    res = train_stage("lenet", "digits", None, ONE, out, progress=False)
    assert res.history and (out / "checkpoint.pt").is_file()
    assert not (out / ".lock").exists()  # released (and removed) at the end


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        train_stage("lenet", "digits", None, TWO, tmp_path / "a", progress=False,
                    callbacks=[StopAt(1)])
    assert not (tmp_path / "a" / ".lock").exists()
    assert train_stage("lenet", "digits", None, TWO, tmp_path / "a", resume=True,
                       progress=False).history
    # a run refused before writing anything leaves no folder behind
    with pytest.raises(UserError, match="shape"):
        train_stage("convnet", "digits", None, ONE, tmp_path / "b", progress=False)
    assert not (tmp_path / "b").exists()


def test_only_rank_0_takes_the_lock_under_torchrun(tmp_path, monkeypatch):
    from group_scissor.stages import run_folder

    (tmp_path / ".lock").touch()
    with open(tmp_path / ".lock") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # held by this open file: another holder for run_folder
        with pytest.raises(UserError, match="in use"), run_folder(tmp_path, False, False):
            pass
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", "1")
        with run_folder(tmp_path, False, False):
            pass


# ---- 2. --resume --force ------------------------------------------------------------------------

def test_resume_with_force_is_refused_before_anything_is_deleted(tmp_path):
    (tmp_path / "resume.pt").write_bytes(b"the run's state")
    with pytest.raises(ConfigError, match="--resume continues.*--force starts over.*pick one"):
        train_stage("lenet", "digits", None, ONE, tmp_path, resume=True, force=True,
                    progress=False)
    assert_clean_error(run("train", "--dataset", "digits", "--out", tmp_path, "--resume",
                           "--force"), "pick one")
    assert (tmp_path / "resume.pt").read_bytes() == b"the run's state"


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

def unwritable(tmp_path) -> Path:
    if os.geteuid() != 0:
        (tmp_path / "ro").mkdir(mode=0o500)
        return tmp_path / "ro" / "run"
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no folder this (root) user cannot write into")
    return Path("/sys/kernel/group-scissor-test/run")  # EPERM, even for root


@pytest.mark.parametrize("where", ["unwritable", "long name"])
def test_an_out_folder_that_cannot_be_made_is_refused_before_loading_data(tmp_path, where):
    out = unwritable(tmp_path) if where == "unwritable" else tmp_path / ("x" * 300) / "run"
    needle = "cannot create" if where == "unwritable" else "longer than"
    for call in (lambda: train_stage(**missing_mnist(tmp_path), cfg=ONE, out=out),
                 lambda: clip_stage(**missing_mnist(tmp_path), train_cfg=TWO,
                                    clip_cfg=ClipStageConfig(), out=out),
                 lambda: prune_stage(**missing_mnist(tmp_path), train_cfg=TWO,
                                     prune_cfg=PruneConfig(), out=out)):
        with pytest.raises(UserError, match=needle):
            call()
    assert_clean_error(run("train", "--dataset", "digits", "--out", out), "--out")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
                                  errno.ENAMETOOLONG])
def test_a_failed_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch, code):
    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    target = tmp_path / "checkpoint.pt"
    with pytest.raises(UserError, match=str(target)) as e:
        save_torch(target, {"w": torch.zeros(3)})
    assert isinstance(e.value, OSError) and e.value.errno == code
    assert os.listdir(tmp_path) == []


def test_other_write_errors_stay_plain(tmp_path, monkeypatch):
    def fail(fd):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError) as e:
        save_torch(tmp_path / "x.pt", {})
    assert not isinstance(e.value, UserError) and os.listdir(tmp_path) == []


def test_disk_full_while_writing_a_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    real = os.fsync

    def fsync(fd):  # the disk fills up as the resume state is written
        if ".resume.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    assert_clean_error(run("train", "--dataset", "digits", "--epochs", 1, "--batch-size", 256,
                           "--out", tmp_path, "--quiet"), "no space left", "resume.pt")
    assert sorted(os.listdir(tmp_path)) == ["config.json"]  # no partial file, no temporary


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


def test_an_unknown_layer_lambda_is_refused_before_loading_data(tmp_path):
    cfg = PruneConfig(lambda_={"*": 0.1, "bogus": 1.0, "fc1": 0.2})
    with pytest.raises(ConfigError, match=r"'bogus'.*conv1.*fc1"):
        prune_stage(**missing_mnist(tmp_path), train_cfg=TWO, prune_cfg=cfg, out=tmp_path / "o")
    assert_clean_error(run("prune", "--dataset", "digits", "--lambda", "*=0.1,bogus=1",
                           "--fine-tune-epochs", 1,
                           "--epochs", 2, "--out", tmp_path / "p"), "bogus", "fc2")


@pytest.mark.parametrize("crossbar,encoding", [("0x0", "differential"), ("64x64", "bogus")])
def test_a_bad_crossbar_is_refused_before_loading_data(tmp_path, crossbar, encoding):
    for stage, cfg in ((clip_stage, ClipStageConfig()), (prune_stage, PruneConfig())):
        with pytest.raises(ConfigError, match="CrossbarSpec"):
            stage(**missing_mnist(tmp_path), train_cfg=TWO, out=tmp_path / "o",
                  crossbar=crossbar, encoding=encoding, **{
                      "clip_cfg" if stage is clip_stage else "prune_cfg": cfg})


# ---- 5. settings that would silently do nothing ----------------------------------------------------

def test_a_clip_interval_longer_than_the_run_warns(tmp_path):
    with pytest.warns(UserWarning, match=r"never clip.*clip.interval \(500\).*6 optimizer steps"):
        clip_stage("lenet", "digits", None, ONE, ClipStageConfig(clip_interval=500),
                   tmp_path, progress=False)


def test_a_group_lasso_that_deletes_nothing_warns(tmp_path):
    cfg = PruneConfig(lambda_=0.0, threshold=0.0, fine_tune_epochs=1)
    with pytest.warns(UserWarning, match="deleted no group.*Raise --lambda"):
        res = prune_stage("lenet", "digits", None, TWO, cfg, tmp_path, progress=False)
    assert res.extra["wires"]["total"]["wires"] == res.extra["wires"]["before"]["wires"]
