"""The golden model and the dataflow VHDL of graphs with every IR operation: equal, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ir_graphs import C, H, W, every_op_graph  # noqa: E402

from mlinfn_compress.backends.vhdl import ArithOptions, render
from mlinfn_compress.compress.fixed import FixedType, quantize
from mlinfn_compress.compress.ir import (
    Graph,
    IRError,
    Linear,
    Pool,
    Reshape,
    Window,
    golden,
)
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.sim.ghdl import simulate


def test_shapes_follow_from_the_inputs() -> None:
    g = every_op_graph(np.random.default_rng(0))
    shapes = {n.name: n.shape for n in g.nodes}
    assert shapes["conv"] == (6, 6, 4) and shapes["pool"] == (3, 3, 4) and shapes["cat"] == (6, 6, 8)
    assert shapes["avg"] == (3, 3, 3) and shapes["pad"] == (4, 4, 3) and shapes["crop"] == (3, 3, 3)
    assert shapes["dense"] == (5,)


def test_a_shape_that_does_not_fit_is_refused() -> None:
    g = every_op_graph(np.random.default_rng(0))
    g.nodes[-2] = Reshape(name="flat", inputs=["crop"], target=(28,))
    with pytest.raises(IRError, match=r"cannot reshape \(3, 3, 3\) to \(28,\)"):
        g.infer_shapes()


def test_convolution_golden_equals_a_direct_loop() -> None:
    """The windowed CMVM computes the textbook convolution (zero padding, stride 2)."""
    rng = np.random.default_rng(1)
    k = rng.normal(0, 1, (3, 3, 2, 4))
    node = Linear(name="c", inputs=["input"], weight=k.reshape(18, 4), bias=np.zeros(4),
                  window=Window((3, 3), (2, 2), ((1, 1), (0, 1))), label="conv2d")  # fmt: skip
    g = Graph("c", "keras", "x", (5, 6, 2), [node])
    g.infer_shapes()
    x = rng.normal(0, 1, (2, 5, 6, 2))
    xp = np.pad(x, ((0, 0), (1, 1), (0, 1), (0, 0)))
    want = np.zeros((2, *node.shape))
    for i in range(node.shape[0]):
        for j in range(node.shape[1]):
            want[:, i, j] = np.einsum("nhwc,hwco->no", xp[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3], k)
    assert np.allclose(g.run_float(x)["c"], want)


def test_average_pooling_truncates_toward_zero_on_the_accumulator_grid() -> None:
    node = Pool(name="p", inputs=["input"], mode="avg", window=Window((3,), (3,), ((0, 0),)))
    g = Graph("p", "keras", "x", (3, 1), [node], input_type=FixedType(8, 8, True))
    g.infer_shapes()
    node.accum_type = FixedType(12, 11, True)  # one fractional bit
    node.result_type = FixedType(8, 8, True, "RND", "SAT")
    x = np.array([[[1], [1], [0]], [[-1], [-1], [0]], [[2], [2], [1]]])
    # sums 2, -2, 5 = 4, -4, 10 half-units; / 3 truncated: 1, -1, 3 half-units; RND to integers: 1, 0, 2
    assert golden.run(g, x)["logits"].ravel().tolist() == [1, 0, 2]


@pytest.mark.parametrize(("seed", "arith"), [(0, "shift-add"), (1, "shift-add"), (0, "naive")])
def test_every_op_graph_vhdl_equals_golden(seed: int, arith: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    g = every_op_graph(rng)
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, (H, W, C), seed))
    x = quantize(default_inputs(300, (H, W, C), seed=seed + 3) * 2, g.input_type).reshape(300, -1)
    expected = golden.run(g, x)["logits"]
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", ArithOptions(arith=arith))
    got = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp_path / "work").logits
    assert got.tolist() == expected.tolist()
    # the skip branch waits in delay registers: every path has the same latency
    starts = {layer["name"]: layer["start"] for layer in d.layers}
    latency = {layer["name"]: layer["latency"] for layer in d.layers}
    assert starts["add"] == starts["conv2"] + latency["conv2"] and starts["skip"] == 0
    assert d.latency == max(layer["start"] + layer["latency"] for layer in d.layers)
