"""--arith, --clock-period and --dsp from the command line to design.json and report.json."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import report

from mlinfn_compress.cli import main


@pytest.fixture(scope="module")
def model(small_mlp: Callable[[str, float], Path]) -> Path:
    return small_mlp("arith_mlp", 0.3)


def run(args: list[str]) -> int:
    return main([*args, "-q", "--simulate", "300"])


@pytest.mark.slow
def test_naive_and_shift_add_agree_and_say_which_they_are(model: Path, tmp_path: Path) -> None:
    for arith in ("naive", "shift-add"):
        assert run([str(model), "--arith", arith, "-o", str(tmp_path / arith)]) == 0
    naive, adders = report(tmp_path / "naive"), report(tmp_path / "shift-add")
    for r, arith in ((naive, "naive"), (adders, "shift-add")):
        assert r["verification"]["bit_exact"] and r["verification"]["protocol"]["failed"] == 0
        assert r["hardware"]["arithmetic"] == arith
        design = json.loads((tmp_path / arith / "design.json").read_text())["vhdl"]
        assert design["arith"] == {"arith": arith, "clock_period_ns": 4.2, "dsp": False, "family": "xc7"}
    first, second = (row["name"] for row in naive["layers"] if row["op"] == "dense")  # names vary in a session
    core = (tmp_path / "naive" / "vhdl" / f"arith_mlp_{first}_core.vhd").read_text()
    assert re.search(r"x\(\d+\) \* \d+", core)  # the naive design multiplies by the weights
    assert naive["hardware"]["latency_cycles"] == 3  # one register per layer and per relu
    assert naive["hardware"]["latency_ns"] is None and naive["hardware"]["clock_period_ns"] is None
    rows = {row["name"]: row for row in adders["layers"]}
    assert rows[first]["adders"] > 0 and rows[first]["register_bits"] > 0
    assert rows[first]["pipeline_stages"] >= 1 and rows[second]["pipeline_stages"] >= 1


@pytest.mark.slow
def test_clock_period_and_dsp_are_recorded_and_verify_uses_the_same_design(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "fast"
    assert run([str(model), "--clock-period", "1.5", "--dsp", "-o", str(outdir)]) == 0
    r = report(outdir)
    hw = r["hardware"]
    assert (hw["clock_period_ns"], hw["dsp"], hw["arithmetic"]) == (1.5, True, "shift-add")
    assert hw["latency_ns"] == round(1.5 * hw["latency_cycles"], 3)
    assert sum(row.get("dsp_products", 0) for row in r["layers"]) > 0
    slow = tmp_path / "slow"
    assert run([str(model), "--clock-period", "50", "-o", str(slow)]) == 0
    assert report(slow)["hardware"]["latency_cycles"] < hw["latency_cycles"]
    capsys.readouterr()
    assert main(["verify", str(outdir), "-q"]) == 0
    again = report(outdir)
    assert again["hardware"] == hw and again["verification"]["bit_exact"] is True
    assert "BIT-EXACT" in capsys.readouterr().out


def test_arithmetic_options_need_a_vhdl_target(model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run([str(model), "--target", "hls", "--dsp", "-o", str(tmp_path / "o")]) == 2
    assert "--arith and --dsp choose the VHDL design's arithmetic" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
