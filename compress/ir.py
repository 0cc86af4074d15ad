"""The intermediate representation: a small typed graph of layers.

Frontends fill in the float view (weights as floats, types where the source
model fixes them); the quantisation pass fills in every fixed-point type and
the integer parameters; backends and the golden model read only the integer
view.  Nodes are kept in topological order; each node reads the output of the
node named in ``inputs``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .fixed import FixedType

OPS = ("dense", "relu", "cast")
IR_VERSION = 1


@dataclass
class Node:
    """One layer: ``dense`` (multiply-accumulate), ``relu`` or ``cast`` (re-quantise)."""

    name: str
    op: str
    inputs: list[str]
    size: int  # number of outputs (vectors only)
    source: str = ""  # class name in the source framework
    weight: np.ndarray | None = None  # float, shape (in, out)
    bias: np.ndarray | None = None  # float, shape (out,)
    weight_type: FixedType | None = None
    bias_type: FixedType | None = None
    accum_type: FixedType | None = None
    result_type: FixedType | None = None
    weight_int: np.ndarray | None = None
    bias_int: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def quantised(self) -> bool:
        if self.result_type is None:
            return False
        if self.op == "dense":
            return self.weight_int is not None and self.accum_type is not None
        return True

    def sparsity(self) -> float:
        if self.op != "dense" or self.weight_int is None:
            return 0.0
        return float(np.mean(np.asarray(self.weight_int) == 0))

    def multipliers(self) -> int:
        """Constant multiplications that become hardware (zero weights make none)."""
        if self.op != "dense" or self.weight_int is None:
            return 0
        return int(np.count_nonzero(np.asarray(self.weight_int)))


@dataclass
class Graph:
    """A feed-forward network on a flat feature vector."""

    name: str
    framework: str
    source_path: str
    input_size: int
    nodes: list[Node]
    input_type: FixedType | None = None
    output_activation: str | None = None  # "softmax": hardware adds an arg-max output
    parameters: int = 0

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    @property
    def has_argmax(self) -> bool:
        return self.output_activation == "softmax"

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def in_size(self, node: Node) -> int:
        src = node.inputs[0]
        return self.input_size if src == "input" else self.node(src).size

    def in_type(self, node: Node) -> FixedType:
        src = node.inputs[0]
        t = self.input_type if src == "input" else self.node(src).result_type
        if t is None:
            raise ValueError(f"node {node.name}: input type is not set (graph not quantised)")
        return t

    # ---- serialisation of the quantised graph (what `verify` reads back) ----

    def to_json(self) -> dict[str, Any]:
        def t(x: FixedType | None) -> dict[str, object] | None:
            return None if x is None else x.to_dict()

        def ints(a: np.ndarray | None) -> list[Any] | None:
            return None if a is None else [int(v) for v in np.asarray(a).ravel()]

        return {
            "ir_version": IR_VERSION,
            "name": self.name,
            "framework": self.framework,
            "source_path": self.source_path,
            "input_size": self.input_size,
            "input_type": t(self.input_type),
            "output_activation": self.output_activation,
            "parameters": self.parameters,
            "nodes": [
                {
                    "name": n.name,
                    "op": n.op,
                    "inputs": n.inputs,
                    "size": n.size,
                    "source": n.source,
                    "weight_type": t(n.weight_type),
                    "bias_type": t(n.bias_type),
                    "accum_type": t(n.accum_type),
                    "result_type": t(n.result_type),
                    "weight_int": ints(n.weight_int),
                    "bias_int": ints(n.bias_int),
                    "notes": n.notes,
                }
                for n in self.nodes
            ],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Graph:
        def t(x: dict[str, object] | None) -> FixedType | None:
            return None if x is None else FixedType.from_dict(x)

        nodes = []
        in_size = int(d["input_size"])
        for nd in d["nodes"]:
            n = Node(
                name=nd["name"],
                op=nd["op"],
                inputs=list(nd["inputs"]),
                size=int(nd["size"]),
                source=nd.get("source", ""),
                weight_type=t(nd["weight_type"]),
                bias_type=t(nd["bias_type"]),
                accum_type=t(nd["accum_type"]),
                result_type=t(nd["result_type"]),
                notes=list(nd.get("notes", [])),
            )
            if nd["weight_int"] is not None:
                n.weight_int = _int_array(nd["weight_int"]).reshape(in_size, n.size)
                n.bias_int = _int_array(nd["bias_int"])
            nodes.append(n)
            in_size = n.size
        return Graph(
            name=d["name"],
            framework=d["framework"],
            source_path=d["source_path"],
            input_size=int(d["input_size"]),
            nodes=nodes,
            input_type=t(d["input_type"]),
            output_activation=d["output_activation"],
            parameters=int(d.get("parameters", 0)),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @staticmethod
    def load(path: Path) -> Graph:
        return Graph.from_json(json.loads(path.read_text()))


def _int_array(values: list[int]) -> np.ndarray:
    if any(abs(v) >= 2**62 for v in values):
        return np.array(values, dtype=object)
    return np.array(values, dtype=np.int64)


class UniqueNames:
    """Hands out names that have not been handed out before: ``base``, ``base_2``, ``base_3``, ..."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name
