"""Structural Verilog: connectivity equals the JSON netlist's (own parser and yosys), and the
file elaborates in yosys and compiles in iverilog."""

import json
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mapping.design import Design, Net, Unit
from netlists import NetlistError, read_json, write_json, write_verilog
from netlists.synthetic import chain_design
from netlists.verilog import design_connectivity, verilog_connectivity

needs_yosys = pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="iverilog not installed")


def small_design(encoding="differential") -> Design:
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(20, 12))
    w1[3] = 0
    w1[:, 5] = 0
    w2 = rng.normal(size=(12, 6))
    w2[:8, 4:] = 0
    return chain_design({"fc1": w1, "fc2": w2}, 8, 8, encoding)


def lenet_design():
    network = pytest.importorskip("mapping.network", reason="mapper not available")
    import models
    from mapping.spec import CrossbarSpec

    model = models.get("lenet")
    return network.map_model(model, CrossbarSpec(64, 64), (1, 28, 28)).design


def yosys_connectivity(verilog: Path, tmp_path: Path, top: str = "chip") -> Counter:
    """(src, dst, width) of every wire n<k>, read from yosys' JSON of the elaborated design."""
    out = tmp_path / "yosys.json"
    subprocess.run(["yosys", "-q", "-p", f"read_verilog {verilog}; hierarchy -check -top {top}; "
                    f"write_json {out}"], check=True, capture_output=True, timeout=120)
    mod = json.loads(out.read_text())["modules"][top]
    drivers, sinks = {}, {}
    for name, port in mod["ports"].items():
        if port["direction"] == "input":
            drivers.update((b, name) for b in port["bits"])
    for name, cell in mod["cells"].items():
        for port, bits in cell["connections"].items():
            side = drivers if cell["port_directions"][port] == "output" else sinks
            side.update((b, name) for b in bits)
    edges = Counter()
    for name, net in mod["netnames"].items():
        if re.fullmatch(r"n\d+", name):
            src = {drivers[b] for b in net["bits"]}
            dst = {sinks[b] for b in net["bits"]}
            assert len(src) == len(dst) == 1, (name, src, dst)  # one bus, two pins
            edges[(src.pop(), dst.pop(), len(net["bits"]))] += 1
    return edges


def test_own_parser_connectivity_equals_json(tmp_path):
    d = small_design()
    v = write_verilog(d, tmp_path / "chip.v")
    back = read_json(write_json(d, tmp_path / "chip.json"))
    assert verilog_connectivity(v) == design_connectivity(back) == design_connectivity(d)
    text = v.read_text()
    assert text.count("  xbar_tile #(.") == sum(u.kind == "tile" for u in d.units)
    assert text.count("  output_unit #(.") == sum(u.kind == "output" for u in d.units)
    assert re.search(r"input\s+wire \[\d+:0\] \\IN ,", text)
    assert "wire [6:0] n0;  // IN -> fc1/T0_0" in text


def test_connectivity_differs_when_the_design_does(tmp_path):
    d = small_design()
    d2 = Design(d.units, d.nets[:-1] + [Net(d.nets[-1].src, d.nets[-1].dst,
                                            d.nets[-1].width + 1, "fc2", "output")],
                d.crossbar_rows, d.crossbar_cols)
    assert verilog_connectivity(write_verilog(d2, tmp_path / "c.v")) != design_connectivity(d)


@needs_yosys
@pytest.mark.parametrize("encoding", ["differential", "offset", "unsigned"])
def test_yosys_elaborates_and_agrees(tmp_path, encoding):
    d = small_design(encoding)
    v = write_verilog(d, tmp_path / "chip.v")
    assert yosys_connectivity(v, tmp_path) == design_connectivity(d)


