"""Maximum and minimum of branches on every target and twin: each equals the golden model bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlinfn_compress.compress.flow.inputs import verification_inputs
from mlinfn_compress.compress.ir import Clip, Graph, Linear, Maximum, Minimum, Reshape, Window
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.testing.differential import BACKENDS, check_backends


def merges_graph(act_bits: int) -> Graph:
    """Two convolutions compared element by element, the smallest of three tensors on different grids, a head."""
    rng = np.random.default_rng(act_bits)
    same = Window((3, 3), (1, 1), ((1, 1), (1, 1)))

    def conv(name: str, scale: float) -> Linear:
        weight, bias = rng.normal(0, scale, (9 * 2, 3)), rng.normal(0, 0.2, 3)
        return Linear(name=name, inputs=["input"], weight=weight, bias=bias, window=same, label="conv2d")

    nodes = [
        conv("a", 0.5),
        conv("b", 2.0),  # a wider range: a coarser grid than a's
        Maximum(name="max", inputs=["a", "b"]),
        Clip(name="relu", inputs=["a"]),
        Minimum(name="min", inputs=["max", "relu", "b"]),
        Reshape(name="flat", inputs=["min"], target=(48,), label="flatten"),
        Linear(name="head", inputs=["flat"], weight=rng.normal(0, 0.3, (48, 4)), bias=rng.normal(0, 0.1, 4)),
    ]
    g = Graph("merges", "keras", "hand-built", (4, 4, 2), nodes)
    g.infer_shapes()
    quantise(g, QuantConfig(weight_bits=6, act_bits=act_bits), default_inputs(1000, g.input_shape, 0))
    return g


@pytest.mark.parametrize("act_bits", [6, 10])
def test_vhdl_and_both_twins_equal_golden(act_bits: int, tmp_path: Path) -> None:
    g = merges_graph(act_bits)
    a, b = g.in_types(g.node("max"))
    assert a.frac != b.frac  # the inputs align to the finer grid first
    x, _, _ = verification_inputs(200, g.input_size, g.input_type, None, act_bits)
    backends = tuple(b for b in BACKENDS if b != "hls")
    assert check_backends(g, x, tmp_path, backends) == dict.fromkeys(backends, 0)


@pytest.mark.slow
def test_the_hls4ml_project_equals_golden(tmp_path: Path) -> None:
    g = merges_graph(8)
    x, _, _ = verification_inputs(200, g.input_size, g.input_type, None, 8)
    assert check_backends(g, x, tmp_path, ("hls",)) == {"hls": 0}
