import json
import re

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import models
from common.errors import ConfigError
from group_scissor.cli import app
from group_scissor.distill import Distillation, DistillConfig, distillation, soft_loss
from group_scissor.train import Batch, TrainConfig, Trainer
from tests.helpers import StopAt, fresh, small_digits

CFG = TrainConfig(epochs=2, batch_size=64, lr=0.02, seed=3)


@pytest.fixture(scope="module")
def digits():
    return small_digits(384)  # keep the tests quick


@pytest.fixture(scope="module")
def teacher(digits, tmp_path_factory):
    """A LeNet trained on digits, saved as a checkpoint: (module, path)."""
    out = tmp_path_factory.mktemp("teacher")
    torch.manual_seed(7)
    res = Trainer(models.get("lenet"), digits, TrainConfig(epochs=3, lr=0.02, seed=7), out,
                  progress=False).fit()
    return res.model, out / "checkpoint.pt"


def test_soft_loss_matches_the_textbook_formula():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 10, generator=g), torch.randn(5, 10, generator=g) * 3
    T = 2.5
    p_t, p_s = F.softmax(t / T, 1), F.softmax(s / T, 1)
    ref = (p_t * (p_t.log() - p_s.log())).sum(1).mean() * T * T
    assert torch.allclose(soft_loss(s, t, T), ref, atol=1e-6)
    assert soft_loss(t, t, T).abs().item() < 1e-6


def test_objective_is_the_blend_of_hard_and_soft_terms(teacher):
    model, _ = teacher
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.arange(8) % 10
    student = fresh()
    logits = student(x)
    ce = F.cross_entropy(logits, y)

    class FakeTrainer:
        batch = Batch(x, y, logits, ce)

    w, T = 0.7, 3.0
    total = ce + Distillation(model, T, w).penalty(FakeTrainer)
    with torch.no_grad():
        expected = (1 - w) * ce + w * soft_loss(logits, model(x), T)
    assert torch.allclose(total, expected, atol=1e-6)
    assert Distillation(model, T, 0.0).penalty(FakeTrainer) is None


def test_teacher_is_frozen_and_in_eval_mode(digits):
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5),
                                  torch.nn.Linear(28 * 28, 10)).train()
    cb = Distillation(teacher, 4.0, 0.9)
    Trainer(fresh(), digits, TrainConfig(epochs=1, lr=0.02, seed=3), callbacks=[cb],
            progress=False).fit()
    assert not teacher.training  # dropout off: the soft targets are deterministic
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_weight_zero_trains_exactly_like_no_teacher(digits, teacher):
    plain = Trainer(fresh(), digits, CFG, progress=False).fit().model.state_dict()
    cb = Distillation(teacher[0], 4.0, 0.0)
    kd = Trainer(fresh(), digits, CFG, callbacks=[cb], progress=False).fit().model.state_dict()
    assert all(torch.equal(plain[k], kd[k]) for k in plain)


def test_distillation_pulls_the_student_toward_the_teacher(digits, teacher):
    model, _ = teacher
    x = digits.test.x[:256]

    def gap(student):
        with torch.no_grad():
            return soft_loss(student(x), model(x), 4.0).item()

    cfg = TrainConfig(epochs=4, batch_size=64, lr=0.02, seed=3)
    plain = Trainer(fresh(), digits, cfg, progress=False).fit().model.eval()
    kd = Trainer(fresh(), digits, cfg, callbacks=[Distillation(model, 4.0, 1.0)],
                 progress=False).fit().model.eval()
    assert gap(kd) < 0.5 * gap(plain)  # measured: 0.04 against 2.4


def test_resume_with_a_teacher_is_bit_identical(digits, teacher, tmp_path):
    cfg = DistillConfig(str(teacher[1]), 4.0, 0.9)
    full = Trainer(fresh(), digits, CFG, tmp_path / "full", progress=False,
                   callbacks=[distillation(cfg, "lenet")]).fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer(fresh(), digits, CFG, tmp_path / "cut", progress=False,
                callbacks=[distillation(cfg, "lenet"), StopAt(1)]).fit()
    resumed = Trainer(fresh(seed=99), digits, CFG, tmp_path / "cut", progress=False,
                      callbacks=[distillation(cfg, "lenet")]).fit(resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kw", [{"temperature": 0.0}, {"temperature": float("nan")},
                                {"weight": -0.1}, {"weight": 1.5}, {"weight": True},
                                {"weight": "0.5"}])
def test_bad_distill_config_is_rejected(kw):
    with pytest.raises(ValueError):
        DistillConfig("t.pt", **kw)


def test_missing_teacher_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="--teacher"):
        distillation(DistillConfig(str(tmp_path / "nope.pt")), "lenet")


def test_teacher_of_another_model_is_a_clear_error(teacher):
    with pytest.raises(ConfigError, match="same registered model"):
        distillation(DistillConfig(str(teacher[1])), "convnet")


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_clip_and_prune_cli_take_a_teacher(teacher, tmp_path):
    _, path = teacher
    runner = CliRunner()
    common = ["--model", "lenet", "--dataset", "digits", "--epochs", "2", "--fine-tune-epochs", "1",
              "--quiet",
              "--teacher", str(path), "--distill-weight", "0.5", "--distill-temperature", "3"]
    r = runner.invoke(app, ["clip", *common, "--checkpoint", str(path), "--tolerance", "0.05",
                            "--clip-interval", "20", "--out", str(tmp_path / "clip")])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "clip" / "config.json").read_text())
    assert cfg["distill"] == {"teacher": str(path), "temperature": 3.0, "weight": 0.5}
    r = runner.invoke(app, ["prune", *common, "--checkpoint", str(tmp_path / "clip" /
                            "checkpoint.pt"), "--lambda", "0.05", "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "p" / "config.json").read_text())["distill"]["weight"] == 0.5
    r = runner.invoke(app, ["clip", "--model", "lenet", "--dataset", "digits", "--quiet",
                            "--teacher", str(tmp_path / "missing.pt"), "--distill-weight", "0.9",
                            "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["clip", *common[:-4], "--distill-weight", "2",
                            "--out", str(tmp_path / "bad2")])
    assert r.exit_code == 2 and "weight" in r.output
    # resuming under other distillation settings would change the objective mid-run
    r = runner.invoke(app, ["clip", *common[:-2], "--distill-temperature", "2", "--checkpoint",
                            str(path), "--tolerance", "0.05", "--clip-interval", "20",
                            "--out", str(tmp_path / "clip"), "--resume"])
    assert r.exit_code == 2 and "settings (distill.temperature: 3.0 -> 2.0)" in r.output
    r = runner.invoke(app, ["prune", *common[:-6], "--checkpoint", str(tmp_path / "clip" /
                            "checkpoint.pt"), "--lambda", "0.05", "--out", str(tmp_path / "p"),
                            "--resume"])
    assert r.exit_code == 2, r.output
    assert re.search(r"started with other settings \(distill\.teacher: '[^']+' -> None; "
                     r"distill\.temperature: 3\.0 -> None; distill\.weight: 0\.5 -> None\)",
                     r.output), r.output
