"""The golden model: the IR executing itself on integers.

Every node's ``forward_int`` defines its exact semantics; this module runs
the graph and packages the output the way the hardware presents it.
Arithmetic is in int64, or in Python integers where a width exceeds 62 bits.
"""

from __future__ import annotations

import numpy as np

from mlinfn_compress.compress.ir import Graph


def flat(values: np.ndarray) -> np.ndarray:
    """A batch of tensors as rows (N, size), in the row-major order the hardware uses."""
    v = np.asarray(values)
    return v.reshape(len(v), -1)


def run(graph: Graph, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Run the integer model on a batch of integer inputs (N, input_size) or (N, *input_shape).

    Returns ``{"logits": (N, output_size) integers}`` and, when the model ends
    in a softmax, ``"argmax": (N,)`` (first index of the largest logit).
    """
    out = flat(graph.run_int(x_int)[graph.output.name])
    result = {"logits": out}
    if graph.has_argmax:
        result["argmax"] = np.argmax(out, axis=1).astype(np.int64)
    return result


def run_all(graph: Graph, x_int: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor's integer value (for range analysis and debugging)."""
    return graph.run_int(x_int)
