"""Any format the quantiser produces renders: tensors, sums and re-quantisations of 31 to 64 bits
and shifts beyond 30 bits, in numeric_std where VHDL integers are too narrow, equal to golden."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node, report

from mlinfn_compress.backends.vhdl import ArithOptions, render
from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import accumulator_bounds
from mlinfn_compress.errors import UserError
from mlinfn_compress.sim.ghdl import simulate

pytestmark = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")

WIDTHS = [31, 32, 33, 48, 64]
N_IN = 4


def inputs(t: FixedType, n: int, seed: int = 0, size: int = N_IN) -> np.ndarray:
    """Corners and random values of type ``t`` (Python integers in an object array)."""
    rnd = random.Random(seed)
    lo, hi = t.min_int, t.max_int
    rows = [[lo] * size, [hi] * size, [0] * size, [lo, hi] * (size // 2) + [0] * (size % 2)]
    rows += [[rnd.randint(lo, hi) for _ in range(size)] for _ in range(n)]
    rows += [[rnd.randint(max(lo, -1000), min(hi, 1000)) for _ in range(size)] for _ in range(n)]
    return np.array(rows, dtype=object)


def run_vhdl(g: Graph, x: np.ndarray, tmp: Path, options: ArithOptions | None = None) -> list[list[int]]:
    d = render(g, tmp / "vhdl", tmp / "sim", options)
    sim = simulate(
        d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp / "work", w_in=d.w_in, w_out=d.w_out,
        out_signed=d.out_signed,
    )  # fmt: skip
    return [[int(v) for v in row] for row in sim.logits]


def expected(g: Graph, x: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in golden.run(g, x)["logits"]]


def dense(name: str, in_t: FixedType, result: FixedType | None) -> Graph:
    """A 4 -> 3 dense layer on ``in_t`` inputs; ``result`` None keeps the exact sum."""
    fc = make_node(
        "fc",
        "dense",
        ["input"],
        3,
        weight_type=FixedType(6, 1, True),
        bias_type=FixedType(8, 4, True),
        weight_int=np.array([[31, -32, 0], [1, 0, 0], [-7, 12, 0], [0, 3, 0]]),
        bias_int=np.array([5, -128, 77]),
    )
    g = make_graph(name, "test", "hand-built", N_IN, [fc], input_type=in_t)
    frac = max(in_t.frac + fc.weight_type.frac, fc.bias_type.frac)
    lo, hi, _ = accumulator_bounds(g, fc, frac)
    fc.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
    fc.result_type = result or fc.accum_type
    return g


@pytest.mark.parametrize("w", WIDTHS)
def test_dense_with_wide_inputs_and_sums(w: int, tmp_path: Path) -> None:
    """Inputs of w bits, the exact sum as the output (wider still), and a narrow rounded result."""
    in_t = FixedType(w, w // 2, True)
    x = inputs(in_t, 40, seed=w)
    for label, result in (("sum", None), ("narrow", FixedType(12, 6, True, "RND_CONV", "SAT"))):
        g = dense(f"dense{w}_{label}", in_t, result)
        assert run_vhdl(g, x, tmp_path / label) == expected(g, x)
    assert g.nodes[0].accum_type.width > w


@pytest.mark.slow
@pytest.mark.parametrize("w", WIDTHS)
def test_cast_and_clip_of_wide_values_with_shifts_beyond_30(w: int, tmp_path: Path) -> None:
    in_t = FixedType(w, 3, True)  # w - 3 fractional bits
    x = inputs(in_t, 60, seed=w)
    for op, result in (
        ("cast", FixedType(10, 8, True, "RND_CONV", "SAT")),  # shift right by w - 5
        ("relu", FixedType(9, 4, False, "RND", "SAT")),
        ("cast", FixedType(w, 3, True, "TRN", "WRAP")),  # identity
    ):
        node = make_node("q", op, ["input"], N_IN, result_type=result)
        g = make_graph(f"{op}{w}_{result.width}", "test", "hand-built", N_IN, [node], input_type=in_t)
        assert run_vhdl(g, x, tmp_path / g.name) == expected(g, x), g.name
    # narrow to wide: a shift left by w - 6 into a w-bit saturating type
    node = make_node("q", "cast", ["input"], N_IN, result_type=FixedType(w, 2, True, "TRN", "SAT"))
    narrow = FixedType(8, 4, True)
    g = make_graph(f"widen{w}", "test", "hand-built", N_IN, [node], input_type=narrow)
    x = inputs(narrow, 30, seed=1)
    assert run_vhdl(g, x, tmp_path / "widen") == expected(g, x)


def test_the_naive_rendering_refuses_wide_results_with_a_clear_message(tmp_path: Path) -> None:
    g = dense("naive_wide", FixedType(48, 24, True), None)
    with pytest.raises(UserError, match=r"layer 'fc': --arith naive cannot write results of type fixed<"):
        render(g, tmp_path / "vhdl", tmp_path / "sim", ArithOptions(arith="naive"))


def test_unsupported_wide_entities_say_so(tmp_path: Path) -> None:
    from mlinfn_compress.compress.ir import LeakyRelu

    node = LeakyRelu(name="leaky", inputs=["input"], shape=(N_IN,), alpha=0.25)
    node.alpha_type, node.alpha_int = FixedType(4, 0, True), 4
    node.result_type = FixedType(10, 4, True, "RND", "SAT")
    g = make_graph("leaky_wide", "test", "hand-built", N_IN, [node], input_type=FixedType(40, 10, True))
    with pytest.raises(UserError, match=r"layer 'leaky' \(leaky_relu\): values up to \d+ do not fit the 32-bit"):
        render(g, tmp_path / "vhdl", tmp_path / "sim")


@pytest.fixture(scope="module")
def tiny_weights_model(models_dir: Path) -> Path:
    """hls4ml's 16-100-100-100-100-100-5 example shape, float, trained weights around 1e-6."""
    import tf_keras as k

    rng = np.random.default_rng(0)
    layers = [k.layers.Dense(100, activation="relu", name=f"fc{i}") for i in range(1, 6)]
    model = k.Sequential([k.layers.Input((16,)), *layers, k.layers.Dense(5, activation="softmax", name="out")])
    for layer in model.layers:
        w, b = layer.get_weights()
        layer.set_weights([rng.normal(0, 1e-6, w.shape), rng.normal(0, 1e-6, b.shape)])
    path = models_dir / "tiny_weights.h5"
    model.save(path, include_optimizer=False)
    return path


@pytest.mark.slow
def test_tiny_weights_network_verifies_in_vhdl(tiny_weights_model: Path, tmp_path: Path) -> None:
    """Post-training quantisation gives weights like fixed<8,-16> and sums over 40 bits: they render."""
    outdir = tmp_path / "out"
    assert main([str(tiny_weights_model), "--target", "vhdl", "--simulate", "200", "-o", str(outdir), "-q"]) == 0
    r = report(outdir)
    assert r["verification"]["bit_exact"] is True and r["verification"]["protocol"]["failed"] == 0
    dense_rows = [row for row in r["layers"] if row["op"] == "dense"]
    weights = [FixedType.parse(row["weight_type"]) for row in dense_rows]
    sums = [FixedType.parse(row["accum_type"]) for row in dense_rows]
    assert all(t.integer < -10 for t in weights)
    assert max(t.width for t in sums) > 40 and max(t.frac for t in sums) > 30
