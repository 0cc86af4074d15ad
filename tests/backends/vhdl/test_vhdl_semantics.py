"""The VHDL of every rounding and overflow mode equals the golden model, exhaustively."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.vhdl import render
from mlinfn_compress.compress.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedType
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.sim.ghdl import simulate

IN_T = FixedType(8, 4, True)  # every integer -128..127, 4 fractional bits


def cast_graph(name: str, op: str, t: FixedType) -> Graph:
    node = make_node("q", op, ["input"], 1, result_type=t)
    return make_graph(name, "test", "hand-built", 1, [node], input_type=IN_T)


def run_vhdl(graph: Graph, x: np.ndarray, tmp: Path) -> np.ndarray:
    d = render(graph, tmp / "vhdl", tmp / "sim")
    return simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp / "work").logits


ALL_INPUTS = np.arange(IN_T.min_int, IN_T.max_int + 1).reshape(-1, 1)


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_rounding_modes_exhaustive(rounding: str, tmp_path: Path) -> None:
    # 4 -> 2 fractional bits: every tie occurs, positive and negative; the range forces saturation.
    g = cast_graph(f"rnd_{rounding.lower()}", "cast", FixedType(5, 3, True, rounding, "SAT"))
    expected = golden.run(g, ALL_INPUTS)["logits"]
    assert run_vhdl(g, ALL_INPUTS, tmp_path).tolist() == expected.tolist()


@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("signed", [True, False])
def test_overflow_modes_exhaustive(overflow: str, signed: bool, tmp_path: Path) -> None:
    op = "cast" if signed else "relu"
    g = cast_graph(f"ovf_{overflow.lower()}_{op}", op, FixedType(4, 2, signed, "RND_CONV", overflow))
    expected = golden.run(g, ALL_INPUTS)["logits"]
    got = run_vhdl(g, ALL_INPUTS, tmp_path)
    assert got.tolist() == expected.tolist()
    assert expected.min() >= g.output.result_type.min_int and expected.max() <= g.output.result_type.max_int


def test_golden_dense_by_hand(tmp_path: Path) -> None:
    """A 2-3 dense layer with hand-computed results, rounding to fewer bits."""
    node = make_node(
        "fc",
        "dense",
        ["input"],
        3,
        weight_type=FixedType(4, 2, True),  # 2 fractional bits
        bias_type=FixedType(4, 2, True),
        accum_type=FixedType(16, 10, True),  # 6 = 4 + 2 fractional bits
        result_type=FixedType(8, 6, True, "RND", "SAT"),  # 2 fractional bits
        weight_int=np.array([[1, 0, -4], [2, 0, 3]]),  # 0.25 0 -1 ; 0.5 0 0.75
        bias_int=np.array([1, -2, 0]),  # 0.25 -0.5 0
    )
    g = make_graph("hand", "test", "hand-built", 2, [node], input_type=IN_T)
    x = np.array([[16, 16], [-24, 8], [127, -128]])  # (1, 1), (-1.5, 0.5), (7.9375, -8)
    # row 0: 0.25+0.5+0.25 = 1.0 -> 4; -0.5 -> -2; -1+0.75 = -0.25 -> -1
    # row 1: -0.375+0.25+0.25 = 0.125 -> 0.5 lsb, RND -> 1 (0.25); -2; 1.5+0.375 = 1.875 -> 7.5 lsb -> 8
    # row 2: 1.984375-4+0.25 = -1.765625 -> -7.0625 lsb -> -7; -2; -7.9375-6 = -13.9375 -> -55.75 lsb -> -56
    expected = [[4, -2, -1], [1, -2, 8], [-7, -2, -56]]
    assert golden.run(g, x)["logits"].tolist() == expected
    assert run_vhdl(g, x, tmp_path).tolist() == expected
    # The zero column generates no arithmetic at all: its bias, re-quantised, is a constant.
    text = (tmp_path / "vhdl" / "hand_fc_core.vhd").read_text()
    assert "y(1) <= -2;" in text


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")
def test_synthesis_and_pruning_shows_in_resources(tmp_path: Path) -> None:
    """ghdl --synth accepts the design, and zero weights remove cells in yosys."""
    rng = np.random.default_rng(0)
    cells = {}
    for zero_frac in (0.0, 0.8):
        w = rng.integers(-31, 32, size=(6, 4))
        w[rng.random(w.shape) < zero_frac] = 0
        w[w == 0] = 0 if zero_frac else 5
        node = make_node(
            "fc",
            "dense",
            ["input"],
            4,
            weight_type=FixedType(6, 1, True),
            bias_type=FixedType(6, 1, True),
            result_type=FixedType(8, 3, True, "RND", "SAT"),
            weight_int=w,
            bias_int=rng.integers(-31, 32, size=4),
        )
        g = make_graph(f"syn{int(zero_frac * 100)}", "test", "hand-built", 6, [node], input_type=IN_T)
        node.accum_type = FixedType(20, 11, True)
        d = render(g, tmp_path / g.name, tmp_path / g.name / "sim")
        work = tmp_path / g.name / "work"
        work.mkdir()
        subprocess.run(["ghdl", "-a", "--std=08", f"--workdir={work}", *map(str, d.files)], check=True)
        v = subprocess.run(
            ["ghdl", "--synth", "--std=08", f"--workdir={work}", "--out=verilog", d.top],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (tmp_path / f"{g.name}.v").write_text(v)
        stat = subprocess.run(
            ["yosys", "-p", f"read_verilog {tmp_path / g.name}.v; synth -flatten -top {d.top}; stat"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        cells[zero_frac] = int(stat.split("Number of cells:")[-1].split()[0])
    assert cells[0.8] < cells[0.0] * 0.6, cells
