"""--synth end to end: the netlist check counts in the exit code, resources per layer, place-and-route timing."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import report

from mlinfn_compress.cli import main
from mlinfn_compress.synth import netlist as netlist_mod

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("yosys", "iverilog", "nextpnr-ice40")), reason="synthesis tools missing"
)


@pytest.mark.slow
def test_synth_checks_the_netlist_and_times_the_design(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = small_mlp("synth_cli", 0.5)
    out = tmp_path / "ok"
    assert main([str(model), "--synth", "--simulate", "50", "-q", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    r = report(out)
    net = r["verification"]["netlist"]
    assert net["samples"] == 200 and net["mismatches"] == 0 and net["bit_exact"]  # 50 inputs, topped up to 200
    assert net["ghdl_repairs"].get("asr", 0) > 0 and "sdiv" not in net["ghdl_repairs"]  # shifts, no division
    res = r["hardware"]["resources"]
    assert res["LUT"] > 0 and res["nodsp"]["DSP"] == 0 and res["logic_levels"] > 0
    layers = [row["layer"] for row in res["per_layer"]]
    assert layers[: len(r["layers"])] == [row["name"] for row in r["layers"]]
    assert sum(row["default"]["LUT"] for row in res["per_layer"]) == res["LUT"]
    timing = r["hardware"]["timing"]
    assert timing["device"] == "iCE40 UP5K (SG48)" and timing["fmax_mhz"] > 1 and timing["logic_levels"] > 0
    assert "netlist: 200 vectors through the synthesised netlist" in stdout and "timing: iCE40 UP5K" in stdout
    assert (out / "synth" / "netlist.v").exists() and (out / "synth" / "pnr_ice40.json").exists()
    html = (out / "report.html").read_text()
    assert 'alt="resources per layer"' in html and "iCE40 UP5K (SG48): Fmax" in html
    # a netlist changed on purpose where it is written (one weight constant, plus one): the run fails
    repair = netlist_mod.repair

    def changed(text: str) -> tuple[str, dict[str, int]]:
        fixed, counts = repair(text)
        m = re.search(r"\* 32'b([01]{32}); // smul", fixed)
        assert m is not None
        return fixed[: m.start(1)] + f"{int(m.group(1), 2) + 1:032b}" + fixed[m.end(1) :], counts

    monkeypatch.setattr(netlist_mod, "repair", changed)
    bad = tmp_path / "changed"
    assert main([str(model), "--synth", "--simulate", "50", "-q", "-o", str(bad)]) == 1
    assert "-> NETLIST MISMATCH" in capsys.readouterr().out
    assert report(bad)["verification"]["netlist"]["mismatches"] > 0
    assert report(bad)["verification"]["bit_exact"]  # the VHDL itself is right: only its netlist differs


@pytest.mark.slow
def test_a_streaming_design_is_checked_and_timed_through_its_handshake(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streaming design's netlist takes its words through in_ready and out_ready: a sample is
    ``in_words`` words in and ``out_words`` words out; the place-and-route wrapper has the two ready pins."""
    import tf_keras as keras
    from keras_check import randomise, save

    L = keras.layers
    inp = keras.Input((6, 1), name="x")
    h = L.Conv1D(2, 3, padding="same", activation="relu", name="conv")(inp)
    out = L.Conv1D(1, 1, name="mix")(h)
    model = save(randomise(keras.Model(inp, out, name="tiny_stream")), tmp_path)
    out_dir = tmp_path / "ok"
    args = [str(model), "--io", "stream", "--synth", "--simulate", "50", "-q"]
    assert main([*args, "-o", str(out_dir)]) == 0
    r = report(out_dir)
    assert r["hardware"]["io"]["architecture"] == "stream"
    net = r["verification"]["netlist"]
    assert net["samples"] == 200 and net["mismatches"] == 0 and net["bit_exact"] and net["undefined_outputs"] == 0
    # the FIFOs' wrap-around is an increment, not "mod D" (a 32-bit divider in synthesis: 482 levels)
    assert r["hardware"]["resources"]["logic_levels"] <= 20
    timing = r["hardware"]["timing"]
    assert timing["device"] == "iCE40 UP5K (SG48)" and timing["fmax_mhz"] > 1
    assert timing["wrapper"].endswith("(8 pins: the handshake)")
    assert "in_ready" in (out_dir / "synth" / "tiny_stream_pnr.vhd").read_text()
    capsys.readouterr()
    # the design's output word with its lowest bit inverted, in the netlist only: the run fails
    repair = netlist_mod.repair

    def changed(text: str) -> tuple[str, dict[str, int]]:
        fixed, counts = repair(text)
        top = re.search(r"^module tiny_stream\s", fixed, re.M)
        assert top is not None
        m = re.compile(r"assign out_data = (\w+);").search(fixed, top.end())
        assert m is not None
        return fixed[: m.start()] + f"assign out_data = {m.group(1)} ^ 1'b1;" + fixed[m.end() :], counts

    monkeypatch.setattr(netlist_mod, "repair", changed)
    bad = tmp_path / "changed"
    assert main([*args, "-o", str(bad)]) == 1
    assert "-> NETLIST MISMATCH" in capsys.readouterr().out
    net = report(bad)["verification"]["netlist"]
    assert net["mismatches"] > 0 and net["first_mismatch"]["output_name"].startswith("out[")
