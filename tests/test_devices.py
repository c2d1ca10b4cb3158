"""Device and circuit effects in the tile-by-tile simulation (hardware-model section 8), weight
bit slicing (section 2), device files and ``group-scissor evaluate``."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

import models
from common.errors import ConfigError
from mapping import CrossbarSpec, DeviceModel, map_matrix, map_model
from mapping.devices import describe, presets, program, quantize_weights, slice_digits
from mapping.energy import energy
from mapping.routing import RouteConfig

ENCODINGS = ["differential", "offset", "unsigned"]
PHYSICAL = ["differential", "offset"]
SHAPE = (1, 28, 28)


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    return models.get("lenet").eval()


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(1)
    return torch.randn(6, *SHAPE)


@pytest.fixture(scope="module")
def nets(lenet):
    return {e: map_model(lenet, CrossbarSpec(64, 64, e), SHAPE) for e in ENCODINGS}


def err(net, x, device, ref=None):
    ref = net.forward(x) if ref is None else ref
    return (net.simulator(device)(x) - ref).abs().mean().item()


# -- off is exact -----------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_zero_effect_settings_are_the_exact_simulation_bit_for_bit(nets, x, encoding):
    net = nets[encoding]
    exact = net.simulator()(x)
    off = DeviceModel(levels=None, variation_sigma=0.0, seed=7, stuck_off_fraction=0.0,
                      stuck_on_fraction=0.0, read_noise_sigma=0.0, r_wire_ohm=0.0,
                      dac_bits=None, adc_bits=None)
    assert off.is_ideal and DeviceModel.preset("ideal") == DeviceModel()
    sim = net.simulator(off)
    assert all(b.circuit is None for b in sim.banks.values())  # the ideal path, untouched
    assert torch.equal(sim(x), exact) and torch.equal(net.forward(x, DeviceModel.load("ideal")), exact)


def test_effects_on_some_matrices_only(nets, x):
    """matrices=: the device on those matrices, the others ideal; all of them is the whole chip,
    none of them the exact simulation; an unknown name is refused, naming the matrices."""
    net = nets["differential"]
    names = [m.name for m in net.matrices]
    dev = DeviceModel(variation_sigma=0.2, adc_bits=4, seed=3)
    calib = torch.randn(8, *SHAPE)
    whole = net.simulator(dev, calib, matrices=None)(x)
    assert torch.equal(net.simulator(dev, calib, matrices=names)(x), whole)
    assert torch.equal(net.simulator(dev, calib, matrices=[])(x), net.simulator()(x))
    one = net.simulator(dev, calib, matrices=names[-1])
    assert [n for n, b in one.banks.items() if b.circuit is not None] == [names[-1]]
    y = one(x)
    assert not torch.equal(y, whole) and not torch.equal(y, net.simulator()(x))
    with pytest.raises(ConfigError, match="no matrix named 'nope'.*" + names[0]):
        net.simulator(dev, matrices=["nope"])


@pytest.mark.parametrize("encoding", PHYSICAL)
def test_window_subtraction_removes_the_common_part(nets, x, encoding):
    net = nets[encoding]
    exact = net.forward(x)
    for g_min, g_max in ((1.0, 100.0), (0.0, 5.0), (50.0, 51.0)):
        y = net.simulator(DeviceModel(g_min_us=g_min, g_max_us=g_max))(x)
        assert (y - exact).abs().max() < 1e-9


@pytest.mark.parametrize("encoding", PHYSICAL)
def test_no_wire_resistance_and_no_faults_change_nothing(nets, x, encoding):
    net = nets[encoding]
    base = DeviceModel(g_min_us=1.0, g_max_us=100.0, levels=16, variation_sigma=0.1, seed=2)
    y = net.simulator(base)(x)
    # r = 0: the same chip, bit for bit (no IR drop solve); a vanishing r: the same to float32
    assert torch.equal(net.simulator(dataclasses.replace(base, r_wire_ohm=0.0, r_bit_ohm=0.0))(x), y)
    assert (net.simulator(dataclasses.replace(base, r_wire_ohm=1e-9))(x) - y).abs().max() < 1e-6
    # stuck-at fractions 0: bit for bit; a fraction that hits no cell: the same chip
    assert torch.equal(net.simulator(dataclasses.replace(base, stuck_off_fraction=0.0))(x), y)
    assert torch.equal(net.simulator(dataclasses.replace(base, stuck_on_fraction=1e-15))(x), y)


def test_sliced_stuck_or_quantized_nothing_is_close_to_exact(nets, x):
    net = nets["differential"]
    exact = net.forward(x)
    assert (net.simulator(DeviceModel(stuck_off_fraction=1e-15))(x) - exact).abs().max() < 1e-12
    assert (net.simulator(DeviceModel(levels=2 ** 30))(x) - exact).abs().max() < 1e-6
    assert (net.simulator(DeviceModel(adc_bits=24, dac_bits=24), x)(x) - exact).abs().max() < 1e-4


# -- monotonicity -----------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_more_levels_adc_and_dac_bits_never_raise_the_error(nets, x, encoding):
    net = nets[encoding]
    for field, values in (("levels", (4, 16, 256)), ("adc_bits", (3, 5, 8)),
                          ("dac_bits", (3, 5, 8))):
        errs = [err(net, x, DeviceModel(**{field: v})) for v in values]
        assert errs[0] > errs[1] > errs[2] > 0, (field, errs)


@pytest.mark.parametrize("encoding", ["differential", "offset"])
def test_more_variation_faults_and_noise_never_lower_the_error(nets, x, encoding):
    net = nets[encoding]

    def mean_err(**kw):  # over a few chips
        return np.mean([err(net, x, DeviceModel(g_min_us=1.0, g_max_us=100.0, seed=s, **kw))
                        for s in range(3)])

    for field, values in (("variation_sigma", (0.02, 0.05, 0.2)),
                          ("stuck_on_fraction", (0.001, 0.01, 0.05)),
                          ("read_noise_sigma", (0.01, 0.05, 0.2))):
        errs = [mean_err(**{field: v}) for v in values]
        assert errs[0] < errs[1] < errs[2], (field, errs)
    errs = [mean_err(variation_sigma=0.1, variation="gaussian", r_wire_ohm=0.0)]
    assert errs[0] > 0


@pytest.mark.slow  # end to end: in the full suite, not the fast loop
@pytest.mark.parametrize("encoding", PHYSICAL)
def test_more_wire_resistance_more_error(nets, x, encoding):
    net = nets[encoding]
    errs = [err(net, x, DeviceModel(g_min_us=1.0, g_max_us=100.0, r_wire_ohm=r)) for r in (0.1, 1.0, 10.0)]
    assert errs[0] < errs[1] < errs[2]


# -- seeds, read noise, calibration -----------------------------------------------------------
def test_read_noise_changes_each_read_but_not_the_chip(nets, x):
    net = nets["differential"]
    dev = DeviceModel(g_min_us=1.0, g_max_us=100.0, variation_sigma=0.05, read_noise_sigma=0.05, seed=4)
    sim = net.simulator(dev)
    chip = {k: b.g.clone() for k, b in sim.banks.items()}
    y1, y2 = sim(x), sim(x)
    assert not torch.equal(y1, y2)
    assert all(torch.equal(b.g, chip[k]) for k, b in sim.banks.items())
    again = net.simulator(dev)  # the same chip and the same sequence of reads
    assert torch.equal(again(x), y1) and torch.equal(again(x), y2)
    quiet = net.simulator(dataclasses.replace(dev, read_noise_sigma=0.0))  # programming unchanged
    assert all(torch.equal(quiet.banks[k].g, chip[k]) for k in chip)
    other = net.simulator(dataclasses.replace(dev, seed=5))
    assert not torch.equal(other.banks["conv1"].g, chip["conv1"])


def test_adc_ranges_are_calibrated_per_bit_line_and_clip():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((10, 6))
    mm = map_matrix(W, CrossbarSpec(16, 16, "differential"))
    bank = program(mm, "differential", DeviceModel(adc_bits=4))
    xc = torch.tensor(rng.random((50, 10)))
    bank.circuit.calibrating = True
    bank.matmul(xc)
    bank.circuit.calibrating = False
    ranges = bank.adc_ranges()  # (T, S * lcols, 2)
    assert ranges.shape == (1, 2 * 6, 2)
    cur = torch.cat([xc @ bank.g[0, 0], xc @ bank.g[0, 1]], dim=1)  # G+ bit lines, then G-
    np.testing.assert_allclose(ranges[0, :, 1], cur.max(0).values.clamp_min(0), rtol=1e-12)
    np.testing.assert_allclose(ranges[0, :, 0], cur.min(0).values.clamp_max(0), rtol=1e-12)
    assert len(torch.unique(ranges[0, :, 1])) > 6  # one range per bit line
    assert (ranges[0, :, 0] == 0).all()  # non-negative inputs and conductances
    hi = ranges[0, :, 1].view(2, 6)
    # far outside the ranges every bit line saturates: at its top, or at 0 for negative inputs
    torch.testing.assert_close(bank.matmul(100 * xc[:3]), (hi[0] - hi[1]).expand(3, 6))
    assert (bank.matmul(-100 * xc[:3]) == 0).all()


def test_simulator_calibrates_on_the_given_batch(nets, x):
    net = nets["offset"]
    dev = DeviceModel(g_min_us=1.0, g_max_us=100.0, adc_bits=6, dac_bits=6)
    a = net.simulator(dev, calibration=x[:3])
    b = net.simulator(dev, calibration=x[3:])
    assert a.calibrated and not torch.equal(a.banks["fc1"].circuit.adc_hi, b.banks["fc1"].circuit.adc_hi)
    assert torch.equal(net.simulator(dev, calibration=x[:3])(x), a(x))  # deterministic
    lazy = net.simulator(dev)
    assert not lazy.calibrated
    lazy(x[:3])  # no calibration batch: the first batch is one
    assert torch.equal(lazy(x), a(x))


def test_offset_reference_column_is_programmed_like_any_cell():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((12, 5))
    mm = map_matrix(W, CrossbarSpec(16, 16, "offset"))
    ideal = program(mm, "offset")
    q = program(mm, "offset", DeviceModel(levels=4))
    fs = max(ideal.g.abs().max(), ideal.ref.abs().max())
    levels = torch.round(q.ref / (fs / 3)) * (fs / 3)
    assert torch.allclose(q.ref, levels) and not torch.allclose(q.ref, ideal.ref)
    v = program(mm, "offset", DeviceModel(variation_sigma=0.1, seed=0))
    assert not torch.allclose(v.ref, ideal.ref) and (v.ref > 0).all()
    phys = program(mm, "offset", DeviceModel(g_min_us=2.0, g_max_us=20.0, stuck_on_fraction=0.5))
    assert ((phys.ref == 20.0) | (phys.ref < 20.0)).all() and (phys.ref == 20.0).any()


def test_unsigned_has_no_physical_window():
    mm = map_matrix(np.eye(4) - 0.5, CrossbarSpec(8, 8, "unsigned"))
    with pytest.raises(ConfigError, match="unsigned"):
        program(mm, "unsigned", DeviceModel(g_min_us=1.0, g_max_us=10.0))
    with pytest.raises(ConfigError, match="window"):
        DeviceModel(r_wire_ohm=1.0)


@pytest.mark.parametrize("kwargs,match", [
    ({"g_min_us": 1.0}, "together"), ({"g_min_us": 5.0, "g_max_us": 1.0}, "g_max_us > g_min_us"),
    ({"stuck_off_fraction": 0.7, "stuck_on_fraction": 0.5}, "<= 1"),
    ({"adc_bits": 0}, "adc_bits"), ({"dac_bits": 2.5}, "dac_bits"), ({"read_noise_sigma": -1}, "read_noise"),
    ({"r_bit_ohm": -1.0}, "r_bit_ohm"), ({"seed": -1}, "seed"),
])
def test_device_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        DeviceModel(**kwargs)


# -- weight bit slicing -----------------------------------------------------------------------
def quantized_model(model, bits):
    q = copy.deepcopy(model).double()
    with torch.no_grad():
        for m in q.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w, s = quantize_weights(m.weight, bits)
                m.weight.copy_(w * s)
    return q


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("bits", [(8, 2), (6, None), (4, 1), (5, 3)])
def test_sliced_ideal_simulation_computes_the_quantized_weights(lenet, x, encoding, bits):
    wb, cb = bits
    spec = CrossbarSpec(32, 32, encoding, weight_bits=wb, cell_bits=cb)
    net = map_model(lenet, spec, SHAPE)
    ref = quantized_model(lenet, wb)(x.double())
    assert (net.forward(x.double()) - ref).abs().max() < 1e-9
    assert (ref - lenet(x)).abs().max() > 1e-4  # the weights were quantized
    plain = map_model(lenet, CrossbarSpec(32, 32, encoding), SHAPE)
    assert spec.slices == (-(-(wb - 1) // cb) if cb else 1)
    assert net.n_crossbars == spec.slices * plain.n_crossbars
    assert net.baseline.n_crossbars == spec.slices * plain.baseline.n_crossbars
    assert net.cells == plain.cells and net.total_wires == plain.total_wires
    assert len(net.nets) == len(plain.nets)
    assert net.area_um2 == pytest.approx(spec.slices * plain.area_um2)


def test_slices_recombine_and_scale_energy(lenet):
    q = torch.tensor([[-127.0, 5, 0, 64, 127, -3]])
    d = slice_digits(q, 8, 2)
    assert d.shape == (4, 1, 6) and (d.abs() <= 3).all()
    assert torch.equal((d * 4.0 ** torch.arange(4).view(-1, 1, 1)).sum(0), q)
    plain = map_model(lenet, CrossbarSpec(), SHAPE)
    sliced = map_model(lenet, CrossbarSpec(weight_bits=8, cell_bits=2), SHAPE)
    e0, e1 = energy(plain).to_dict(), energy(sliced).to_dict()
    t0, t1 = e0["energy_pj_by_component"], e1["energy_pj_by_component"]
    assert t1["adc"] == pytest.approx(4 * t0["adc"]) and t1["array"] == pytest.approx(4 * t0["array"])
    assert t1["adder"] == pytest.approx(t0["adder"]) and e1["latency_ns"] == pytest.approx(e0["latency_ns"])
    site = RouteConfig.for_spec
    assert site(sliced.spec).gcells_per_site >= site(plain.spec).gcells_per_site
    with pytest.raises(ConfigError, match="weight_bits"):
        CrossbarSpec(cell_bits=2)


def test_sliced_cells_on_their_levels_are_exact(lenet, x):
    spec = CrossbarSpec(64, 64, "differential", weight_bits=7, cell_bits=2)
    net = map_model(lenet, spec, SHAPE)
    exact = net.forward(x)
    y = net.simulator(DeviceModel(levels=4, g_min_us=1.0, g_max_us=40.0))(x)
    assert (y - exact).abs().max() < 1e-9  # 4 levels hold 2-bit digits exactly
    assert err(net, x, DeviceModel(levels=3)) > 1e-4


# -- device files -----------------------------------------------------------------------------
def test_presets_and_files(tmp_path):
    assert {"ideal", "rram_4bit", "rram_neurosim"} <= set(presets())
    for p in presets():
        d = describe(p)
        assert d["name"] == p and d["description"]
        dev = DeviceModel.load(p)
        assert set(d.get("sources", {})) <= set(dev.to_dict())
    assert DeviceModel.load("rram_neurosim").g_max_us / DeviceModel.load("rram_neurosim").g_min_us \
        == pytest.approx(17)
    f = tmp_path / "chip.toml"
    f.write_text('name = "mine"\n[device]\nadc_bits = 6\nvariation_sigma = 0.1\n'
                 '[sources]\nadc_bits = "measured"\n')
    assert DeviceModel.load(f) == DeviceModel(adc_bits=6, variation_sigma=0.1)
    (tmp_path / "flat.toml").write_text("levels = 8\n")
    assert DeviceModel.load(tmp_path / "flat.toml") == DeviceModel(levels=8)
    (tmp_path / "bad.toml").write_text("adc_bit = 6\n")
    with pytest.raises(ConfigError, match="unknown device field"):
        DeviceModel.load(tmp_path / "bad.toml")
    (tmp_path / "src.toml").write_text("[sources]\nadc = 'x'\n")
    with pytest.raises(ConfigError, match="sources"):
        DeviceModel.load(tmp_path / "src.toml")
    with pytest.raises(ConfigError, match="no device preset named 'nope'"):
        DeviceModel.load("nope")


def test_evaluate_command(tmp_path):
    from group_scissor.cli import app
    from tests.test_cli import assert_clean_error, run
    from tests.test_data import fake_mnist

    fake_mnist(tmp_path / "data", n_train=8, n_test=20)
    torch.manual_seed(0)
    torch.save(models.get("lenet").state_dict(), tmp_path / "ckpt.pt")
    out = tmp_path / "out"
    r = run("evaluate", "--checkpoint", tmp_path / "ckpt.pt", "--model", "lenet", "--device-file",
            "rram_4bit", "--seeds", 3, "--data-dir", tmp_path / "data", "--crossbar", "32x32",
            "--out", out)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "evaluate.json").read_text())
    assert len(rep["accuracies"]) == 3 and rep["test_samples"] == 20 and rep["full_test_set"]
    assert rep["device_name"] == "rram_4bit" and not rep["deterministic"]
    assert {"mean", "std", "min", "max"} <= set(rep["accuracy"]) and 0 <= rep["ideal_accuracy"] <= 1
    assert "ideal chip" in r.output
    r = run("evaluate", "--checkpoint", tmp_path / "ckpt.pt", "--model", "lenet", "--device-file",
            "ideal", "--seeds", 2, "--data-dir", tmp_path / "data", "--weight-bits", 8,
            "--cell-bits", 2, "--out", out)
    rep = json.loads((out / "evaluate.json").read_text())
    assert r.exit_code == 0 and rep["deterministic"] and rep["crossbar"]["slices"] == 4
    assert rep["accuracies"] == [rep["ideal_accuracy"]] * 2
    # compile's settings file drives it: [evaluate] and the crossbar, as for every command
    (tmp_path / "run.toml").write_text(f'crossbar = "32x32"\ndata_dir = "{tmp_path / "data"}"\n'
                                       '[evaluate]\ndevice_file = "ideal"\nseeds = 2\n'
                                       'test_samples = 7\n')
    r = run("evaluate", "--checkpoint", tmp_path / "ckpt.pt", "--model", "lenet", "--config",
            tmp_path / "run.toml", "--set", "evaluate.seeds=3", "--out", out)
    rep = json.loads((out / "evaluate.json").read_text())
    assert r.exit_code == 0 and rep["crossbar"]["rows"] == 32 and rep["test_samples"] == 7
    assert len(rep["accuracies"]) == 3 and rep["device_name"] == "ideal"
    # the model and the data set are the checkpoint's: its run's config.json
    (tmp_path / "run").mkdir()
    torch.save(models.get("lenet").state_dict(), tmp_path / "run" / "checkpoint.pt")
    (tmp_path / "run" / "config.json").write_text('{"model": "lenet", "dataset": "digits"}')
    r = run("evaluate", "--checkpoint", tmp_path / "run" / "checkpoint.pt", "--device-file",
            "ideal", "--seeds", 1, "--test-samples", 50, "--out", out)
    assert r.exit_code == 0, r.output
    rep = json.loads((out / "evaluate.json").read_text())
    assert (rep["model"], rep["dataset"], rep["test_samples"]) == ("lenet", "digits", 50)
    assert_clean_error(run("evaluate", "--checkpoint", tmp_path / "ckpt.pt", "--model", "lenet",
                           "--out", out), "--device-file")
    assert_clean_error(run("evaluate", "--checkpoint", tmp_path / "ckpt.pt", "--device-file",
                           "nope", "--model", "lenet", "--out", out), "no device preset")
    assert_clean_error(run("evaluate", "--checkpoint", tmp_path / "ckpt.pt", "--device-file",
                           "ideal", "--out", out), "pass --model")
    assert app is not None
