"""CrossbarSpec / Technology: logical columns, validation, area, files."""

import dataclasses
import json

import pytest

from common.errors import ConfigError
from mapping import CrossbarSpec, Technology


@pytest.mark.parametrize("rows,cols,encoding,lcols", [
    (64, 64, "differential", 32), (64, 64, "offset", 63), (64, 64, "unsigned", 64),
    (64, 65, "differential", 32), (32, 128, "differential", 64), (128, 2, "offset", 1),
    (1, 1, "unsigned", 1), (4096, 4096, "differential", 2048),
])
def test_lcols(rows, cols, encoding, lcols):
    assert CrossbarSpec(rows, cols, encoding).lcols == lcols


def test_defaults():
    s = CrossbarSpec()
    assert (s.rows, s.cols, s.encoding, s.lcols) == (64, 64, "differential", 32)
    assert isinstance(s.tech, Technology)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.rows = 32


@pytest.mark.parametrize("text,rows,cols", [
    ("64x64", 64, 64), ("32x128", 32, 128), ("128", 128, 128), (" 256 X 16 ", 256, 16), ("8*4", 8, 4),
])
def test_parse(text, rows, cols):
    s = CrossbarSpec.parse(text, encoding="unsigned")
    assert (s.rows, s.cols, s.encoding) == (rows, cols, "unsigned")


@pytest.mark.parametrize("text", ["64x", "abc", "x64", "64x64x2", "", "6.4x64", "-1x3"])
def test_parse_rejects_garbage(text):
    with pytest.raises(ValueError, match="ROWSxCOLS"):
        CrossbarSpec.parse(text)


@pytest.mark.parametrize("kwargs,match", [
    ({"rows": 0}, r"rows must be in 1\.\.4096, got 0"),
    ({"cols": 5000}, r"cols must be in 1\.\.4096, got 5000"),
    ({"rows": -3}, "rows must be in"),
    ({"cols": 1}, r"needs cols >= 2"),
    ({"cols": 1, "encoding": "offset"}, r"needs cols >= 2"),
    ({"encoding": "twos-complement"}, "encoding must be one of"),
])
def test_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CrossbarSpec(**kwargs)
    with pytest.raises(ValueError):
        CrossbarSpec.parse(f"{kwargs.get('rows', 64)}x{kwargs.get('cols', 64)}",
                           encoding=kwargs.get("encoding", "differential"))


def test_validation_types():
    with pytest.raises(ConfigError, match="rows must be an int"):
        CrossbarSpec(rows=64.0)
    with pytest.raises(ConfigError, match="tech must be a Technology"):
        CrossbarSpec(tech={"cell_area_um2": 1})
    assert CrossbarSpec(cols=1, encoding="unsigned").lcols == 1


@pytest.mark.parametrize("field,value,exc", [
    ("cell_area_um2", -1.0, ValueError), ("adc_area_um2", 0.0, ValueError),
    ("wire_pitch_um", float("nan"), ConfigError), ("cols_per_adc", 2.5, ValueError),
    ("gcell_um", 0.01, ValueError), ("row_driver_area_um2", "big", ConfigError),
])
def test_technology_validation(field, value, exc):
    with pytest.raises(exc, match=field):
        Technology(**{field: value})


def test_area_closed_form():
    t = Technology(cell_area_um2=1.0, row_driver_area_um2=2.0, col_periphery_area_um2=3.0,
                   adc_area_um2=100.0, cols_per_adc=32, crossbar_overhead_area_um2=5.0)
    s = CrossbarSpec(64, 64, tech=t)
    assert s.periphery_area_um2 == 64 * 2 + 64 * 3 + 2 * 100 + 5
    assert s.crossbar_area_um2 == 64 * 64 + 525
    assert CrossbarSpec(16, 33, tech=t).periphery_area_um2 == 16 * 2 + 33 * 3 + 2 * 100 + 5
    d = Technology()
    assert d.periphery_area_um2(64, 64) == pytest.approx(64 * 0.17 + 64 * 0.04 + 1200)
    assert Technology(wire_pitch_um=0.5, gcell_um=10, routing_layers=3).tracks_per_gcell_edge == 60


def test_dict_roundtrip():
    s = CrossbarSpec(32, 128, "offset", Technology(cell_area_um2=0.02, cols_per_adc=64))
    d = s.to_dict()
    assert d["lcols"] == 127 and d["tech"]["cell_area_um2"] == 0.02
    assert CrossbarSpec.from_dict(json.loads(json.dumps(d))) == s
    with pytest.raises(ValueError, match=r"unknown CrossbarSpec field\(s\) \['colz'\]"):
        CrossbarSpec.from_dict({"rows": 8, "colz": 8})
    with pytest.raises(ValueError, match="unknown Technology field"):
        Technology.from_dict({"cell_area": 1.0})
    for bad in ([1, 2], 5):  # e.g. a JSON file holding a list
        with pytest.raises(ValueError, match="must be a table of fields"):
            CrossbarSpec.from_dict(bad)
        with pytest.raises(ValueError, match="must be a table of fields"):
            Technology.from_dict(bad)
    with pytest.raises(ValueError, match=r"Technology \('tech' table\) must be a table"):
        Technology.from_dict({"tech": 5})


def test_from_files(tmp_path):
    toml = tmp_path / "chip.toml"
    toml.write_text('rows = 128\ncols = 128\nencoding = "unsigned"\n\n'
                    "[tech]\ncell_area_um2 = 0.01\nadc_area_um2 = 800.0\n")
    s = CrossbarSpec.from_file(toml)
    assert (s.rows, s.cols, s.lcols) == (128, 128, 128)
    assert s.tech == Technology(cell_area_um2=0.01, adc_area_um2=800.0)
    assert Technology.from_file(toml) == s.tech  # the [tech] table of a full file
    flat = tmp_path / "tech.json"
    flat.write_text(json.dumps({"wire_pitch_um": 0.2, "gcell_um": 4.0}))
    assert Technology.from_file(flat) == Technology(wire_pitch_um=0.2, gcell_um=4.0)
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = = 3")
    with pytest.raises(ValueError, match="invalid TOML"):
        CrossbarSpec.from_file(bad)
    with pytest.raises(ConfigError, match="no such"):
        CrossbarSpec.from_file(tmp_path / "missing.toml")
    yaml = tmp_path / "x.yaml"
    yaml.write_text("rows: 3")
    with pytest.raises(ValueError, match=r"\.toml or \.json"):
        Technology.from_file(yaml)
