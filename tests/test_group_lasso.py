"""Group connection deletion: groups = wires of the mapper, penalty vs a slow reference, prox,
deletion masks through fine-tuning / resume / merge, and the prune command on digits."""

import json
import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import models
from group_scissor.cli import app as cli_app
from group_scissor.data import load_dataset
from group_scissor.group_lasso import (
    GroupLasso,
    GroupLassoConfig,
    TileGroups,
    group_lasso_penalty,
    grouped_matrices,
)
from group_scissor.prune import PruneConfig, parse_layer_lambda
from group_scissor.train import TrainConfig, Trainer
from mapping import CrossbarSpec, map_model
from models.checkpoint import load_model
from models.lowrank import balance, layer_matrix, low_rank_layers, merge, to_low_rank
from models.masks import set_mask
from tests.helpers import StopAt

torch.set_num_threads(1)
LENET = (1, 28, 28)


def low_rank_lenet(seed=0, ranks=None):
    torch.manual_seed(seed)
    return to_low_rank(models.get("lenet"), ["conv1", "conv2", "fc1"],
                       rank=ranks or {"conv1": 6, "conv2": 12, "fc1": 24})


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    d.train.x, d.train.y = d.train.x[:384], d.train.y[:384]
    d.test.x, d.test.y = d.test.x[:128], d.test.y[:128]
    return d


# ---- the penalty against explicit loops over groups ---------------------------------------------

def slow_penalty(w, rows, lcols, sqrt_size):
    """sum over tiles (a, b), then over rows i / columns j of that tile, of c_g ||w_g||."""
    n, m = w.shape
    total = 0.0
    for a in range(math.ceil(n / rows)):
        for b in range(math.ceil(m / lcols)):
            r0, r1, c0, c1 = a * rows, min((a + 1) * rows, n), b * lcols, min((b + 1) * lcols, m)
            for i in range(r0, r1):
                g = w[i, c0:c1]
                total += (math.sqrt(g.numel()) if sqrt_size else 1.0) * float(g.norm())
            for j in range(c0, c1):
                g = w[r0:r1, j]
                total += (math.sqrt(g.numel()) if sqrt_size else 1.0) * float(g.norm())
    return total


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), m=st.integers(1, 40), rows=st.integers(1, 12),
       cols=st.integers(2, 12), encoding=st.sampled_from(["differential", "offset", "unsigned"]),
       sqrt_size=st.booleans(), lam=st.floats(0.0, 3.0), seed=st.integers(0, 2**16),
       zero_rows=st.integers(0, 3))
def test_penalty_equals_slow_reference(n, m, rows, cols, encoding, sqrt_size, lam, seed,
                                       zero_rows):
    lcols = CrossbarSpec(rows, cols, encoding).lcols  # non-square crossbars, every encoding
    w = torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w[:zero_rows] = 0  # zero groups: value 0, gradient 0 (not NaN)
    w.requires_grad_()
    p = group_lasso_penalty(w, rows, lcols, lam, sqrt_size)
    assert float(p.detach()) == pytest.approx(lam * slow_penalty(w.detach(), rows, lcols, sqrt_size),
                                     rel=1e-12, abs=1e-12)
    (grad,) = torch.autograd.grad(p, w)
    assert torch.isfinite(grad).all() and not grad[:zero_rows].any()
    # the gradient equals autograd through the reference where every group is non-zero
    w2 = w.detach()[zero_rows:].clone().requires_grad_()
    if w2.numel() and (w2 != 0).all():
        (g_ref,) = torch.autograd.grad(lam * TileGroups(*w2.shape, rows, lcols, sqrt_size)
                                       .penalty(w2), w2)
        c_in, c_out = (1.0, 1.0)
        ref = torch.zeros_like(w2)
        for a in range(math.ceil(w2.shape[0] / rows)):
            for b in range(math.ceil(m / lcols)):
                t = w2.detach()[a * rows:(a + 1) * rows, b * lcols:(b + 1) * lcols]
                c_in = math.sqrt(t.shape[1]) if sqrt_size else 1.0
                c_out = math.sqrt(t.shape[0]) if sqrt_size else 1.0
                ref[a * rows:(a + 1) * rows, b * lcols:(b + 1) * lcols] = lam * (
                    c_in * t / t.norm(dim=1, keepdim=True) + c_out * t / t.norm(dim=0))
        torch.testing.assert_close(g_ref, ref, rtol=1e-9, atol=1e-12)


