"""Warnings about what compression did to the model, for the summary, report.json and report.html.

A design can verify bit for bit and still compute something far from the
model it came from.  Two signs are checked on every run:

* post-training quantisation set more than ``ZEROED_WARN`` of a layer's
  weights to zero beyond what pruning removed (one huge weight, say, makes
  the format so coarse that the others round to zero);
* the arg-max of the quantised design agrees with the float model's on fewer
  than ``ARGMAX_WARN`` of the verification inputs (classifiers only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlinfn_compress.compress.ir import Graph, Linear

ZEROED_WARN = 0.10  # of a layer's weights, set to zero by quantisation alone
ARGMAX_WARN = 0.90  # arg-max agreement with the float model


def zeroed_by_quantisation(graph: Graph, chosen: list[str], prune: float) -> list[str]:
    """One warning per layer whose post-training weight format set too many non-zero weights to zero."""
    warnings = []
    for node in graph.nodes:
        if not isinstance(node, Linear) or node.name not in chosen or node.weight is None or node.weight_int is None:
            continue
        weight, ints = np.asarray(node.weight), np.asarray(node.weight_int)
        zeroed = int(np.count_nonzero((weight != 0) & (ints == 0)))
        if weight.size == 0 or zeroed / weight.size <= ZEROED_WARN:
            continue
        largest = float(np.max(np.abs(weight)))
        warnings.append(
            f"layer '{node.name}': post-training quantisation to {node.weight_type} set {zeroed / weight.size:.0%} "
            f"of its weights to zero ({zeroed} of {weight.size}) beyond what pruning removed (pruning asked for "
            f"{prune:.0%}); its largest weight, {largest:.3g}, sets the format's range: check the model for "
            "outlying weights, or give more --weight-bits"
        )
    return warnings


def argmax_disagreement(float_model: dict[str, Any] | None, n_out: int) -> list[str]:
    """A warning when the quantised design's arg-max agrees with the float model's too rarely."""
    if float_model is None or n_out < 2 or float_model["argmax_agreement"] >= ARGMAX_WARN:
        return []
    return [
        f"the quantised design's arg-max agrees with the float model's on only {float_model['argmax_agreement']:.1%} "
        f"of {float_model['samples']} verification inputs (below {ARGMAX_WARN:.0%}; max |error| "
        f"{float_model['max_abs_error']:.3g}): the compressed model is not the model given; give more --act-bits "
        "and --weight-bits, calibration data that covers the inputs (--calibration), or fine-tune (--data, --qat)"
    ]
