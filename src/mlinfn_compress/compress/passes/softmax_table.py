"""``--softmax table``: the model's final softmax becomes a lookup-table ``Softmax`` node of the quantised graph.

By default a model's final softmax is removed and the hardware emits its
logits (and their arg-max).  This pass appends the softmax back as the IR's
``Softmax`` node, computed as hls4ml's ``softmax_stable`` computes it (two
lookup tables), with the formats of ``quantise.softmax_formats``: the outputs
are then probabilities on the node's result grid, and the arg-max is taken
over them (ties, which the tables' rounding can create between close logits,
go to the lowest index, as over the logits).
"""

from __future__ import annotations

import numpy as np

from mlinfn_compress.compress.fixed import to_float
from mlinfn_compress.compress.ir import Graph, Softmax, UniqueNames
from mlinfn_compress.compress.passes.quantise import QuantConfig, softmax_formats
from mlinfn_compress.errors import UserError

MODES = ("logits", "table")


def apply_softmax_table(graph: Graph, cfg: QuantConfig) -> Softmax:
    """Append the lookup-table softmax to a quantised graph that ended in a softmax; returns the node."""
    if graph.output_activation != "softmax":
        what = f"a {graph.output_activation}" if graph.output_activation else "no activation"
        raise UserError(f"--softmax table: the model '{graph.source_path}' ends in {what}, not a softmax")
    logits = graph.output
    name = UniqueNames({n.name for n in graph.nodes} | {"input"})("softmax")
    size = 1 << cfg.table_bits
    node = Softmax(name=name, inputs=[logits.name], source="softmax (lookup table)",
                   exp_table_size=size, inv_table_size=size)  # fmt: skip
    graph.nodes.append(node)
    graph.output_name = name
    graph.output_activation = None
    graph.infer_shapes()
    softmax_formats(node, graph.type_of(logits.name), logits.shape[-1], cfg)
    node.notes.append(
        f"lookup-table softmax: exp table of {node.exp_table_size} entries indexed by {node.inp_norm_type}, "
        f"inverse table of {node.inv_table_size} entries indexed by {node.inv_inp_type}"
    )
    return node


def softmax_error(graph: Graph, x_int: np.ndarray) -> dict[str, object]:
    """The table softmax's largest absolute error against the float softmax of the same logits."""
    node = graph.output
    assert isinstance(node, Softmax) and node.result_type is not None
    values = graph.run_int(x_int)
    logits_t = graph.type_of(node.inputs[0])
    exact = node.forward_float([to_float(values[node.inputs[0]], logits_t.frac)])
    got = to_float(values[node.name], node.result_type.frac)
    err = np.abs(got - exact)
    return {
        "node": node.name,
        "max_abs_error_vs_float": float(err.max()) if err.size else 0.0,
        "mean_abs_error_vs_float": float(err.mean()) if err.size else 0.0,
        "samples": len(x_int),
        "against": "float64 softmax of the same (quantised) logits",
    }
