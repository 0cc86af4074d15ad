"""Dense layers whose sums exceed 32-bit VHDL integers: the numeric_std fallback equals the golden model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.vhdl import VHDL_INT_MAX, ArithOptions, render
from mlinfn_compress.compress.fixed import ROUNDING_MODES, FixedType, requantize
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, accumulator_bounds, quantise
from mlinfn_compress.sim.ghdl import simulate

pytestmark = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")

IN_T = FixedType(24, 12, True)  # fixed<24,12>: 12 fractional bits
N_IN = 12


def wide_graph(name: str, result: FixedType, tail: bool = False, seed: int = 0) -> Graph:
    """input -> fc1 (sums over 40 bits), with ``tail`` -> relu -> fc2 (integer path)."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-(2**15), 2**15, size=(N_IN, 4))
    w1[:, 0] = 2**15 - 1  # the largest magnitudes
    w1[:, 1] = -(2**15)
    w1[rng.random(w1.shape) < 0.2] = 0
    w1[:, 3] = 0  # a column of zeros: only the bias
    fc1 = make_node(
        "fc1",
        "dense",
        ["input"],
        4,
        weight_type=FixedType(16, 2, True),  # 14 fractional bits: products have 26
        bias_type=FixedType(44, 16, True),  # 28 fractional bits: the weights are shifted left by 2
        result_type=result,
        weight_int=w1,
        bias_int=np.array([2**38 + 12345, -(2**39) + 7, 0, -(2**37) - 3]),
    )
    relu = make_node("act", "relu", ["fc1"], 4, result_type=FixedType(12, 6, False, "RND", "SAT"))
    fc2 = make_node(
        "fc2",
        "dense",
        ["act"],
        2,
        weight_type=FixedType(4, 1, True),
        bias_type=FixedType(4, 1, True),
        result_type=FixedType(12, 8, True, "RND", "SAT"),
        weight_int=np.array([[1, -2], [3, 0], [-4, 5], [7, -8]]),
        bias_int=np.array([3, -5]),
    )
    nodes = [fc1, relu, fc2] if tail else [fc1]
    g = make_graph(name, "test", "hand-built", N_IN, nodes, input_type=IN_T)
    for n in nodes[::2]:
        frac = max(g.in_type(n).frac + n.weight_type.frac, n.bias_type.frac)
        lo, hi, _ = accumulator_bounds(g, n, frac)
        n.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
    return g


