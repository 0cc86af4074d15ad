"""A Transpose node (PyTorch's channels-first views) is bit exact in every backend, whatever the permutation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlinfn_compress.compress.flow.inputs import verification_inputs
from mlinfn_compress.compress.ir import Graph, Linear, Reshape, Transpose
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.errors import UserError
from mlinfn_compress.testing.differential import BACKENDS, check_backends


@pytest.mark.slow
@pytest.mark.parametrize(("axes", "shape"), [((1, 0, 2), (3, 4, 2)), ((2, 0, 1), (3, 4, 2)), ((1, 0), (5, 3))])
def test_transpose_then_flatten_then_dense(axes: tuple[int, ...], shape: tuple[int, ...], tmp_path: Path) -> None:
    """The pattern hls4ml rewrites for its own channels-first conversion only: here every permutation holds."""
    rng = np.random.default_rng(len(axes))
    n = int(np.prod(shape))
    nodes = [
        Transpose(name="t", inputs=["input"], axes=axes),
        Reshape(name="flat", inputs=["t"], target=(n,), label="flatten"),
        Linear(name="d", inputs=["flat"], weight=rng.normal(0, 0.3, (n, 3)), bias=np.zeros(3)),
    ]
    g = Graph("transposed", "torch", "hand-built", shape, nodes)
    g.infer_shapes()
    assert g.node("t").shape == tuple(shape[a] for a in axes)
    quantise(g, QuantConfig(), default_inputs(300, shape))
    x, _, _ = verification_inputs(80, g.input_size, g.input_type, None, 0)
    others = tuple(b for b in BACKENDS if b != "vhdl_stream")
    assert check_backends(g, x, tmp_path, others) == dict.fromkeys(others, 0)
    with pytest.raises(UserError, match="layer 't' \\(transpose\\): a transpose reorders whole images"):
        check_backends(g, x, tmp_path, ("vhdl_stream",))
