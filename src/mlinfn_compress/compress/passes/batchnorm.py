"""Batch-norm folding: a per-channel scale and shift merged into the CMVM before it.

A frontend translates a batch norm into a ``Linear`` node with a diagonal
matrix (``label="batchnorm"``).  Where its input is a dense or convolution
node whose only consumer it is, and neither carries formats fixed by the
source model, the scale multiplies that node's weight columns and the shift
joins its bias: one CMVM instead of two.  Otherwise it stays a standalone
per-channel scale and shift over the last axis.
"""

from __future__ import annotations

import numpy as np

from mlinfn_compress.compress.ir import Graph, Linear

FOLDABLE = ("dense", "conv1d", "conv2d")


def diagonal(node: Linear) -> np.ndarray | None:
    """The diagonal of a batch-norm node's matrix (None when the matrix is not diagonal)."""
    w = node.weight
    if w is None or w.ndim != 2 or w.shape[0] != w.shape[1]:
        return None
    d = np.diag(w)
    return d if np.array_equal(w, np.diag(d)) else None


def _fixed_formats(node: Linear) -> bool:
    return node.weight_type is not None or node.bias_type is not None or node.result_type is not None


def fold_batchnorm(graph: Graph) -> list[str]:
    """Fold every batch norm that can be folded (in place); returns the names of the folded ones."""
    folded = []
    for bn in list(graph.nodes):
        if not isinstance(bn, Linear) or bn.label != "batchnorm" or bn.window is not None:
            continue
        scale = diagonal(bn)
        if scale is None or _fixed_formats(bn) or bn.inputs[0] == "input":
            continue
        prev = graph.node(bn.inputs[0])
        if not isinstance(prev, Linear) or prev.label not in FOLDABLE or _fixed_formats(prev):
            continue
        if [c.name for c in graph.consumers(prev.name)] != [bn.name] or prev.weight is None or prev.bias is None:
            continue
        assert bn.bias is not None
        prev.weight = prev.weight * scale[None, :]
        prev.bias = prev.bias * scale + bn.bias
        prev.notes.append(f"'{bn.name}' (a per-channel scale and shift) folded into the weights and bias")
        if bn.source:
            prev.source = f"{prev.source}+{bn.source}" if prev.source else bn.source
        for consumer in graph.consumers(bn.name):
            consumer.inputs = [prev.name if s == bn.name else s for s in consumer.inputs]
        if graph.output_name == bn.name:
            graph.output_name = prev.name
        graph.nodes.remove(bn)
        folded.append(bn.name)
    if folded:
        graph.infer_shapes()
    return folded
