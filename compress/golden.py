"""The golden model: an exact integer executor of the quantised IR.

It defines the semantics every other implementation (VHDL, framework
inference) is checked against.  Arithmetic is in int64, or in Python
integers where a width exceeds 62 bits.
"""

from __future__ import annotations

import numpy as np

from .fixed import apply_overflow, needs_wide, requantize
from .ir import Graph, Node


def dense_constants(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray, int]:
    """Weights and bias scaled to the accumulator's fractional bits, and that shift.

    Returns (weights, bias, product_shift): acc = (x @ weights) + bias, where
    ``weights = weight_int * 2**product_shift`` so that every term is exact.
    """
    assert node.weight_int is not None and node.bias_int is not None
    assert node.weight_type and node.bias_type and node.accum_type
    x_t = graph.in_type(node)
    prod_frac = x_t.frac + node.weight_type.frac
    shift_w = node.accum_type.frac - prod_frac
    shift_b = node.accum_type.frac - node.bias_type.frac
    if shift_w < 0 or shift_b < 0:
        raise ValueError(f"node {node.name}: accumulator has fewer fractional bits than its terms")
    wide = needs_wide(node.accum_type.width)
    w = np.asarray(node.weight_int).astype(object if wide else np.int64) * (1 << shift_w)
    b = np.asarray(node.bias_int).astype(object if wide else np.int64) * (1 << shift_b)
    return w, b, shift_w


def run_node(graph: Graph, node: Node, x: np.ndarray) -> np.ndarray:
    x_t = graph.in_type(node)
    assert node.result_type is not None
    if node.op == "dense":
        w, b, _ = dense_constants(graph, node)
        assert node.accum_type is not None
        xa = x.astype(object) if w.dtype == object else x.astype(np.int64)
        acc = xa @ w + b
        # The accumulator is sized never to overflow; applying its overflow
        # mode makes that assumption part of the semantics.
        acc = apply_overflow(acc, node.accum_type)
        return requantize(acc, node.accum_type.frac, node.result_type)
    if node.op == "relu":
        return requantize(np.maximum(x, 0), x_t.frac, node.result_type)
    if node.op == "cast":
        return requantize(x, x_t.frac, node.result_type)
    raise ValueError(f"unknown op {node.op!r} in node {node.name}")


def run(graph: Graph, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Run the integer model on a batch of integer inputs (N, input_size).

    Returns ``{"logits": (N, out) integers}`` and, when the model ends in a
    softmax, ``"argmax": (N,)`` (first index of the largest logit).
    """
    out = run_all(graph, x_int)[graph.output.name]
    result = {"logits": out}
    if graph.has_argmax:
        result["argmax"] = np.argmax(out, axis=1).astype(np.int64)
    return result


def run_all(graph: Graph, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Every node's integer output (for range analysis and debugging)."""
    values: dict[str, np.ndarray] = {"input": np.asarray(x_int)}
    for node in graph.nodes:
        values[node.name] = run_node(graph, node, values[node.inputs[0]])
    return values