def test_penalty_on_a_transposed_weight_view_matches():
    """The training path: layer_matrix(module) is a transposed view of the weight."""
    torch.manual_seed(0)
    fc = torch.nn.Linear(70, 45)
    w = layer_matrix(fc)  # (70, 45) view
    g = TileGroups(70, 45, 16, 7, sqrt_size=True)
    assert float(g.penalty(w).detach()) == pytest.approx(slow_penalty(w.detach(), 16, 7, True),
                                                         rel=1e-5)
    g.prox_(w.detach(), 0.0)  # step 0 changes nothing, and leaves the scratch padding zero
    assert float(g.penalty(w).detach()) == pytest.approx(slow_penalty(w.detach(), 16, 7, True),
                                                         rel=1e-5)


# ---- proximal step ------------------------------------------------------------------------------

def test_prox_zeroes_small_groups_and_shrinks_the_rest_exactly():
    w = torch.zeros(4, 6, dtype=torch.float64)  # tiles 2 x 3: grid 2 x 2
    w[0, 0:3] = torch.tensor([0.03, 0.04, 0.0])  # input group, norm 0.05 < step
    w[2, 3:6] = torch.tensor([3.0, 4.0, 0.0])  # input group, norm 5
    TileGroups(4, 6, 2, 3).prox_(w, 0.1)
    assert not w[:2].any()
    a, b = 3.0 * (1 - 0.1 / 5), 4.0 * (1 - 0.1 / 5)  # input groups first ...
    expect = [a * (1 - 0.1 / a), b * (1 - 0.1 / b), 0.0]  # ... then the output groups
    torch.testing.assert_close(w[2, 3:6], torch.tensor(expect, dtype=torch.float64))
    assert w.count_nonzero() == 2


def test_prox_threshold_is_lr_times_lambda_times_weight():
    """Through the callback: a group with norm < lr*lambda*sqrt(|g|) goes to exactly 0, a group
    just above it survives."""
    fc = torch.nn.Linear(3, 2, bias=False)  # W = fc.weight.T (3 x 2); one tile on 4x4 unsigned
    lr, lam, c = 0.5, 0.2, math.sqrt(2)  # input groups: rows of 2 -> c = sqrt(2)
    step = lr * lam * c
    with torch.no_grad():
        fc.weight.zero_()
        fc.weight[:, 0] = torch.tensor([0.6, 0.8]) * step * 0.999  # row 0: norm just under
        fc.weight[:, 1] = torch.tensor([0.6, 0.8]) * step * 10  # row 1: survives
    model = torch.nn.Sequential(fc)
    cb = GroupLasso(GroupLassoConfig(lambda_=lam, sqrt_size_weighting=True), 4, 4)
    trainer = SimpleNamespace(module=model, step=1, optimizer=SimpleNamespace(
        param_groups=[{"lr": lr}]))
    cb.on_train_begin(trainer)
    cb.after_step(trainer)
    w = layer_matrix(fc)
    assert not w[0].any() and w[1].abs().min() > 0 and not w[2].any()


