"""``export_command``: LeNet (pruned checkpoint) -> JSON + SPICE + Verilog that agree."""

import dataclasses
import json
import re
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import torch

import netlists
from netlists import NetlistError, read_netlist
from netlists.cli import export_command
from netlists.verilog import design_connectivity, verilog_connectivity

pytest.importorskip("mapping.network", reason="mapper not available")
SCHEMA = json.loads(netlists.SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def pruned_lenet(tmp_path_factory) -> tuple[Path, dict]:
    """A LeNet checkpoint with whole input-wire groups of fc1 deleted."""
    import models

    torch.manual_seed(0)
    model = models.get("lenet")
    with torch.no_grad():
        model.fc1.weight[:, :400] = 0  # fc1 rows 0..399 (inputs) gone: tiles T0..T6 empty
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    torch.save(model.state_dict(), path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def test_export_all_formats_agree(tmp_path, pruned_lenet):
    from mapping.network import map_model
    from mapping.spec import CrossbarSpec
    from models import get

    ckpt, state = pruned_lenet
    paths = export_command("lenet", ckpt, "all", "64x64", tmp_path)
    assert [p.name for p in paths] == ["lenet.json", "lenet.sp", "lenet.v"]
    model = get("lenet")
    model.load_state_dict(state)
    want = map_model(model, CrossbarSpec(64, 64), (1, 28, 28)).design

    doc = json.loads(paths[0].read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert doc["technology"]["cell_area_um2"] > 0 and doc["technology"]["g_max_siemens"] > 0
    got = read_netlist(paths[0]).design
    assert got.units == want.units and got.nets == want.nets
    for k, w in want.tile_weights.items():
        assert np.array_equal(got.tile_weights[k], w) and got.tile_weights[k].dtype == w.dtype
    assert not any(u.name.startswith("fc1/T0_") for u in got.units)  # pruned tiles not built
    assert verilog_connectivity(paths[2]) == design_connectivity(want)

    spice = paths[1].read_text()
    tiles = re.findall(r"^\* @tile xb\d+ (\S+) rows=(\d+) bitlines=(\d+)$", spice, re.M)
    assert [t[0] for t in tiles] == [u.name for u in want.units if u.kind == "tile"]
    cells = sum(int(r) * int(c) for _, r, c in tiles)
    assert cells == sum(w.shape[0] * 2 * w.shape[1] for w in want.tile_weights.values())
    assert len(re.findall(r"^R\d+_\d+ ", spice, re.M)) == cells


def test_single_format_and_other_crossbars(tmp_path):
    (path,) = export_command("lenet", None, "verilog", "32x128", tmp_path, encoding="offset")
    assert path.name == "lenet.v" and sorted(p.name for p in tmp_path.iterdir()) == ["lenet.v"]
    assert "crossbars 32x128 (offset)" in path.read_text()


def test_bad_options(tmp_path):
    with pytest.raises(NetlistError, match="--format 'pdf'.*json, spice, verilog, all"):
        export_command("lenet", None, "pdf", "64x64", tmp_path)
    with pytest.raises(NetlistError, match="--encoding 'signed'"):
        export_command("lenet", None, "json", "64x64", tmp_path, encoding="signed")
    with pytest.raises(ValueError, match="crossbar size"):
        export_command("lenet", None, "json", "64by64", tmp_path)
    assert not list(tmp_path.iterdir())


def test_registered_command(tmp_path):
    from typer.testing import CliRunner

    from group_scissor.cli import app

    if "export" not in {c.name for c in app.registered_commands}:
        pytest.skip("group-scissor export is not registered in group_scissor/cli.py")
    r = CliRunner().invoke(app, ["export", "--format", "pdf", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--format 'pdf'" in r.output
    r = CliRunner().invoke(app, ["export", "--format", "json", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "lenet.json").is_file()


def test_layout_option_with_a_small_registered_model(tmp_path, monkeypatch):
    from torch import nn

    import models

    placement = pytest.importorskip("mapping.placement")
    routing = pytest.importorskip("mapping.routing")
    # the heuristic placer and router keep this test fast (the CP-SAT defaults take ~1 min)
    place, route = placement.place, routing.route
    monkeypatch.setattr(placement, "place",
                        lambda d: place(d, placement.PlaceConfig(method="fast")))
    monkeypatch.setattr(routing, "route",
                        lambda d, p, c: route(d, p, dataclasses.replace(c, method="negotiated")))

    def tiny():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))

    monkeypatch.setattr(models.registry, "_REGISTRY", dict(models.registry._REGISTRY))  # undone
    models.register("tiny_netlists", tiny, input_shape=(1, 4, 4), num_classes=4,
                    overwrite=True)
    (path,) = export_command("tiny_netlists", None, "json", "8x8", tmp_path, layout=True)
    doc = json.loads(path.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)
    assert all("site" in u for u in doc["units"]) and all("route" in n for n in doc["nets"])
    assert doc["layout"]["grid_sites"][0] >= 1
    nl = read_netlist(path)
    assert len(nl.routes) == len(nl.design.nets) and nl.design.tile_weights
