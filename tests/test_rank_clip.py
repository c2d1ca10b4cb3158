import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import models
from group_scissor.data import load_dataset
from group_scissor.lowrank_reg import ForceRegularization, NuclearNorm
from group_scissor.rank_clip import ClipConfig, RankClipping, clip_pair, rank_for_tolerance
from group_scissor.train import TrainConfig, Trainer
from models.checkpoint import load_model
from models.lowrank import LowRankConv2d, LowRankLinear, low_rank_layers, merge, ranks, to_low_rank


def lenet(seed=0):
    torch.manual_seed(seed)
    return models.get("lenet")


def test_full_rank_conversion_computes_the_same_and_merges_back():
    net = lenet()
    x = torch.randn(4, 1, 28, 28)
    ref = net(x)
    to_low_rank(net, ["conv1", "conv2", "fc1"])
    assert isinstance(net.conv1, LowRankConv2d) and isinstance(net.fc1, LowRankLinear)
    assert ranks(net) == {"conv1": 20, "conv2": 50, "fc1": 500}
    assert net.conv2.U.kernel_size == (5, 5) and net.conv2.V.kernel_size == (1, 1)
    assert net.conv2.U.bias is None and net.conv2.V.bias is not None
    torch.testing.assert_close(net(x), ref, atol=1e-4, rtol=1e-4)
    merge(net)
    assert not low_rank_layers(net) and isinstance(net.fc1, nn.Linear)
    torch.testing.assert_close(net(x), ref, atol=1e-4, rtol=1e-4)


def test_tolerance_zero_leaves_outputs_unchanged():
    net = to_low_rank(lenet(), ["conv1", "conv2", "fc1"])
    x = torch.randn(4, 1, 28, 28)
    ref = net(x)
    for pair in low_rank_layers(net).values():
        assert clip_pair(pair, 0.0)[1] == pair.rank
    torch.testing.assert_close(net(x), ref, atol=0, rtol=0)


def test_clip_gives_the_truncated_svd_of_the_previous_product():
    torch.manual_seed(1)
    pair = LowRankLinear(40, 30, rank=30)
    before = pair.product().detach().double()
    old, new = clip_pair(pair, 0.2)
    q, s, rh = torch.linalg.svd(before, full_matrices=False)
    assert new == rank_for_tolerance(s, 0.2) < old == 30
    expect = (q[:, :new] * s[:new]) @ rh[:new]
    torch.testing.assert_close(pair.product().detach().double(), expect, atol=1e-5, rtol=1e-5)
    dropped = (s[new:] ** 2).sum() / (s**2).sum()
    assert dropped <= 0.2 < (s[new - 1:] ** 2).sum() / (s**2).sum()


def test_rank_for_tolerance_exact():
    s = torch.tensor([3.0, 2.0, 1.0])  # energies 9, 4, 1 of 14
    assert rank_for_tolerance(s, 0.0) == 3
    assert rank_for_tolerance(s, 1 / 14) == 2
    assert rank_for_tolerance(s, 5 / 14) == 1
    assert rank_for_tolerance(torch.zeros(3), 0.1) == 1


def test_momentum_is_carried_through_a_clip():
    """The velocity of the product U V is preserved to first order by the transport."""
    torch.manual_seed(2)
    pair = LowRankLinear(20, 16, rank=16)
    opt = torch.optim.SGD(pair.parameters(), lr=0.1, momentum=0.9)
    pair(torch.randn(8, 20)).square().sum().backward()
    opt.step()
    # make the product exactly rank 4 so the clip loses nothing
    with torch.no_grad():
        pair.V.weight[:, 4:] = 0
    u0, v0 = pair.u_matrix().detach().clone(), pair.v_matrix().detach().clone()
    bu = opt.state[pair.U.weight]["momentum_buffer"].T.clone()
    bv = opt.state[pair.V.weight]["momentum_buffer"].T.clone()
    bv[4:] = 0  # velocity inside the kept subspace
    opt.state[pair.V.weight]["momentum_buffer"] = bv.T.clone()
    clip_pair(pair, 1e-9, opt)
    assert pair.rank == 4
    nbu = opt.state[pair.U.weight]["momentum_buffer"].T
    nbv = opt.state[pair.V.weight]["momentum_buffer"].T
    d_before = bu @ v0 + u0 @ bv
    d_after = nbu @ pair.v_matrix().detach() + pair.u_matrix().detach() @ nbv
    torch.testing.assert_close(d_after, d_before, atol=1e-4, rtol=1e-4)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    d.train.x, d.train.y = d.train.x[:384], d.train.y[:384]
    return d


CFG = TrainConfig(epochs=3, batch_size=32, lr=0.02, seed=0)


def clipped_trainer(digits, out, seed=0):
    net = to_low_rank(lenet(seed), ["conv1", "conv2", "fc1"])
    cb = RankClipping(ClipConfig(tolerance=0.05, clip_interval=5))
    return Trainer(net, digits, CFG, out, callbacks=[cb], progress=False), cb


def test_ranks_never_grow_and_history_is_saved(digits, tmp_path):
    trainer, cb = clipped_trainer(digits, tmp_path)
    trainer.fit()
    hist = [h["ranks"] for h in cb.history]
    assert len(hist) > 3
    for a, b in zip(hist, hist[1:], strict=False):
        assert all(b[k] <= a[k] for k in a)
    assert hist[-1]["fc1"] < 500
    # the checkpoint reloads into the clipped structure
    net = load_model("lenet", tmp_path / "checkpoint.pt")
    assert ranks(net) == hist[-1]


