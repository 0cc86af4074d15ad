"""Pipelining to a clock: stages within the delay model's budget, every path balanced, the
reported latency and register bits true to the VHDL, and the same outputs at every period."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.vhdl import ArithOptions, render
from mlinfn_compress.backends.vhdl.adders import Kind
from mlinfn_compress.backends.vhdl.delay import FAMILIES, delay_model
from mlinfn_compress.backends.vhdl.lower import lower_linear
from mlinfn_compress.backends.vhdl.schedule import node_ns, schedule
from mlinfn_compress.compress.fixed import FixedType, bits_for_range
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import accumulator_bounds
from mlinfn_compress.sim.cocotb_runner import run_protocol_tests
from mlinfn_compress.sim.ghdl import simulate

pytestmark = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")

IN_T = FixedType(12, 4, True)


def mlp(name: str, seed: int = 0) -> Graph:
    """16 -> 24 (relu, fused into the core) -> 6: deep enough adder trees to need several stages."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-31, 32, size=(16, 24))
    w1[rng.random(w1.shape) < 0.3] = 0
    w2 = rng.integers(-31, 32, size=(24, 6))
    fc1 = make_node(
        "fc1", "dense", ["input"], 24, weight_type=FixedType(6, 1), bias_type=FixedType(8, 2),
        weight_int=w1, bias_int=rng.integers(-100, 100, size=24),
    )  # fmt: skip
    relu = make_node("relu", "relu", ["fc1"], 24, result_type=FixedType(8, 3, False, "RND_CONV", "SAT"))
    fc2 = make_node(
        "fc2", "dense", ["relu"], 6, weight_type=FixedType(6, 1), bias_type=FixedType(8, 2),
        result_type=FixedType(12, 6, True, "RND", "SAT"), weight_int=w2, bias_int=rng.integers(-100, 100, size=6),
    )  # fmt: skip
    g = make_graph(name, "test", "hand-built", 16, [fc1, relu, fc2], input_type=IN_T)
    for fc in (fc1, fc2):
        frac = max(g.in_type(fc).frac + fc.weight_type.frac, fc.bias_type.frac)
        lo, hi, _ = accumulator_bounds(g, fc, frac)
        fc.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
    fc1.result_type = fc1.accum_type
    return g


def inputs(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = IN_T.min_int, IN_T.max_int
    return np.vstack([np.full(16, lo), np.full(16, hi), rng.integers(lo, hi + 1, size=(n, 16))])


PERIODS = [1.5, 2.5, 4.2, 8.0, 100.0]


@pytest.mark.parametrize("family", FAMILIES)
def test_shorter_clocks_take_more_stages_each_within_budget(family: str) -> None:
    g = mlp("budget")
    fc = g.nodes[0]
    model = delay_model(family)
    scale = model.adder_ns / delay_model("xc7").adder_ns  # the same cuts at periods scaled by the family's delays
    latencies = []
    for period in [p * scale for p in PERIODS]:
        ag = lower_linear(fc, IN_T, then=g.nodes[1])
        s = schedule(ag, period, model)
        latencies.append(s.latency)
        longest_node = max(sum(node_ns(n, model)) for n in ag.nodes)
        assert s.critical_ns <= max(period - model.register_ns, longest_node) + 1e-9
        for i, n in enumerate(ag.nodes):  # balanced: every operand is computed before it is read
            assert all(s.stage[k] <= s.stage[i] <= s.last[k] for k in ag.operands(n))
        assert all(s.last[i] == s.latency for i in ag.outputs)
    assert latencies == sorted(latencies, reverse=True) and latencies[0] > latencies[-1] == 1


def test_register_bits_are_the_registers_the_vhdl_declares(tmp_path: Path) -> None:
    g = mlp("regs")
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", ArithOptions(clock_period_ns=2.0))
    layers = {row["name"]: row for row in d.layers}
    assert layers["relu"]["latency"] == 0 and layers["relu"]["fused_into"] == "fc1"
    for name in ("fc1", "fc2"):
        text = (tmp_path / "vhdl" / f"regs_{name}_core.vhd").read_text()
        regs = re.findall(r"variable r\d+_\d+ : integer range (-?\d+) to (-?\d+)", text)
        outputs = re.findall(r"y\(\d+\) <= (\S+);", text)
        out_bits = 0
        for name_ in outputs:
            m = re.search(rf"variable {re.escape(name_)} : integer range (-?\d+) to (-?\d+)", text)
            out_bits += bits_for_range(int(m.group(1)), int(m.group(2))) if m else 0
        declared = sum(bits_for_range(int(lo), int(hi)) for lo, hi in regs) + out_bits
        assert declared == layers[name]["register_bits"] > 0
        assert layers[name]["latency"] > 1  # pipelined at 2 ns


@pytest.mark.slow
def test_every_period_gives_the_same_outputs_at_its_own_latency(tmp_path: Path) -> None:
    """GHDL on 300 samples equals golden at every period; cocotb confirms each latency, and a
    latency claimed one cycle longer fails."""
    g = mlp("periods")
    x = inputs(300)
    expected = golden.run(g, x)["logits"]
    latencies = []
    for period in (2.0, 4.2, 100.0):
        work = tmp_path / f"p{period}"
        d = render(g, work / "vhdl", work / "sim", ArithOptions(clock_period_ns=period))
        got = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, work / "bulk").logits
        assert got.tolist() == expected.tolist()
        meta = (d.w_in, d.w_out, d.out_signed, d.latency)
        result = run_protocol_tests(d.files, d.top, x[:40], expected[:40], None, meta, work / "cocotb")
        assert (result.tests, result.failed) == (2, 0)
        latencies.append(d.latency)
    assert latencies[0] > latencies[1] > latencies[2] == 2  # one stage per core at 100 ns
    wrong = (d.w_in, d.w_out, d.out_signed, d.latency + 1)
    result = run_protocol_tests(d.files, d.top, x[:40], expected[:40], None, wrong, tmp_path / "wrong")
    assert result.failed == 2


def test_a_zero_column_is_a_constant_without_registers() -> None:
    g = mlp("const")
    g.nodes[0].weight_int[:, 5] = 0
    ag = lower_linear(g.nodes[0], IN_T, then=g.nodes[1])
    s = schedule(ag, 2.0)
    const = ag.outputs[5]
    assert ag.nodes[const].kind == Kind.CONST and s.stage[const] == s.last[const] == s.latency - 1


def test_a_family_delay_model_cuts_the_pipeline_and_is_recorded(tmp_path: Path) -> None:
    """The same network and clock: the slower routed delays of an iCE40 take more stages than the xc7
    estimate, the design records the family, and both are bit exact."""
    g = mlp("family")
    x = np.random.default_rng(2).integers(IN_T.min_int, IN_T.max_int + 1, (40, 16))
    stages = {}
    for family in ("xc7", "ice40"):
        d = render(g, tmp_path / family / "vhdl", tmp_path / family / "sim", ArithOptions(clock_period_ns=20.0,
                   family=family))  # fmt: skip
        stages[family] = d.latency
        assert d.arith.family == family and d.to_json()["arith"]["family"] == family
        core = (tmp_path / family / "vhdl" / f"{d.top}_fc1_core.vhd").read_text()
        assert f"Pipelined to 20.0 ns by the {family} delay model" in core
        got = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp_path / family / "work").logits
        assert got.tolist() == golden.run(g, x)["logits"].tolist()
    assert stages["ice40"] > stages["xc7"]
    with pytest.raises(ValueError, match="the device family must be one of xc7, ecp5, ice40, got 'xc9'"):
        ArithOptions(family="xc9")
