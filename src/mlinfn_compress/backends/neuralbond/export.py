"""BondMachine export: the quantised network in the model JSON of BondMachine's ``neuralbond``.

The format is the one ``pybondmachine``'s converter writes for ``neuralbond``:
``Nodes`` (``Layer``, ``Pos``, ``Type``, ``Bias``) and ``Weights`` (``Layer``,
``PosCurrLayer``, ``PosPrevLayer``, ``Value``), layer 0 holding the inputs.
Every dense layer becomes a layer of nodes typed by their activation
(``relu``, ``linear``; the last one ``summation``), zero weights are left
out, a final softmax becomes a ``softmax`` layer joined to the last one by
weights of 1, and an ``output`` layer with weights of 1 closes the network.
Values are the quantised ones (integer x 2^-frac of their format), written as
exact decimal floats; ``formats.json`` beside the model records every format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import INPUT, Cast, Clip, Graph, Linear, Node
from mlinfn_compress.errors import UserError

MODEL_FILE = "modelBM.json"
FORMATS_FILE = "formats.json"
EXPORT_DIR = "bondmachine"
FLOAT32_BITS = 24  # significand of neuralbond's float32 values


@dataclass
class Layer:
    """One BondMachine layer: a dense node and the activation (and casts) after it."""

    linear: Linear
    kind: str  # relu, linear or summation
    nodes: list[str]  # the IR nodes it covers
    result_type: FixedType | None  # None before quantisation


def layers_of(graph: Graph, source: str) -> list[Layer]:
    """The graph as BondMachine layers; UserError naming the first node the format cannot describe."""

    def refuse(node: Node, why: str) -> UserError:
        return UserError(
            f"{source}: layer '{node.name}' ({node.kind}) cannot be exported to BondMachine: {why}. "
            "BondMachine's model format describes dense layers with relu or linear activations and a final "
            "softmax; use --target vhdl or hls for this model"
        )

    if len(graph.input_shape) != 1:
        raise UserError(
            f"{source}: the input has shape {graph.input_shape}; BondMachine's model format takes a flat "
            "vector of features; use --target vhdl or hls for this model"
        )
    layers: list[Layer] = []
    tensor = INPUT
    for node in graph.nodes:
        if node.inputs != [tensor]:
            raise refuse(node, "it does not read the previous layer alone (the format is a chain)")
        if isinstance(node, Linear):
            if node.window is not None:
                raise refuse(node, "a convolution has no BondMachine neuron")
            layers.append(Layer(node, "linear", [node.name], node.result_type))
        elif isinstance(node, Clip | Cast) and layers and layers[-1].nodes[-1] == tensor:
            if isinstance(node, Clip):
                if not (node.lo == 0.0 and node.hi is None) or layers[-1].kind == "relu":
                    raise refuse(node, "BondMachine's neuron library has relu, but no clip to other bounds")
                layers[-1].kind = "relu"
            layers[-1].nodes.append(node.name)
            layers[-1].result_type = node.result_type
        else:
            raise refuse(node, "BondMachine's neuron library has no such neuron")
        tensor = node.name
    if not layers:
        raise UserError(f"{source}: the model has no dense layer to export to BondMachine")
    if graph.output.name != tensor:
        raise UserError(f"{source}: the output is not the last layer; BondMachine's model format is a chain")
    if layers[-1].kind == "linear":
        layers[-1].kind = "summation"
    return layers


def _value(i: int, t: FixedType) -> float:
    return float(np.ldexp(float(i), -t.frac))


def model_json(graph: Graph, layers: list[Layer]) -> dict[str, list[dict[str, Any]]]:
    """The ``Nodes`` and ``Weights`` of the network (neuralbond's TrainedNet)."""
    nodes: list[dict[str, Any]] = [{"Layer": 0, "Pos": i, "Type": "input", "Bias": 0} for i in range(graph.input_size)]
    weights: list[dict[str, Any]] = []
    for k, layer in enumerate(layers, start=1):
        lin = layer.linear
        assert lin.weight_int is not None and lin.bias_int is not None
        assert lin.weight_type is not None and lin.bias_type is not None
        w = np.asarray(lin.weight_int)
        for prev in range(w.shape[0]):
            for curr in range(w.shape[1]):
                if int(w[prev, curr]):
                    value = _value(int(w[prev, curr]), lin.weight_type)
                    weights.append({"Layer": k, "PosCurrLayer": curr, "PosPrevLayer": prev, "Value": value})
        for j, b in enumerate(np.asarray(lin.bias_int)):
            nodes.append({"Layer": k, "Pos": j, "Type": layer.kind, "Bias": _value(int(b), lin.bias_type)})
    n_out, last = graph.output_size, len(layers)
    if graph.output_activation == "softmax":
        last += 1
        nodes += [{"Layer": last, "Pos": j, "Type": "softmax", "Bias": 0} for j in range(n_out)]
        weights += [
            {"Layer": last, "PosCurrLayer": j, "PosPrevLayer": i, "Value": 1}
            for j in range(n_out)
            for i in range(n_out)
        ]
    nodes += [{"Layer": last + 1, "Pos": j, "Type": "output", "Bias": 0} for j in range(n_out)]
    weights += [{"Layer": last + 1, "PosCurrLayer": j, "PosPrevLayer": j, "Value": 1} for j in range(n_out)]
    return {"Nodes": nodes, "Weights": weights}


def formats_json(graph: Graph, layers: list[Layer]) -> dict[str, Any]:
    """The fixed-point format of every exported value, and whether float32 holds them all exactly."""
    rows = []
    exact = True
    for k, layer in enumerate(layers, start=1):
        lin = layer.linear
        assert lin.weight_int is not None and lin.bias_int is not None
        ints = [int(v) for v in np.asarray(lin.weight_int).ravel()] + [int(v) for v in np.asarray(lin.bias_int)]
        exact = exact and all(abs(v) < 2**FLOAT32_BITS for v in ints)
        rows.append(
            {
                "Layer": k,
                "ir_nodes": layer.nodes,
                "Type": layer.kind,
                "neurons": lin.n_out,
                "weights": int(np.count_nonzero(np.asarray(lin.weight_int))),
                "weight_type": str(lin.weight_type),
                "bias_type": str(lin.bias_type),
                "accum_type": str(lin.accum_type),
                "result_type": str(layer.result_type),
            }
        )
    assert graph.input_type is not None
    return {
        "model": MODEL_FILE,
        "values": "every Value and Bias is integer x 2^-frac of its layer's weight_type or bias_type, exactly",
        "input_type": str(graph.input_type),
        "layers": rows,
        "output": {
            "type": str(layers[-1].result_type),
            "activation": graph.output_activation,
            "note": "the hardware of the other targets emits the values before the softmax or sigmoid",
        },
        "float32_exact": exact,
    }


def export(graph: Graph, dest: Path, source: str) -> dict[str, Any]:
    """Write modelBM.json and formats.json into ``dest``; their summary for report.json."""
    layers = layers_of(graph, source)
    dest.mkdir(parents=True, exist_ok=True)
    model = model_json(graph, layers)
    (dest / MODEL_FILE).write_text(json.dumps(model) + "\n")
    formats = formats_json(graph, layers)
    (dest / FORMATS_FILE).write_text(json.dumps(formats, indent=2) + "\n")
    return {
        "path": f"{dest.name}/{MODEL_FILE}",
        "formats": f"{dest.name}/{FORMATS_FILE}",
        "layers": len(layers),
        "nodes": len(model["Nodes"]),
        "weights": len(model["Weights"]),
        "node_types": sorted({n["Type"] for n in model["Nodes"]}),
        "float32_exact": formats["float32_exact"],
    }


def read_back(graph: Graph, dest: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The dense layers' weight matrices and biases as modelBM.json holds them (floats)."""
    model = json.loads((dest / MODEL_FILE).read_text())
    dense = [n for n in graph.nodes if isinstance(n, Linear)]
    out = []
    for k, lin in enumerate(dense, start=1):
        w = np.zeros((lin.n_in, lin.n_out))
        b = np.full(lin.n_out, np.nan)
        for e in model["Weights"]:
            if e["Layer"] == k:
                w[e["PosPrevLayer"], e["PosCurrLayer"]] = e["Value"]
        for e in model["Nodes"]:
            if e["Layer"] == k:
                b[e["Pos"]] = e["Bias"]
        out.append((w, b))
    return out


def check_export(graph: Graph, dest: Path) -> dict[str, Any]:
    """Read modelBM.json back and compare every weight and bias with the IR's quantised value."""
    dense = [n for n in graph.nodes if isinstance(n, Linear)]
    checked = mismatches = 0
    first = None
    for k, (lin, (w, b)) in enumerate(zip(dense, read_back(graph, dest), strict=True), start=1):
        assert lin.weight_int is not None and lin.bias_int is not None
        assert lin.weight_type is not None and lin.bias_type is not None
        want_w = np.ldexp(np.asarray(lin.weight_int, dtype=np.float64), -lin.weight_type.frac)
        want_b = np.ldexp(np.asarray(lin.bias_int, dtype=np.float64), -lin.bias_type.frac)
        for what, got, want in (("weight", w, want_w), ("bias", b, want_b)):
            bad = np.argwhere(got != want)
            checked += got.size
            mismatches += len(bad)
            if len(bad) and first is None:
                at = tuple(int(i) for i in bad[0])
                first = {
                    "where": f"layer {k} ({lin.name}) {what} {list(at)}",
                    "expected": float(want[at]),
                    "got": float(got[at]),
                }
    return {"values": checked, "mismatches": mismatches, "first_mismatch": first}
