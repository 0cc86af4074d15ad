"""The merges (add, maximum, minimum): exact semantics on aligned grids, their ranges, and their refusals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import Add, Graph, IRError, Maximum, Merge, Minimum, golden
from mlinfn_compress.compress.ir.node import node_from_json, register

A = FixedType(6, 3)  # 3 fractional bits: [-4, 3.875]
B = FixedType(5, 2, signed=False)  # 3 fractional bits, unsigned: [0, 3.875]
C = FixedType(8, 4)  # 4 fractional bits: [-8, 7.9375]
WIDE = FixedType(12, 6)  # holds every value above exactly (6 fractional bits)


def merged(cls: type[Merge], types: list[FixedType], result: FixedType = WIDE) -> Merge:
    return cls(name="m", inputs=[f"x{k}" for k in range(len(types))], shape=(3,), result_type=result)


@pytest.mark.parametrize(
    ("cls", "want"),
    [(Add, [-64 + 32 + 4, 48 + 16 + 2, 2 + 4 - 2]), (Maximum, [32, 48, 4]), (Minimum, [-64, 2, -2])],
    ids=["add", "maximum", "minimum"],
)
def test_inputs_align_to_the_finest_grid_before_they_combine(cls: type[Merge], want: list[int]) -> None:
    # a: -4, 3, 0.125 (3 frac bits); b: 2, 1, 0.25 (3 frac bits, unsigned); c: 0.25, 0.125, -0.125 (4 frac
    # bits); on the 2**-4 grid: a -64, 48, 2; b 32, 16, 4; c 4, 2, -2
    a, b, c = np.array([[-32, 24, 1]]), np.array([[16, 8, 2]]), np.array([[4, 2, -2]])
    node = merged(cls, [A, B, C], FixedType(12, 8))  # 4 fractional bits: every result exact
    got = node.forward_int([a, b, c], [A, B, C])
    assert got.tolist() == [want]  # on the 2**-4 grid


def test_the_result_rounds_and_saturates_like_every_op() -> None:
    node = merged(Maximum, [A, C], FixedType(4, 2, True, "RND_CONV", "SAT"))  # 2 frac bits, [-2, 1.75]
    a, c = np.array([[-32, 20, 3]]), np.array([[-40, 9, 10]])  # a: -4, 2.5, 0.375; c: -2.5, 0.5625, 0.625
    # max: -2.5 (saturates to -2), 2.5 (saturates to 1.75), 0.625 (2.5 quarters: ties to even, 0.5)
    assert node.forward_int([a, c], [A, C]).tolist() == [[-8, 7, 2]]


@pytest.mark.parametrize(
    ("cls", "lo", "hi", "magnitude"),
    [(Add, -64 - 128, 62 + 62 + 127, 64 + 62 + 128), (Maximum, 0, 127, 128), (Minimum, -128, 62, 128)],
    ids=["add", "maximum", "minimum"],
)
def test_the_exact_range_is_the_operation_on_the_input_bounds(
    cls: type[Merge], lo: int, hi: int, magnitude: int
) -> None:
    types = [A, B, C]  # on the 2**-4 grid: A [-64, 62], B [0, 62], C [-128, 127]
    node = merged(cls, types)
    assert node.exact_range(types) == (lo, hi, 4)
    assert node.magnitude(types) == magnitude
    assert node.exact_range(types[:2], frac=4) == (
        (-64, 124, 4) if cls is Add else (0, 62, 4) if cls is Maximum else (-64, 62, 4)
    )


def test_the_golden_model_stays_within_the_exact_range() -> None:
    """Every combination of corner values lands inside ``exact_range``, and the bounds are reached."""
    types = [A, B, C]
    corners = [np.array([t.min_int, 0, t.max_int]) for t in types]
    grid = np.array(np.meshgrid(*corners, indexing="ij")).reshape(3, -1)
    for cls in (Add, Maximum, Minimum):
        node = merged(cls, types, FixedType(16, 12))
        out = node.forward_int([grid[k][:, None] for k in range(3)], types)[:, 0]
        lo, hi, _ = node.exact_range(types)
        assert (int(out.min()), int(out.max())) == (lo, hi), cls.__name__


def test_a_merge_of_tensors_of_different_shapes_is_refused() -> None:
    g = Graph("m", "keras", "hand-built", (4,), [Maximum(name="max", inputs=["input", "flat"])])
    with pytest.raises(IRError, match=r"node 'max': compared tensors must have one shape, got \[\(4,\), \(2, 2\)\]"):
        g.nodes[0].infer_shape([(4,), (2, 2)])


def test_a_graph_of_merges_round_trips_through_json() -> None:
    nodes = [Maximum(name="max", inputs=["input", "input"]), Minimum(name="min", inputs=["max", "input"])]
    g = Graph("m", "keras", "hand-built", (4,), nodes)
    g.infer_shapes()
    back = Graph.from_json(g.to_json())
    assert [type(n) for n in back.nodes] == [Maximum, Minimum]
    assert [n.to_json() for n in back.nodes] == [n.to_json() for n in g.nodes]


def test_golden_runs_a_graph_of_merges() -> None:
    t = FixedType(8, 4)
    nodes = [Maximum(name="max", inputs=["input", "input"], result_type=t),
             Minimum(name="min", inputs=["max", "input"], result_type=t)]  # fmt: skip
    g = Graph("m", "keras", "hand-built", (3,), nodes, input_type=t)
    g.infer_shapes()
    x = np.array([[-128, 0, 127]])
    assert golden.run(g, x)["logits"].tolist() == [[-128, 0, 127]]


def test_an_unknown_op_and_an_op_registered_twice_are_refused() -> None:
    with pytest.raises(IRError, match="unknown op 'median' in node 'm'"):
        node_from_json({"op": "median", "name": "m", "inputs": ["input"]})

    @dataclass(kw_only=True)
    class Again(Maximum):
        pass

    with pytest.raises(IRError, match="op 'maximum' is registered twice: Maximum and Again"):
        register(Again)
