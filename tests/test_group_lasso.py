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
from common.errors import ConfigError
from group_scissor.cli import app as cli_app
from group_scissor.data import load_dataset
from group_scissor.group_lasso import (
    GroupLasso,
    GroupLassoConfig,
    TileGroups,
    delete_groups,
    group_lasso_penalty,
    group_stats,
    grouped_matrices,
)
from group_scissor.prune import PruneConfig, parse_layer_lambda, tile_panels
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


# ---- grouped and depthwise convs: one matrix per group ------------------------------------------

class GroupedNet(torch.nn.Module):
    """conv1 1->8, a grouped conv 8->16 (groups 4: four 18 x 4 matrices), a depthwise conv 16
    (sixteen 9 x 1 matrices), fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.grouped = torch.nn.Conv2d(8, 16, 3, padding=1, groups=4)
        self.dw = torch.nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16)
        self.fc = torch.nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.grouped(x))
        return self.fc(torch.relu(self.dw(x)).flatten(1))


def grouped_net(seed=0):
    torch.manual_seed(seed)
    return GroupedNet()


def slow_prox(w, rows, lcols, step, sqrt_size):
    """The prox of the module docstring with loops over tiles and groups: input groups, then
    output groups with their norms after the first shrink."""
    w = w.clone()
    n, m = w.shape
    blocks = [(slice(a * rows, min((a + 1) * rows, n)), slice(b * lcols, min((b + 1) * lcols, m)))
              for a in range(math.ceil(n / rows)) for b in range(math.ceil(m / lcols))]
    for kind in ("in", "out"):
        for rs, cs in blocks:
            for k in range(rs.start, rs.stop) if kind == "in" else range(cs.start, cs.stop):
                idx = (k, cs) if kind == "in" else (rs, k)
                g = w[idx]
                c = math.sqrt(g.numel()) if sqrt_size else 1.0
                norm = float(g.norm())
                w[idx] = g * max(0.0, 1 - step * c / norm) if norm > 0 else 0.0
    return w


@settings(max_examples=40, deadline=None)
@given(g=st.integers(1, 4), n=st.integers(1, 30), m=st.integers(1, 12), rows=st.integers(1, 10),
       lcols=st.integers(1, 10), sqrt_size=st.booleans(), seed=st.integers(0, 2**16),
       zero_matrix=st.booleans())
def test_batched_prox_and_penalty_equal_each_matrix_alone(g, n, m, rows, lcols, sqrt_size, seed,
                                                         zero_matrix):
    """A stack of G matrices with one step (or penalty weight) each, as a grouped conv's layer
    runs, equals the slow reference on every matrix; a step of 0 leaves its matrix alone, also
    an all-zero one (no NaN)."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(g, n, m, generator=gen, dtype=torch.float64)
    steps = torch.rand(g, generator=gen, dtype=torch.float64) * 2
    steps[0] = 0.0
    if zero_matrix:
        w[0] = 0
        w[-1, : n // 2] = 0
    groups = TileGroups(n, m, rows, lcols, sqrt_size)
    expect = [slow_prox(w[k], rows, lcols, float(steps[k]), sqrt_size) for k in range(g)]
    one = w[-1].clone()
    wt = w.transpose(1, 2).clone(memory_format=torch.contiguous_format)  # the weight's order
    groups.prox_(wt.transpose(1, 2), steps)
    torch.testing.assert_close(wt.transpose(1, 2), torch.stack(expect), rtol=1e-9, atol=1e-12)
    groups.prox_(one, float(steps[-1]))  # the 2-D path with a float step agrees
    torch.testing.assert_close(one, expect[-1], rtol=1e-9, atol=1e-12)
    x = torch.randn(g, n, m, generator=gen, dtype=torch.float64)
    x[0, :1] = 0
    x.requires_grad_()
    p = groups.penalty(x, steps)
    ref = sum(float(steps[k]) * slow_penalty(x.detach()[k], rows, lcols, sqrt_size)
              for k in range(g))
    assert float(p.detach()) == pytest.approx(ref, rel=1e-12, abs=1e-12)
    (grad,) = torch.autograd.grad(p, x)
    assert torch.isfinite(grad).all() and not grad[0].any()  # weight 0: no gradient
    for k in range(1, g):
        (gk,) = torch.autograd.grad(groups.penalty(x[k]), x)
        torch.testing.assert_close(grad[k], steps[k] * gk[k])


def test_a_grouped_conv_is_one_grouped_matrix_per_group():
    model = grouped_net()
    spec = CrossbarSpec(8, 8, "unsigned")
    mats = {g.name: g for g in grouped_matrices(model, spec.rows, spec.lcols, GroupLassoConfig(
        lambda_={"grouped": 0.5, "grouped.g2": 2.0, "dw.g7": 3.0, "*": 0.1}))}
    assert list(mats) == (["conv1"] + [f"grouped.g{i}" for i in range(4)]
                          + [f"dw.g{i}" for i in range(16)] + ["fc"])
    for i in range(4):
        g = mats[f"grouped.g{i}"]
        assert (g.layer, g.group, g.module) == ("grouped", i, model.grouped)
        assert g.matrix.shape == (2 * 9, 4) and (g.groups.n, g.groups.m) == (18, 4)
        assert g.groups.nb == 1 and g.groups.na == 3  # 18 rows on 8-row tiles
        # a view of filters 4i .. 4i+3 (contiguous), as the mapper's matrix of that group
        assert g.matrix.data_ptr() == model.grouped.weight[4 * i].data_ptr()
        assert torch.equal(g.matrix.T.reshape(4, 2, 3, 3), model.grouped.weight[4 * i:4 * i + 4])
        assert g.groups is mats["grouped.g0"].groups  # one TileGroups per layer
    assert [mats[f"grouped.g{i}"].lam for i in range(4)] == [0.5, 0.5, 2.0, 0.5]  # layer, matrix
    assert [mats[f"dw.g{i}"].lam for i in (0, 7)] == [0.1, 3.0]
    assert mats["dw.g5"].matrix.shape == (9, 1) and mats["fc"].group is None
    mapped = {mm.name: mm.shape for mm in map_model(model, spec, LENET).matrices}
    assert {k: tuple(g.matrix.shape) for k, g in mats.items()} == mapped
    sel = grouped_matrices(model, 8, 8, GroupLassoConfig(layers=("dw", "grouped.g1")))
    assert [g.name for g in sel] == ["grouped.g1"] + [f"dw.g{i}" for i in range(16)]


@pytest.mark.parametrize("kw", [dict(lambda_={"dw.g16": 1.0}), dict(lambda_={"grouped.3": 1.0}),
                                dict(layers=("dww",))])
def test_an_unknown_group_matrix_name_names_the_valid_ones(kw):
    with pytest.raises(ConfigError, match="no matrix or layer") as e:
        grouped_matrices(grouped_net(), 8, 8, GroupLassoConfig(**kw))
    msg = str(e.value)
    assert "grouped.g0 .. grouped.g3" in msg and "dw.g0 .. dw.g15" in msg and "conv1" in msg
    assert "dw.g7," not in msg  # the groups of a layer are one range, not 16 names


def test_a_lambda_for_a_matrix_outside_layers_is_refused_not_ignored():
    cfg = GroupLassoConfig(lambda_={"*": 0.1, "fc": 1.0}, layers=("dw",))
    with pytest.raises(ConfigError, match=r"lambda is given for \['fc'\], but --layers \(dw\)"):
        grouped_matrices(grouped_net(), 8, 8, cfg)
    ok = GroupLassoConfig(lambda_={"*": 0.1, "dw.g3": 1.0}, layers=("dw",))  # inside: fine
    assert len(grouped_matrices(grouped_net(), 8, 8, ok)) == 16


def test_huge_lambda_deletes_exactly_its_group_slices_and_masks_hold():
    model = grouped_net()
    ref = grouped_net()
    spec = CrossbarSpec(8, 8, "unsigned")
    before = {mm.name: mm for mm in map_model(model, spec, LENET).matrices}
    cfg = GroupLassoConfig(lambda_={"grouped.g1": 1e3, "dw.g3": 1e3, "dw.g10": 1e3})
    cb = GroupLasso(cfg, spec.rows, spec.lcols, delete_step=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    trainer = SimpleNamespace(module=model, step=0, optimizer=opt)
    cb.on_train_begin(trainer)
    assert len(cb.batches) == 4  # conv1, grouped (4 matrices), dw (16), fc
    trainer.step = 1
    cb.after_step(trainer)  # one prox step, then the deletion
    gw, dw = model.grouped.weight, model.dw.weight
    assert not gw[4:8].any() and not dw[3].any() and not dw[10].any()
    # every other weight untouched (lambda 0: factor exactly 1), and nothing else deleted
    keep_g = torch.ones(16, dtype=torch.bool)
    keep_g[4:8] = False
    keep_d = torch.ones(16, dtype=torch.bool)
    keep_d[[3, 10]] = False
    assert torch.equal(gw[keep_g], ref.grouped.weight[keep_g])
    assert torch.equal(dw[keep_d], ref.dw.weight[keep_d])
    assert torch.equal(model.fc.weight, ref.fc.weight)
    assert torch.equal(model.grouped.weight_mask.flatten(1).all(1), keep_g)
    assert torch.equal(model.dw.weight_mask.flatten(1).all(1), keep_d)
    assert not model.grouped.weight_mask[4:8].any()
    groups = cb.deleted["groups"]
    assert groups["grouped.g1"] == {"input": 18, "output": 3 * 4}  # 18 rows; 4 cols x 3 blocks
    assert groups["dw.g3"] == {"input": 9, "output": 2} and groups["dw.g4"] == {"input": 0,
                                                                                "output": 0}
    # an optimizer step moves the deleted weights; the masks put them back to zero
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    opt.step()
    assert gw[4:8].any()
    trainer.step = 2
    cb.after_step(trainer)
    assert not gw[4:8].any() and not dw[3].any() and not dw[10].any()
    assert gw[keep_g].all() and dw[keep_d].all()
    # the mapper builds no tile and no wire for the deleted matrices, the others as before
    after = {mm.name: mm for mm in map_model(model, spec, LENET).matrices}
    for name in ("grouped.g1", "dw.g3", "dw.g10"):
        assert before[name].n_tiles == (3 if name == "grouped.g1" else 2)  # 18 or 9 rows
        assert after[name].n_tiles == 0 and after[name].input_wires == 0
        assert after[name].output_wires == 0 < before[name].output_wires
    for name in ("grouped.g0", "dw.g4", "fc"):
        assert after[name].n_tiles == before[name].n_tiles
        assert after[name].input_wires == before[name].input_wires
    stats = group_stats(cb.mats)
    assert stats["zero_input_groups"] == 18 + 9 + 9 and stats["zero_output_groups"] == 12 + 2 + 2


def test_grouped_deletion_threshold_is_relative_to_the_layer():
    """A depthwise matrix is one column: its output group is deleted when its norm is small
    against the layer's RMS (not its own, which would never let a column go)."""
    model = grouped_net()
    with torch.no_grad():
        model.dw.weight[5] *= 1e-3
        model.dw.weight[6, 0, 0, 0] = 1e-5  # one small input group in a live matrix
    mats = grouped_matrices(model, 8, 8, GroupLassoConfig(lambda_=0.0, layers=("dw",)))
    rep = delete_groups(mats, 0.05)
    assert rep["dw.g5"] == {"input": 9, "output": 2}
    assert rep["dw.g6"] == {"input": 1, "output": 0}
    assert sum(r["input"] + r["output"] for k, r in rep.items() if k not in ("dw.g5", "dw.g6")) == 0
    assert not model.dw.weight[5].any() and model.dw.weight[6].count_nonzero() == 8


def test_grouped_penalty_callback_and_stats_match_each_matrix():
    model = grouped_net()
    cfg = GroupLassoConfig(lambda_={"grouped": 0.5, "grouped.g2": 2.0, "dw.g7": 3.0, "*": 0.1},
                           method="subgradient", sqrt_size_weighting=True)
    cb = GroupLasso(cfg, 8, 8)
    cb.on_train_begin(SimpleNamespace(module=model, step=0))
    p = cb.penalty(SimpleNamespace(module=model))
    expect = sum(g.lam * slow_penalty(g.matrix.detach().double(), 8, 8, True) for g in cb.mats)
    assert float(p.detach()) == pytest.approx(expect, rel=1e-5)
    assert group_stats(cb.mats)["penalty"] == pytest.approx(expect, rel=1e-5)
    p.backward()
    assert model.dw.weight.grad is not None and model.dw.weight.grad.abs().sum() > 0


class TinyDepthwise(torch.nn.Module):
    """conv1 1->8 /2, depthwise 3x3 /2 (eight 9 x 1 matrices), pointwise 8->16, global pool, fc:
    a MobileNet block small enough for the prune command in a test."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 8, 3, stride=2, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 16, 1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.dw(torch.relu(self.conv1(x))))
        return self.fc(torch.relu(self.pw(x)).mean((2, 3)))


@pytest.fixture
def tiny_depthwise():
    models.register("tiny-depthwise", TinyDepthwise, input_shape=LENET, num_classes=10)
    yield "tiny-depthwise"
    models.registry._REGISTRY.pop("tiny-depthwise")


def test_prune_command_on_a_depthwise_model(tiny_depthwise, tmp_path):
    out = tmp_path / "run"
    args = ["prune", "--model", tiny_depthwise, "--dataset", "digits", "--epochs", 2,
            "--fine-tune-epochs", 1, "--lambda", "*=0.05,dw=0.5", "--batch-size", 256,
            "--lr", 0.05, "--crossbar", "16x16", "--out", out, "--quiet"]
    r = CliRunner().invoke(cli_app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    w = json.loads((out / "wires.json").read_text())
    assert [x["name"] for x in w["layers"]] == ["conv1", "dw", "pw", "fc"]
    dw = w["layers"][1]
    assert [x["name"] for x in dw["matrices"]] == [f"dw.g{i}" for i in range(8)]
    assert all(x["shape"] == [9, 1] for x in dw["matrices"])
    deleted = w["deleted"]["groups"]
    assert set(deleted) == {"conv1", "pw", "fc"} | {f"dw.g{i}" for i in range(8)}
    assert 0 < sum(deleted[f"dw.g{i}"]["input"] for i in range(8)) < 8 * 9  # some, not all
    assert w["total"]["wires"] < w["before"]["wires"]
    assert dw["wires"] < dw["dense"]["wires"]
    for x in dw["matrices"]:
        assert x["input_wires"] == x["input_groups"] - x["zero_input_groups"]
    assert (out / "tiles.png").stat().st_size > 0
    model = load_model(tiny_depthwise, out / "checkpoint.pt")  # the masks come back
    mask = model.dw.weight_mask
    assert not model.dw.weight[mask == 0].any() and (mask == 0).any()


def test_tiles_plot_draws_a_grouped_conv_as_one_panel():
    model = grouped_net()
    with torch.no_grad():
        model.dw.weight[3] = 0
    panels = tile_panels(map_model(model, CrossbarSpec(8, 8, "unsigned"), LENET))
    assert [p[0].split(":")[0].split(" ")[0] for p in panels] == ["conv1", "grouped", "dw", "fc"]
    title, status, hlines, vlines = panels[2]
    assert title.startswith("dw: 16 groups of 9x1: 30/32 tiles") and status.shape == (9, 16)
    assert hlines == [8] and vlines == list(range(1, 16))
    assert (status[:, 3] == 4).all() and (status[:, 2] == 0).all()  # both wires deleted; live
    assert panels[1][1].shape == (18, 16) and panels[1][3] == [4, 8, 12]