def test_subgradient_callback_adds_the_penalty_of_every_matrix():
    model = low_rank_lenet()
    spec = CrossbarSpec(32, 96, "offset")  # 32 x 95 logical
    trainer = SimpleNamespace(module=model, step=0)
    cfg = GroupLassoConfig(lambda_={"fc1": 0.5, "*": 0.1}, method="subgradient",
                           sqrt_size_weighting=True)
    cb = GroupLasso(cfg, spec.rows, spec.lcols)
    cb.on_train_begin(trainer)
    expect = 0.0
    for name, lay in [("conv1.U", "conv1"), ("conv1.V", "conv1"), ("conv2.U", "conv2"),
                      ("conv2.V", "conv2"), ("fc1.U", "fc1"), ("fc1.V", "fc1"), ("fc2", "fc2")]:
        w = layer_matrix(model.get_submodule(name)).detach().double()
        expect += (0.5 if lay == "fc1" else 0.1) * slow_penalty(w, 32, 95, True)
    p = cb.penalty(trainer)
    assert float(p.detach()) == pytest.approx(expect, rel=1e-5)
    p.backward()
    assert all(m.weight.grad is not None for m in model.modules() if hasattr(m, "weight")
               and isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    prox = GroupLasso(GroupLassoConfig(method="prox"), spec.rows, spec.lcols)
    prox.on_train_begin(trainer)
    assert prox.penalty(trainer) is None


# ---- deletion = wires removed from the mapper's nets --------------------------------------------

def nets_of(model, spec):
    return Counter((n.src, n.dst, n.width) for n in map_model(model, spec, LENET).nets)


@pytest.mark.parametrize("spec,matrix", [(CrossbarSpec(64, 64), "fc1"),
                                         (CrossbarSpec(32, 48, "offset"), "fc1.U")])
@pytest.mark.parametrize("kind", ["input", "output"])
def test_a_deleted_group_removes_exactly_that_wire(spec, matrix, kind):
    torch.manual_seed(0)
    model = models.get("lenet") if matrix == "fc1" else low_rank_lenet()
    before = nets_of(model, spec)
    (g,) = [g for g in grouped_matrices(model, spec.rows, spec.lcols, GroupLassoConfig())
            if g.name == matrix]
    d_in, d_out = g.groups.dead(g.matrix, 0.0)  # nothing is zero yet
    assert not d_in.any() and not d_out.any()
    a, b = 1, min(1, g.groups.nb - 1)
    if kind == "input":
        d_in[a, 5, b] = True  # row a*rows+5 in column block b
    else:
        d_out[a, b, 3] = True  # column b*lcols+3 in row block a
    set_mask(g.module, g.groups.keep_mask(d_in, d_out).T)
    after = nets_of(model, spec)
    gone, new = before - after, after - before
    tile = f"{matrix}/T{a}_{b}"
    assert len(gone) == 1 and len(new) == 1
    ((src, dst, width),), ((src2, dst2, width2),) = gone, new
    assert (src, dst) == (src2, dst2) and width2 == width - 1
    assert (dst == tile) if kind == "input" else (src, dst) == (tile, f"{matrix}/A{b}")


# ---- masks through fine-tuning, resume, merge ---------------------------------------------------

def test_masks_hold_through_fine_tuning_and_resume(digits, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, seed=1)
    spec = CrossbarSpec(32, 32)
    gl = lambda: GroupLasso(GroupLassoConfig(lambda_=0.3), spec.rows, spec.lcols,  # noqa: E731
                            delete_step=6)  # 6 steps per epoch: delete after epoch 1
    full = Trainer(low_rank_lenet(), digits, cfg, tmp_path / "full", [gl()], progress=False).fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer(low_rank_lenet(), digits, cfg, tmp_path / "cut", [gl(), StopAt(2)],
                progress=False).fit()
    resumed = Trainer(low_rank_lenet(seed=5), digits, cfg, tmp_path / "cut", [gl()],
                      progress=False).fit(resume=True)
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    masks = {k: v for k, v in a.items() if k.endswith("weight_mask")}
    assert len(masks) == 7 and sum(int((v == 0).sum()) for v in masks.values()) > 0
    for k, mask in masks.items():  # deleted weights stayed 0 through 2 epochs of fine-tuning
        assert not a[k.replace("weight_mask", "weight")][mask == 0].any()
    hist = json.loads((tmp_path / "full" / "metrics.json").read_text())["epochs"]
    assert [h["group_lasso"]["deleted"] for h in hist] == [True, True, True]
    assert hist[1]["group_lasso"]["zero_input_groups"] == hist[2]["group_lasso"][
        "zero_input_groups"] > 0
    # the checkpoint loads with its masks and the mapper sees the zeros
    loaded = load_model("lenet", tmp_path / "cut" / "checkpoint.pt")
    assert all(torch.equal(loaded.state_dict()[k], a[k]) for k in a)
    assert map_model(loaded, spec, LENET).total_wires < map_model(low_rank_lenet(), spec,
                                                                  LENET).total_wires


def _lopsided_lenet():
    """Low-rank LeNet whose U factors are 100x too small and V 100x too large, as a penalty on U
    leaves them, with some input rows of U deleted."""
    model = low_rank_lenet(seed=2)
    with torch.no_grad():
        for pair in low_rank_layers(model).values():
            k = pair.rank
            c = torch.logspace(-3, 1, k)  # per-component imbalance
            pair.U.weight.mul_(c.view(-1, *[1] * (pair.U.weight.dim() - 1)))
            pair.V.weight.div_(c.view(1, -1, *[1] * (pair.V.weight.dim() - 2)))
            pair.U.weight.flatten(1)[:, :3] = 0  # three input rows (wires) deleted
    return model


def test_balance_keeps_outputs_and_zeros_equalizes_norms_and_moves_momentum():
    model = _lopsided_lenet()
    x = torch.randn(8, *LENET)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(x).square().sum().backward()
    opt.step()  # fills momentum buffers
    with torch.no_grad():  # deleted weights stay 0 (as masks keep them)
        for pair in low_rank_layers(model).values():
            pair.U.weight.flatten(1)[:, :3] = 0
    before = model(x).detach()
    bufs = {n: opt.state[p.U.weight]["momentum_buffer"].clone()
            for n, p in low_rank_layers(model).items()}
    u_before = {n: p.U.weight.clone() for n, p in low_rank_layers(model).items()}
    ratios = balance(model, opt)
    assert all(r > 100 for r in ratios.values())  # it was lopsided
    torch.testing.assert_close(model(x), before, rtol=1e-4, atol=1e-5)
    for n, pair in low_rank_layers(model).items():
        nu, nv = pair.u_matrix().norm(dim=0), pair.v_matrix().norm(dim=1)
        torch.testing.assert_close(nu, nv, rtol=1e-5, atol=1e-7)
        assert not pair.U.weight.flatten(1)[:, :3].any()  # deleted rows stay deleted
        s = (pair.U.weight.flatten(1).norm(dim=1) / u_before[n].flatten(1).norm(dim=1))
        scale = s.view(-1, *[1] * (pair.U.weight.dim() - 1))
        torch.testing.assert_close(opt.state[pair.U.weight]["momentum_buffer"] * scale, bufs[n])
    assert all(r == pytest.approx(1, rel=1e-4) for r in balance(model).values())


@pytest.mark.parametrize("rebalance", [False, True])
def test_deletion_rebalances_only_when_asked_and_keeps_the_outputs(rebalance):
    model = _lopsided_lenet()
    x = torch.randn(8, *LENET)
    spec = CrossbarSpec(32, 32)
    gl = GroupLasso(GroupLassoConfig(lambda_=0.0, threshold=0.0, rebalance=rebalance), spec.rows, spec.lcols,
                    delete_step=0)
    gl.on_train_begin(SimpleNamespace(module=model, step=0, optimizer=torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9)))
    reference = _lopsided_lenet()  # the same deletions (rows already 0), never rebalanced
    torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    pair = low_rank_layers(model)["conv2"]
    balanced = torch.allclose(pair.u_matrix().norm(dim=0), pair.v_matrix().norm(dim=1),
                              rtol=1e-4)
    assert balanced == rebalance and ("rebalanced_from" in gl.deleted) == rebalance