class Stop(Exception):
    pass


def test_resume_in_the_middle_of_clipping_is_identical(digits, tmp_path):
    full, cb_full = clipped_trainer(digits, tmp_path / "full")
    full.fit()
    cut, _ = clipped_trainer(digits, tmp_path / "cut")

    class StopAfter1:
        name = "stop"

        def __getattr__(self, item):
            return lambda *a, **k: None

        def on_epoch_begin(self, trainer):
            if trainer.epoch == 1:
                raise Stop

    cut.callbacks.append(StopAfter1())
    with pytest.raises(Stop):
        cut.fit()
    resumed, cb = clipped_trainer(digits, tmp_path / "cut", seed=5)
    resumed.fit(resume=True)
    assert cb.history == cb_full.history
    a, b = full.module.state_dict(), resumed.module.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 30), m=st.integers(2, 30), tol=st.floats(0, 0.9))
def test_clip_property(n, m, tol):
    torch.manual_seed(n * 31 + m)
    pair = LowRankLinear(n, m, rank=min(n, m))
    s_before = torch.linalg.svdvals(pair.product().detach().double())
    old, new = clip_pair(pair, tol)
    assert 1 <= new <= old
    err = ((pair.product().detach().double()).norm() ** 2 - (s_before[:new] ** 2).sum()).abs()
    assert err <= 1e-6 * (s_before**2).sum()


def test_regularizers_penalize_and_lower_the_spread():
    torch.manual_seed(3)
    net = to_low_rank(lenet(), ["fc1"])

    class T:
        module, step = net, 0

    nuc = NuclearNorm(1.0).penalty(T)
    expect = torch.linalg.svdvals(net.fc1.product().detach()).sum()
    torch.testing.assert_close(nuc.detach(), expect, rtol=1e-4, atol=1e-3)
    force = ForceRegularization(1.0).penalty(T)
    force.backward()
    assert force.item() > 0 and net.fc1.U.weight.grad.abs().sum() > 0
    f = net.fc1.product().detach().double().T  # reference: pdist of the unit filters
    f = f / f.norm(dim=1, keepdim=True)
    torch.testing.assert_close(force.detach().double(), torch.pdist(f).sum(), rtol=1e-4, atol=0)
    with torch.no_grad():  # two equal filters: distance 0, the gradient stays finite
        net.fc1.V.weight[1] = net.fc1.V.weight[0]
    net.zero_grad()
    ForceRegularization(1.0).penalty(T).backward()
    assert torch.isfinite(net.fc1.U.weight.grad).all() and torch.isfinite(net.fc1.V.weight.grad).all()


def test_clip_cli_writes_ranks_and_mapping(tmp_path):
    from typer.testing import CliRunner

    from group_scissor.cli import app

    r = CliRunner().invoke(app, ["clip", "--dataset", "digits", "--epochs", "1",
                                 "--fine-tune-epochs", "0", "--tolerance-ramp-epochs", "0",
                                 "--clip-interval", "10", "--tolerance", "0.05", "--out",
                                 str(tmp_path), "--quiet"])
    assert r.exit_code == 0, r.output
    rk = json.loads((tmp_path / "ranks.json").read_text())
    assert set(rk["ranks"]) == {"conv1", "conv2", "fc1"}
    assert rk["full_ranks"] == {"conv1": 20, "conv2": 50, "fc1": 500}
    mp = json.loads((tmp_path / "mapping.json").read_text())
    assert 0 < mp["cell_area_ratio"] < 1.2
    assert (tmp_path / "ranks.png").stat().st_size > 1000


def test_clip_cli_fine_tune_warm_restart(tmp_path):
    from typer.testing import CliRunner

    from group_scissor.cli import app

    common = ["clip", "--dataset", "digits", "--epochs", "2", "--clip-interval", "10",
              "--fine-tune-epochs", "1", "--quiet"]
    r = CliRunner().invoke(app, [*common, "--fine-tune-warmup-epochs", "0.5",
                                 "--out", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "needs fine_tune_lr" in r.output  # before any training
    assert not (tmp_path / "bad").exists()
    r = CliRunner().invoke(app, [*common, "--fine-tune-lr", "0.02", "--fine-tune-warmup-epochs",
                                 "0.5", "--out", str(tmp_path / "ok")])
    assert r.exit_code == 0, r.output
    train = json.loads((tmp_path / "ok" / "config.json").read_text())["train"]
    assert (train["restart_epoch"], train["restart_lr"], train["restart_warmup_epochs"]) == (
        1, 0.02, 0.5)


def test_clip_stage_refuses_a_fine_tune_that_leaves_no_clipping_epoch(tmp_path):
    # without the check the last clip step would be 0: nothing clipped, and every pair merged
    # back to dense while the stage reported success
    from group_scissor.compress import ClipStageConfig, clip_stage

    with pytest.raises(ValueError, match=r"fine_tune_epochs \(3\) must be smaller than "
                                         r"epochs \(3\): rank clipping needs epochs that clip"):
        clip_stage("lenet", "digits", None, TrainConfig(epochs=3),
                   ClipStageConfig(fine_tune_epochs=3), tmp_path / "c")
    assert not (tmp_path / "c").exists()
