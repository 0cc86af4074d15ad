"""Corner cases of the quantisation pass."""

from __future__ import annotations

import numpy as np

from mlinfn_compress.compress.fixed import quantize
from mlinfn_compress.compress.ir import Graph, Linear, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise


def test_a_bias_far_below_the_accumulator_step_gets_a_valid_type() -> None:
    """A bias of 1e-6 against coarse products: it rounds to zero on a two-bit type instead of a zero-bit one."""
    rng = np.random.default_rng(0)
    node = Linear(name="d", inputs=["input"], weight=rng.normal(0, 4, (3, 2)), bias=np.array([1e-6, -2e-6]))
    g = Graph("tiny_bias", "keras", "x", (3,), [node])
    g.infer_shapes()
    quantise(g, QuantConfig(weight_bits=3, act_bits=8), default_inputs(200, 3))
    assert node.bias_type is not None and node.bias_type.width >= 2
    assert node.bias_int.tolist() == [0, 0]
    x = quantize(default_inputs(20, 3, seed=1), g.input_type)
    assert golden.run(g, x)["logits"].shape == (20, 2)