def test_merge_keeps_zero_rows_of_u_and_zero_columns_of_v_only():
    model = low_rank_lenet()
    pair = model.fc1
    keep_u = torch.ones(800, 24)
    keep_u[7] = 0  # a whole row of U: input 7 unused
    keep_u[100, :10] = 0  # part of a row: no zero in the product
    keep_v = torch.ones(24, 500)
    keep_v[:, 42] = 0  # a whole column of V: output 42 unused
    set_mask(pair.U, keep_u.T)
    set_mask(pair.V, keep_v.T)
    merge(model)
    w = layer_matrix(model.fc1)
    assert not w[7].any() and not w[:, 42].any()
    assert w[100].count_nonzero() == 499  # all but column 42
    assert not hasattr(model.fc1, "weight_mask")  # merge drops masks: zeros, not masks, survive


# ---- the prune command ------------------------------------------------------------------------

@pytest.mark.slow  # end to end: in the full suite, not the fast loop
def test_prune_command_on_digits_writes_wires_json(tmp_path):
    ckpt = tmp_path / "clipped.pt"
    torch.save(low_rank_lenet().state_dict(), ckpt)
    out = tmp_path / "run"
    args = ["prune", "--model", "lenet", "--dataset", "digits", "--checkpoint", ckpt,
            "--epochs", 2, "--fine-tune-epochs", 1, "--lambda", 0.3, "--batch-size", 256,
            "--lr", 0.05, "--fine-tune-lr", 0.02, "--fine-tune-warmup-epochs", 0.5, "--rebalance",
            "--crossbar", "32x32", "--out", out, "--quiet"]
    r = CliRunner().invoke(cli_app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    assert "wires" in r.output
    w = json.loads((out / "wires.json").read_text())
    keys = {"input_wires", "output_wires", "wires", "nets", "crossbars"}
    assert set(w) >= {"crossbar", "layers", "total", "dense_baseline", "before", "wire_ratio",
                      "net_ratio", "crossbar_area_ratio", "cell_area_ratio"}
    assert set(w["total"]) >= keys and set(w["dense_baseline"]) >= keys
    assert [x["name"] for x in w["layers"]] == ["conv1", "conv2", "fc1", "fc2"]
    mapping = json.loads((out / "mapping.json").read_text())
    assert w["total"]["wires"] == mapping["nets"]["total_wires"]
    assert w["dense_baseline"]["wires"] == mapping["baseline"]["total_wires"]
    assert w["wire_ratio"] == w["total"]["wires"] / w["dense_baseline"]["wires"] < 1
    assert w["total"]["wires"] < w["before"]["wires"]
    for layer in w["layers"]:
        assert set(layer) >= keys | {"dense", "matrices", "wire_ratio"}
        assert layer["wires"] == sum(x["wires"] for x in layer["matrices"])
        for x in layer["matrices"]:
            assert x["input_wires"] == x["input_groups"] - x["zero_input_groups"]
            assert x["output_wires"] == x["output_groups"] - x["zero_output_groups"]
    assert sum(x["dense"]["wires"] for x in w["layers"]) == w["dense_baseline"]["wires"]
    assert (out / "tiles.png").stat().st_size > 0 and (out / "checkpoint.pt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage"] == "prune" and metrics["wire_ratio"] == w["wire_ratio"]
    assert json.loads((out / "config.json").read_text())["prune"]["rebalance"] is True
    train = json.loads((out / "config.json").read_text())["train"]  # fine-tune: warm restart
    assert (train["restart_epoch"], train["restart_lr"], train["restart_warmup_epochs"]) == (
        1, 0.02, 0.5)
    # a resume under other settings would change the run mid-way: refused, naming them, and
    # config.json still tells the run that is there (the same resume is accepted)
    written = (out / "config.json").read_text()
    for change, needle in ((["--crossbar", "64x64"], "crossbar.cols: 32 -> 64"),
                           (["--lambda", "0.2"], r"prune.lambda_: 0.3 -> 0.2"),
                           (["--epochs", "3"], "'restart_epoch': (1.0, 2.0)")):
        i = args.index(change[0])
        changed = args[:i] + change + args[i + 2:] + ["--resume"]
        r = CliRunner().invoke(cli_app, [str(a) for a in changed])
        assert r.exit_code == 2 and needle in r.output, r.output
        assert (out / "config.json").read_text() == written
    r = CliRunner().invoke(cli_app, [str(a) for a in args] + ["--resume"])
    assert r.exit_code == 0, r.output
    # bad input: a clear message, exit code 2
    r = CliRunner().invoke(cli_app, [str(a) for a in args[:-3]] + ["--out", str(tmp_path / "x"),
                                                             "--layers", "fc9"])
    assert r.exit_code == 2 and "fc9" in r.output and "fc1.U" in r.output


@pytest.mark.parametrize("kw,needle", [
    (dict(lambda_=-1.0), "lambda"), (dict(lambda_={"fc1": float("nan")}), "fc1"),
    (dict(method="adam"), "method"), (dict(threshold_mode="rel"), "threshold_mode"),
    (dict(threshold=-0.1), "threshold"), (dict(fine_tune_epochs=-1), "fine_tune_epochs"),
    (dict(fine_tune_lr=0.0), "fine_tune_lr")])
def test_bad_config_is_rejected_with_a_clear_message(kw, needle):
    with pytest.raises(ValueError, match=needle):
        PruneConfig(**kw)


def test_per_layer_lambda_and_thresholds():
    cfg = GroupLassoConfig(lambda_={"fc1": 2.0, "conv2.U": 1.0, "*": 0.5})
    assert (cfg.lambda_for("fc1.V", "fc1"), cfg.lambda_for("conv2.U", "conv2"),
            cfg.lambda_for("conv2.V", "conv2")) == (2.0, 1.0, 0.5)
    assert GroupLassoConfig(lambda_={"fc1": 1.0}).lambda_for("conv1", "conv1") == 0.0
    assert parse_layer_lambda("fc1=1e-3, conv1.U=0") == {"fc1": 1e-3, "conv1.U": 0.0}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_layer_lambda("fc1")
    # 2 x 2 matrix, one tile: rows [3, 4] (norm 5) and [0.75, 1] (norm 1.25), exact in binary
    w = torch.tensor([[3.0, 4.0], [0.75, 1.0]])
    g = TileGroups(2, 2, 2, 2)
    assert g.dead(w, 1.2499, "absolute")[0].flatten().tolist() == [False, False]
    assert g.dead(w, 1.25, "absolute")[0].flatten().tolist() == [False, True]  # at: deleted
    rel = 1.25 / (math.sqrt(26.5625 / 4) * math.sqrt(2))  # row 1 at the relative threshold
    assert g.dead(w, rel * 1.001)[0].flatten().tolist() == [False, True]
    assert g.dead(w, rel * 0.999)[0].flatten().tolist() == [False, False]
    assert g.dead(w, 0.0)[1].flatten().tolist() == [False, False]  # columns: both non-zero
