"""Shift-and-add CMVM cores: adder graphs equal the golden model, in Python and in GHDL, on the
matrices that break arithmetic (zero rows and columns, all zeros, +-1, powers of two, the extremes
of the weight format); --dsp stays bit-exact; no multiplier reaches the VHDL unless asked for."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.vhdl import ArithOptions, render
from mlinfn_compress.backends.vhdl.adders import Kind, csd_digits
from mlinfn_compress.backends.vhdl.lower import DSP_MIN_DIGITS, dsp_mask, lower_linear
from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import accumulator_bounds
from mlinfn_compress.sim.ghdl import simulate
from mlinfn_compress.synth.yosys import synthesise_verilog, vhdl_to_verilog

pytestmark = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")

IN_T = FixedType(10, 4, True)  # inputs -512..511
W_T = FixedType(6, 1, True)  # weights -32..31


def matrix(case: str, rng: np.random.Generator, n_in: int = 9, n_out: int = 7) -> np.ndarray:
    if case == "zeros":
        return np.zeros((n_in, n_out), dtype=np.int64)
    if case == "ones":
        return rng.choice([-1, 1], size=(n_in, n_out))
    if case == "powers_of_two":
        return rng.choice([-1, 1], size=(n_in, n_out)) * 2 ** rng.integers(0, 5, size=(n_in, n_out))
    if case == "extremes":
        return rng.choice([W_T.min_int, W_T.max_int, W_T.min_int + 1, 0], size=(n_in, n_out))
    w = rng.integers(W_T.min_int, W_T.max_int + 1, size=(n_in, n_out))
    w[rng.random(w.shape) < 0.4] = 0
    w[2, :] = 0  # an input no output uses
    w[:, 3] = 0  # an output with only its bias
    return w


def dense_graph(name: str, w: np.ndarray, bias: np.ndarray, result: FixedType) -> Graph:
    fc = make_node(
        "fc",
        "dense",
        ["input"],
        w.shape[1],
        weight_type=W_T,
        bias_type=FixedType(8, 3, True),
        result_type=result,
        weight_int=w,
        bias_int=bias,
    )
    g = make_graph(name, "test", "hand-built", w.shape[0], [fc], input_type=IN_T)
    frac = max(IN_T.frac + W_T.frac, fc.bias_type.frac)
    lo, hi, _ = accumulator_bounds(g, fc, frac)
    fc.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
    return g


def inputs(n_in: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = IN_T.min_int, IN_T.max_int
    corners = [np.full(n_in, lo), np.full(n_in, hi), np.zeros(n_in, np.int64), np.resize([lo, hi], n_in)]
    return np.vstack([*corners, rng.integers(lo, hi + 1, size=(n, n_in)), rng.integers(-8, 8, size=(n, n_in))])


CASES = ["random", "zeros", "ones", "powers_of_two", "extremes"]
RESULTS = {
    "accumulator": None,  # the sum itself, as QKeras models keep it
    "rnd_conv_sat": FixedType(8, 4, True, "RND_CONV", "SAT"),
    "trn_wrap": FixedType(7, 5, True, "TRN", "WRAP"),
    "rnd_zero_sat_sym": FixedType(9, 6, True, "RND_ZERO", "SAT_SYM"),
    "unsigned_rnd_sat": FixedType(6, 3, False, "RND", "SAT"),
}


def graph_for(case: str, result: str, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    w = matrix(case, rng)
    bias = rng.integers(-100, 100, size=w.shape[1])
    g = dense_graph(f"{case}_{result}", w, bias, FixedType(8, 4))
    fc = g.nodes[0]
    fc.result_type = RESULTS[result] or fc.accum_type
    return g


@pytest.mark.parametrize("result", list(RESULTS))
@pytest.mark.parametrize("case", CASES)
def test_adder_graph_equals_golden(case: str, result: str) -> None:
    """The adder graph, run node by node, equals the golden model on corners and random inputs."""
    for seed in range(3):
        g = graph_for(case, result, seed)
        fc = g.nodes[0]
        ag = lower_linear(fc, IN_T)
        x = inputs(fc.n_in, 200, seed)
        assert ag.run(x).tolist() == golden.run(g, x)["logits"].tolist()
        assert not any(n.kind == Kind.MUL for n in ag.nodes)
        w = np.asarray(fc.weight_int)
        assert ag.adders <= sum(len(csd_digits(int(v))) for v in w.ravel()) + fc.n_out
        if case == "zeros":
            assert ag.adders == 0 and all(ag.nodes[i].kind == Kind.CONST for i in ag.outputs)


def test_ranges_are_exact() -> None:
    """Every adder's range is reached, both ends: its signals are no wider than they must be."""
    g = graph_for("random", "accumulator")
    ag = lower_linear(g.nodes[0], IN_T)
    adders = [i for i, n in enumerate(ag.nodes) if n.kind in (Kind.ADD, Kind.CONST_ADD)]
    assert adders
    for i in adders:
        c = np.array([int(v) for v in ag.coef[i]])
        low = np.where(c > 0, IN_T.min_int, IN_T.max_int)
        high = np.where(c > 0, IN_T.max_int, IN_T.min_int)
        ag.outputs = [i]
        assert ag.run(np.vstack([low, high])).ravel().tolist() == [ag.nodes[i].lo, ag.nodes[i].hi]


