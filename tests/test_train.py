import json
import math
from dataclasses import replace

import pytest
import torch

from group_scissor.resume import SCHEMA_VERSION
from group_scissor.train import Callback, TrainConfig, Trainer, TrainingDiverged
from models.checkpoint import CheckpointError, load_checkpoint
from tests.helpers import StopAt, fresh, small_digits

CFG = TrainConfig(epochs=3, batch_size=64, lr=0.02, seed=3)


@pytest.fixture(scope="module")
def digits():
    return small_digits(512)  # keep the tests quick


def test_training_learns_and_writes_artifacts(digits, tmp_path):
    res = Trainer(fresh(), digits, CFG, tmp_path, meta={"model": "lenet", "dataset": "digits"},
                  progress=False).fit()
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in m["epochs"]] == [1, 2, 3]
    assert m["model"] == "lenet" and m["dataset"] == "digits"
    assert 0.8 < m["test_accuracy"] <= 1 and m["test_accuracy"] == res.test_accuracy
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(state) == set(fresh().state_dict())


def test_same_seed_same_weights(digits):
    a = Trainer(fresh(), digits, CFG, progress=False).fit().model.state_dict()
    b = Trainer(fresh(), digits, CFG, progress=False).fit().model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("k", [1, 2])
def test_resume_after_kill_is_bit_identical(digits, tmp_path, k):
    full = Trainer(fresh(), digits, CFG, tmp_path / "full", progress=False).fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer(fresh(), digits, CFG, tmp_path / "cut", callbacks=[StopAt(k)],
                progress=False).fit()
    assert len(json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"]) == k
    resumed = Trainer(fresh(seed=99), digits, CFG, tmp_path / "cut", progress=False).fit(
        resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    def strip(h):
        return [{k: v for k, v in e.items() if "seconds" not in k} for e in h]

    assert strip(resumed.history) == strip(full.history)


def test_schedules():
    cos = TrainConfig(lr=1.0, schedule="cosine")
    assert cos.lr_at(0, 100, 10) == 1.0 and cos.lr_at(50, 100, 10) == pytest.approx(0.5)
    step = TrainConfig(lr=1.0, schedule="step", milestones=(0.5, 0.75), gamma=0.1)
    assert [step.lr_at(s, 100, 10) for s in (49, 50, 74, 75)] == pytest.approx([1, .1, .1, .01])
    warm = TrainConfig(lr=1.0, schedule="constant", warmup_epochs=1)
    assert warm.lr_at(4, 100, 10) == pytest.approx(0.5)
    # 10 epochs of 10 steps, restart at epoch 6 from 0.1: cosine over 60 steps, then over 40
    sgdr = TrainConfig(lr=1.0, epochs=10, restart_epoch=6, restart_lr=0.1, warmup_epochs=1)
    assert sgdr.lr_at(4, 100, 10) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 4 / 60)))
    assert sgdr.lr_at(30, 100, 10) == pytest.approx(0.5)
    assert [sgdr.lr_at(s, 100, 10) for s in (60, 80)] == pytest.approx([0.1, 0.05])
    # the same restart warming up over its first epoch (10 steps) instead of jumping to 0.1
    warm_restart = replace(sgdr, restart_warmup_epochs=1)
    assert warm_restart.lr_at(30, 100, 10) == pytest.approx(0.5)  # first cycle unchanged
    assert warm_restart.lr_at(60, 100, 10) == pytest.approx(0.1 / 10)
    assert warm_restart.lr_at(64, 100, 10) == pytest.approx(
        0.05 * (1 + math.cos(math.pi * 4 / 40)) * 5 / 10)
    assert warm_restart.lr_at(80, 100, 10) == pytest.approx(0.05)


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(lr=-1), dict(schedule="linear"),
                                 dict(momentum=1.5), dict(batch_size=0),
                                 dict(epochs=5, restart_epoch=5, restart_lr=0.1),
                                 dict(restart_epoch=2), dict(restart_warmup_epochs=1),
                                 dict(epochs=10, restart_epoch=6, restart_lr=0.1,
                                      restart_warmup_epochs=4),
                                 dict(epochs=10, restart_epoch=6, restart_lr=0.1,
                                      restart_warmup_epochs=-1)])
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError, match="TrainConfig"):
        TrainConfig(**bad)


class NanAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def penalty(self, trainer):
        return torch.tensor(float("nan")) if trainer.epoch == self.epoch else None


def test_divergence_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    with pytest.raises(TrainingDiverged, match="epoch 2.*last good checkpoint \\(epoch 1\\)"):
        Trainer(fresh(), digits, CFG, tmp_path, callbacks=[NanAt(1)], progress=False).fit()
    state = load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in state.values())
    assert len(json.loads((tmp_path / "metrics.json").read_text())["epochs"]) == 1


def test_divergence_names_the_learning_rate_of_that_step(digits, tmp_path):
    # a warm restart (no warm-up) jumps to restart_lr: the message must blame that, not lr
    cfg = replace(CFG, epochs=3, restart_epoch=1, restart_lr=0.123)
    with pytest.raises(TrainingDiverged, match=r"it was 0\.123 at that step; peak 0\.02, 0\.123 "
                                               r"after the restart"):
        Trainer(fresh(), digits, cfg, tmp_path, callbacks=[NanAt(1)], progress=False).fit()


def test_a_resume_pt_of_another_settings_schema_is_refused(digits, tmp_path):
    # no compatibility path: a run saved under another schema is started over (--force)
    with pytest.raises(KeyboardInterrupt):
        Trainer(fresh(), digits, CFG, tmp_path, callbacks=[StopAt(1)], progress=False).fit()
    ckpt = torch.load(tmp_path / "resume.pt", weights_only=False)
    assert ckpt["schema_version"] == SCHEMA_VERSION
    del ckpt["schema_version"]
    torch.save(ckpt, tmp_path / "resume.pt")
    with pytest.raises(CheckpointError, match=r"settings schema 1, this group-scissor uses "
                                              r"schema \d+\. Start the run over with --force"):
        Trainer(fresh(), digits, CFG, tmp_path, progress=False).fit(resume=True)


def test_resume_under_another_run_is_refused_and_config_json_kept(digits, tmp_path):
    run = {"stage": "prune", "model": "lenet", "prune": TrainConfig(lr=0.5), "delete_step": 7}
    with pytest.raises(KeyboardInterrupt):
        Trainer(fresh(), digits, CFG, tmp_path, callbacks=[StopAt(1)], progress=False,
                run=run).fit()
    written = (tmp_path / "config.json").read_text()
    assert json.loads(written)["prune"]["lr"] == 0.5 and json.loads(written)["train"]["seed"] == 3
    assert load_checkpoint(tmp_path / "resume.pt")["run"]["delete_step"] == 7
    for other, needle in (({**run, "prune": TrainConfig(lr=0.25)}, r"prune\.lr: 0\.5 -> 0\.25"),
                          ({**run, "delete_step": 9}, "delete_step: 7 -> 9"),
                          ({**run, "stage": "clip"}, "stage: 'prune' -> 'clip'")):
        with pytest.raises(CheckpointError, match=needle):
            Trainer(fresh(), digits, CFG, tmp_path, progress=False, run=other).fit(resume=True)
        assert (tmp_path / "config.json").read_text() == written  # not rewritten by a refusal
    assert Trainer(fresh(), digits, CFG, tmp_path, progress=False, run=run).fit(resume=True)


def test_resume_into_another_model_is_a_clear_error(digits, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        Trainer(fresh(), digits, CFG, tmp_path, callbacks=[StopAt(1)], progress=False,
                meta={"model": "lenet"}).fit()
    other = fresh()
    other.fc2 = torch.nn.Linear(500, 12)  # another head: the saved state does not fit
    with pytest.raises(CheckpointError, match=r"its model does not fit this one \(model "
                                              r"'lenet'\): size mismatch for fc2\.weight"):
        Trainer(other, digits, CFG, tmp_path, progress=False,
                meta={"model": "lenet"}).fit(resume=True)