def inputs(n_random: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lo, hi = IN_T.min_int, IN_T.max_int
    corners = [np.full(N_IN, lo), np.full(N_IN, hi), np.zeros(N_IN, dtype=np.int64), np.tile([lo, hi], N_IN // 2)]
    small = rng.integers(-64, 64, size=(n_random, N_IN))  # near zero: rounding ties and sign changes
    return np.vstack([*corners, rng.integers(lo, hi + 1, size=(n_random, N_IN)), small])


NAIVE = ArithOptions(arith="naive")


def run_vhdl(graph: Graph, x: np.ndarray, tmp: Path, options: ArithOptions | None = None) -> np.ndarray:
    d = render(graph, tmp / "vhdl", tmp / "sim", options)
    return simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp / "work").logits


RESULTS = {
    "rnd_conv_sat": FixedType(20, 14, True, "RND_CONV", "SAT"),  # shift right by 22, saturates
    "rnd_sat": FixedType(24, 20, True, "RND", "SAT"),  # shift 24, saturates
    "trn_wrap": FixedType(16, 10, True, "TRN", "WRAP"),  # shift 22, wraps
    "rnd_zero_satsym": FixedType(30, 0, True, "RND_ZERO", "SAT_SYM"),  # shift left by 2
    "trn_zero_sat_zero": FixedType(28, 20, True, "TRN_ZERO", "SAT_ZERO"),  # shift 20
}


@pytest.mark.slow
@pytest.mark.parametrize("label", list(RESULTS))
def test_wide_dense_equals_golden(label: str, tmp_path: Path) -> None:
    g = wide_graph(f"wide_{label}", RESULTS[label])
    fc1 = g.nodes[0]
    assert fc1.accum_type is not None and fc1.accum_type.width >= 40
    x = inputs(60)
    expected = golden.run(g, x)["logits"]
    assert len({tuple(r) for r in expected.tolist()}) > 60  # the outputs vary from row to row
    assert run_vhdl(g, x, tmp_path / "adders").tolist() == expected.tolist()  # shift-add, numeric_std
    assert run_vhdl(g, x, tmp_path, NAIVE).tolist() == expected.tolist()
    text = (tmp_path / "vhdl" / f"{g.name}_fc1_core.vhd").read_text()
    assert "ACC_W" in text and "signed'(\"" in text and "shift_left(resize(to_signed(x(" in text
    bias3 = requantize(np.array([int(fc1.bias_int[3])]), fc1.bias_type.frac, fc1.result_type)
    assert f"y(3) <= {int(bias3[0])};" in text  # the zero column: its bias, requantised
    assert text.count("to_signed(x(") == int(np.count_nonzero(fc1.weight_int))  # zero weights: no terms


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_wide_rounding_ties(rounding: str, tmp_path: Path) -> None:
    """Every remainder of a 3-bit shift, both signs, in a layer made wide by a huge bias elsewhere."""
    fc = make_node(
        "fc",
        "dense",
        ["input"],
        2,
        weight_type=FixedType(4, 2, True),  # 2 fractional bits: products have 14
        bias_type=FixedType(40, 26, True),
        accum_type=FixedType(42, 28, True),
        result_type=FixedType(16, 5, True, rounding, "SAT"),  # 11 fractional bits: shift 3
        weight_int=np.array([[1, 1], [0, -3]]),
        bias_int=np.array([0, 2**38]),
    )
    g = make_graph(f"ties_{rounding.lower()}", "test", "hand-built", 2, [fc], input_type=IN_T)
    x = np.array([[v, 0] for v in range(-40, 41)] + [[IN_T.min_int, IN_T.max_int], [IN_T.max_int, IN_T.min_int]])
    expected = golden.run(g, x)["logits"]
    assert run_vhdl(g, x, tmp_path / "adders").tolist() == expected.tolist()
    assert run_vhdl(g, x, tmp_path, NAIVE).tolist() == expected.tolist()


def test_only_the_wide_layer_uses_the_wide_template(tmp_path: Path) -> None:
    g = wide_graph("wide_tail", RESULTS["rnd_conv_sat"], tail=True)
    x = inputs(30)
    assert run_vhdl(g, x, tmp_path, NAIVE).tolist() == golden.run(g, x)["logits"].tolist()
    text = {p.name: p.read_text() for p in (tmp_path / "vhdl").glob("*.vhd")}
    assert [n for n, t in text.items() if "ACC_W" in t] == ["wide_tail_fc1_core.vhd"]
    narrow = text["wide_tail_fc2_core.vhd"]  # integer sums; the re-quantisation slices bits, never divides
    assert "shift_right" in narrow and " / " not in narrow and " mod " not in narrow


def test_wide_dense_saturates_and_wraps(tmp_path: Path) -> None:
    """The corner inputs drive the narrow result types out of range, both ways."""
    for label in ("rnd_conv_sat", "trn_wrap"):
        g = wide_graph(f"corner_{label}", RESULTS[label])
        t = g.nodes[0].result_type
        out = golden.run_all(g, inputs(0))["fc1"]
        if label == "rnd_conv_sat":
            assert out.max() == t.max_int and out.min() == t.min_int
        else:
            acc = golden.run_all(g, inputs(0))["fc1"]
            assert acc.min() >= t.min_int and acc.max() <= t.max_int


@pytest.mark.parametrize("arith", ["shift-add", "naive"])
def test_wide_design_synthesises(arith: str, tmp_path: Path) -> None:
    g = wide_graph("wide_syn", RESULTS["rnd_conv_sat"])
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", ArithOptions(arith=arith))
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["ghdl", "-a", "--std=08", f"--workdir={work}", *map(str, d.files)], check=True)
    subprocess.run(
        ["ghdl", "--synth", "--std=08", f"--workdir={work}", "--out=none", d.top],
        check=True,
        capture_output=True,
        text=True,
    )


def test_quantised_wide_model_renders_and_matches(tmp_path: Path) -> None:
    """A model quantised with wide types, rejected before ("more than the 32-bit"), now renders bit-exactly."""
    rng = np.random.default_rng(3)
    n_in = 16
    dense = make_node(
        "fc", "dense", ["input"], 3, weight=rng.normal(0, 4, size=(n_in, 3)), bias=rng.normal(0, 1, size=3)
    )
    g = make_graph("e2e_wide", "test", "hand-built", n_in, [dense])
    cfg = QuantConfig(weight_bits=16, act_bits=16, input_type=FixedType.parse("fixed<24,12,RND_CONV,SAT>"))
    quantise(g, cfg, rng.normal(0, 2, size=(64, n_in)))
    assert dense.accum_type is not None
    assert accumulator_bounds(g, dense, dense.accum_type.frac)[2] > VHDL_INT_MAX
    x = np.vstack(
        [
            np.full(n_in, IN_T.min_int),
            np.full(n_in, IN_T.max_int),
            rng.integers(IN_T.min_int, IN_T.max_int + 1, size=(40, n_in)),
            rng.integers(-(2**13), 2**13, size=(40, n_in)),
        ]
    )
    assert run_vhdl(g, x, tmp_path / "adders").tolist() == golden.run(g, x)["logits"].tolist()
    assert run_vhdl(g, x, tmp_path, NAIVE).tolist() == golden.run(g, x)["logits"].tolist()