def run_vhdl(g: Graph, x: np.ndarray, tmp: Path, options: ArithOptions | None = None) -> tuple[np.ndarray, str]:
    d = render(g, tmp / "vhdl", tmp / "sim", options)
    core = (tmp / "vhdl" / f"{g.name}_fc_core.vhd").read_text()
    return simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp / "work").logits, core


@pytest.mark.parametrize(("case", "result"), [(c, "rnd_conv_sat") for c in CASES] + [("random", "trn_wrap")])
def test_ghdl_equals_golden(case: str, result: str, tmp_path: Path) -> None:
    g = graph_for(case, result, seed=5)
    x = inputs(g.nodes[0].n_in, 300, seed=5)
    got, core = run_vhdl(g, x, tmp_path)
    assert got.tolist() == golden.run(g, x)["logits"].tolist()
    assert all(m == "2**" for m in re.findall(r"\* ?(\S{3})", core))  # every * is a shift
    if case == "random":
        assert "x(2)" not in core  # the input that no output uses is never read


def test_dsp_maps_the_costly_weights_and_stays_bit_exact(tmp_path: Path) -> None:
    g = graph_for("random", "rnd_conv_sat", seed=2)
    fc = g.nodes[0]
    w = np.asarray(fc.weight_int)
    mask = dsp_mask(w)
    assert mask.any() and all(len(csd_digits(int(v))) >= DSP_MIN_DIGITS for v in w[mask])
    ag = lower_linear(fc, IN_T, dsp=True)
    assert ag.multipliers == int(mask.sum())
    x = inputs(fc.n_in, 300, seed=2)
    got, core = run_vhdl(g, x, tmp_path, ArithOptions(dsp=True))
    assert got.tolist() == golden.run(g, x)["logits"].tolist()
    products = re.findall(r":= x\(\d+\) \* \(?(-?\d+)\)?;", core)
    assert sorted(int(v) for v in products) == sorted(int(v) for v in w[mask])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("yosys") is None, reason="yosys not installed")
def test_yosys_finds_no_dsp_by_default_and_dsps_with_dsp(tmp_path: Path) -> None:
    g = graph_for("random", "rnd_conv_sat", seed=2)
    found = {}
    for dsp in (False, True):
        work = tmp_path / f"dsp_{dsp}"
        d = render(g, work / "vhdl", work / "sim", ArithOptions(dsp=dsp))
        netlist = vhdl_to_verilog(d.files, d.top, work)
        found[dsp] = synthesise_verilog([netlist], d.top, work)
    assert found[False]["DSP"] == 0 and found[False]["LUT"] > 0 and found[False]["logic_levels"] > 0
    assert found[True]["DSP"] > 0
