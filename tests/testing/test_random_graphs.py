"""Property-based differential test: random small graphs of every operation, golden == every backend.

CI runs a bounded number of examples (MLINFN_HYPOTHESIS_EXAMPLES, default 12);
``benchmarks/bench_random_graphs.py`` runs hundreds.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlinfn_compress.compress.flow.inputs import verification_inputs
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.testing.differential import BACKENDS, check_backends
from mlinfn_compress.testing.random_graphs import random_graph

EXAMPLES = int(os.environ.get("MLINFN_HYPOTHESIS_EXAMPLES", "12"))
# an HLS example compiles an hls4ml project with g++ (tens of seconds): fewer of them
HLS_EXAMPLES = int(os.environ.get("MLINFN_HYPOTHESIS_HLS_EXAMPLES", "3"))
FAST = tuple(b for b in BACKENDS if b != "hls")
DRAWS = {"seed": st.integers(0, 2**31 - 1), "weight_bits": st.integers(3, 10), "act_bits": st.integers(5, 14)}


def _check(seed: int, weight_bits: int, act_bits: int, workdir: Path, backends: tuple[str, ...]) -> None:
    g = random_graph(seed)
    quantise(g, QuantConfig(weight_bits=weight_bits, act_bits=act_bits), default_inputs(500, g.input_shape, seed))
    x, _, _ = verification_inputs(60, g.input_size, g.input_type, None, seed)
    mismatches = check_backends(g, x, workdir / f"g{seed}", backends)
    assert mismatches == dict.fromkeys(backends, 0), ([n.kind for n in g.nodes], g.input_shape)


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**DRAWS)
def test_random_graph_vhdl_and_twins_equal_golden(seed: int, weight_bits: int, act_bits: int, tmp_path: Path) -> None:
    _check(seed, weight_bits, act_bits, tmp_path, FAST)


@pytest.mark.slow
@settings(max_examples=HLS_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**DRAWS)
def test_random_graph_every_backend_equals_golden(seed: int, weight_bits: int, act_bits: int, tmp_path: Path) -> None:
    _check(seed, weight_bits, act_bits, tmp_path, BACKENDS)


def test_a_tie_to_even_next_to_an_odd_offset(tmp_path: Path) -> None:
    """Random graph 162 as the benchmark draws it (conv1d, relu6, flatten, dense): a dense column of one
    weight whose bias cancels its rounding constant re-quantises a value in [0, 31] by 6 bits with ties to
    even, where the offset that keeps the floor a shift is 2**6; -0.5 must round to 0, not -1."""
    rng = np.random.default_rng(162)
    weight_bits, act_bits = int(rng.integers(3, 11)), int(rng.integers(5, 15))
    g = random_graph(162)
    quantise(g, QuantConfig(weight_bits=weight_bits, act_bits=act_bits), default_inputs(500, g.input_shape, 162))
    x, _, _ = verification_inputs(100, g.input_size, g.input_type, None, 162)
    assert check_backends(g, x, tmp_path, ("vhdl", "vhdl_stream")) == {"vhdl": 0, "vhdl_stream": 0}


def test_random_graphs_are_reproducible() -> None:
    a, b = random_graph(1234), random_graph(1234)
    assert [n.to_json() for n in a.nodes] == [n.to_json() for n in b.nodes]
    assert np.array_equal(a.nodes[-1].weight, b.nodes[-1].weight)


def test_the_differential_check_sees_a_wrong_constant(tmp_path: Path) -> None:
    """A graph whose stored integers disagree with its VHDL (changed after rendering) is caught."""
    from mlinfn_compress.backends.vhdl import render
    from mlinfn_compress.compress.ir import golden
    from mlinfn_compress.sim.ghdl import simulate

    g = random_graph(7)
    quantise(g, QuantConfig(), default_inputs(500, g.input_shape, 7))
    x, _, _ = verification_inputs(60, g.input_size, g.input_type, None, 7)
    d = render(g, tmp_path / "vhdl", tmp_path / "sim")
    head = g.nodes[-1]
    head.bias_int = head.bias_int + 1  # the golden model now disagrees with the rendered design
    got = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp_path / "work").logits
    assert (got != golden.run(g, x)["logits"]).any()