@needs_iverilog
def test_iverilog_compiles(tmp_path):
    v = write_verilog(small_design(), tmp_path / "chip.v")
    r = subprocess.run(["iverilog", "-o", str(tmp_path / "a.out"), str(v)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_edge_cases(tmp_path):
    # an output unit with no tiles (all-zero block of the last layer) and a custom top name
    d = Design([Unit("IN", "input"), Unit("m/T0_0", "tile", "m", (0, 0)),
                Unit("m/A0", "output", "m", (0, 0)), Unit("m/A1", "output", "m", (0, 1))],
               [Net("IN", "m/T0_0", 3, "m", "input"), Net("m/T0_0", "m/A0", 2, "m", "output")],
               4, 4)
    v = write_verilog(d, tmp_path / "e.v", top="tiny")
    assert verilog_connectivity(v) == design_connectivity(d)
    assert "\\m/A1  (.psum(), .y(OUT[2:2]));" in v.read_text()
    with pytest.raises(NetlistError, match="not a Verilog identifier"):
        write_verilog(d, tmp_path / "e.v", top="my chip")
    if shutil.which("yosys"):
        assert yosys_connectivity(v, tmp_path, top="tiny") == design_connectivity(d)


@needs_yosys
@needs_iverilog
def test_lenet(tmp_path):
    d = lenet_design()
    v = write_verilog(d, tmp_path / "lenet.v")
    text = v.read_text()
    # dense LeNet on 64x64 differential (32 logical columns): 1 + 8*2 + 13*16 + 8*1 = 233
    # crossbars, output units 1 + 2 + 16 + 1 = 20; IN feeds conv1's 25 rows; 10 outputs
    assert text.count("  xbar_tile #(.") == 233 and text.count("  output_unit #(.") == 20
    assert "input  wire [24:0] \\IN ," in text and "output wire [9:0] OUT" in text
    assert verilog_connectivity(v) == design_connectivity(d)
    assert yosys_connectivity(v, tmp_path) == design_connectivity(d)
    r = subprocess.run(["iverilog", "-o", str(tmp_path / "a.out"), str(v)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_an_inner_block_with_no_fanout_is_not_a_chip_output(tmp_path):
    # fc2's rows 0..1 (fed by fc1/A0 on 4x4 differential crossbars: 2 logical cols per block)
    # are deleted, so fc1/A0 drives nothing; OUT is fc2's 2 outputs only, not fc1/A0's too
    w2 = np.ones((4, 2))
    w2[0:2] = 0
    d = chain_design({"fc1": np.ones((4, 4)), "fc2": w2}, 4, 4)
    assert not [n for n in d.nets if n.src == "fc1/A0"]
    text = write_verilog(d, tmp_path / "c.v").read_text()
    assert "output wire [1:0] OUT" in text
    assert "\\fc1/A0  (.psum(" in text and re.search(r"\\fc1/A0 .*\.y\(\)\);", text)
    assert re.search(r"\\fc2/A0 .*\.y\(OUT\[1:0\]\)\);", text)
    assert verilog_connectivity(tmp_path / "c.v") == design_connectivity(d)
    if shutil.which("yosys"):
        assert yosys_connectivity(tmp_path / "c.v", tmp_path) == design_connectivity(d)


def test_sliced_tiles_count_their_crossbars(tmp_path):
    """Bit-sliced weights: one xbar_tile per tile with SLICES, the header counting crossbars;
    the connectivity (buses) is the unsliced design's (issue 19)."""
    d = small_design()
    s = Design(d.units, d.nets, d.crossbar_rows, d.crossbar_cols, d.encoding, d.tile_weights,
               d.row_signals, weight_bits=8, cell_bits=2)
    tiles = sum(u.kind == "tile" for u in d.units)
    text = write_verilog(s, tmp_path / "s.v").read_text()
    assert f"{tiles} tiles x 4 = {4 * tiles} crossbars (SLICES)" in text
    assert text.count(", .SLICES(4)) \\") == tiles
    assert "SLICES" not in write_verilog(d, tmp_path / "d.v").read_text().split("endmodule")[-1]
    assert verilog_connectivity(tmp_path / "s.v") == design_connectivity(d)
    if shutil.which("yosys"):
        assert yosys_connectivity(tmp_path / "s.v", tmp_path) == design_connectivity(d)
    if shutil.which("iverilog"):
        r = subprocess.run(["iverilog", "-o", str(tmp_path / "a.out"), str(tmp_path / "s.v")],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
