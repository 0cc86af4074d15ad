"""The graph: shaped tensors flowing through nodes in topological order.

The network's input tensor is named ``input``; every node's output tensor
carries the node's name; ``output`` names the node whose tensor the network
returns.  Frontends build it from the float model; passes fill in the
fixed-point types; ``run_int`` is the golden model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, node_from_json

INPUT = "input"
IR_VERSION = 2


@dataclass
class Graph:
    """A feed-forward network: one input tensor, nodes in topological order, one output."""

    name: str
    framework: str
    source_path: str
    input_shape: Shape
    nodes: list[Node]
    input_type: FixedType | None = None
    output_name: str = ""  # default: the last node
    output_activation: str | None = None  # "softmax" / "sigmoid" removed from the end
    parameters: int = 0
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(s) for s in self.input_shape)
        if not self.output_name and self.nodes:
            self.output_name = self.nodes[-1].name

    # ---- structure ----

    @property
    def output(self) -> Node:
        return self.node(self.output_name or self.nodes[-1].name)

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    @property
    def output_size(self) -> int:
        return self.output.size

    @property
    def has_argmax(self) -> bool:
        """The model ends in a softmax: removed (the outputs are its logits) or as a lookup-table node."""
        return self.output_activation == "softmax" or (bool(self.nodes) and self.output.op == "softmax")

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def shape_of(self, tensor: str) -> Shape:
        return self.input_shape if tensor == INPUT else self.node(tensor).shape

    def type_of(self, tensor: str) -> FixedType:
        t = self.input_type if tensor == INPUT else self.node(tensor).result_type
        if t is None:
            raise IRError(f"tensor '{tensor}' has no fixed-point type (graph not quantised)")
        return t

    def in_types(self, node: Node) -> list[FixedType]:
        return [self.type_of(src) for src in node.inputs]

    def in_shapes(self, node: Node) -> list[Shape]:
        return [self.shape_of(src) for src in node.inputs]

    def in_type(self, node: Node) -> FixedType:
        """The type of a node's first input."""
        return self.type_of(node.inputs[0])

    def in_size(self, node: Node) -> int:
        return math.prod(self.shape_of(node.inputs[0]))

    @property
    def quantised(self) -> bool:
        return self.input_type is not None and all(n.quantised for n in self.nodes)

    def infer_shapes(self) -> None:
        """Check names, inputs and order, and set every node's output shape."""
        seen = {INPUT}
        for n in self.nodes:
            if n.name in seen:
                raise IRError(f"node name '{n.name}' is used twice (or is the reserved name '{INPUT}')")
            n.check_arity()
            for src in n.inputs:
                if src not in seen:
                    raise IRError(f"node '{n.name}' reads '{src}', which is not computed before it")
            n.shape = tuple(int(s) for s in n.infer_shape(self.in_shapes(n)))
            seen.add(n.name)
        if not self.output_name and self.nodes:
            self.output_name = self.nodes[-1].name
        if self.output_name not in seen - {INPUT}:
            raise IRError(f"the output '{self.output_name}' is not a node of the graph")

    def prune_unused(self) -> None:
        """Drop nodes whose tensors do not reach the output."""
        needed = {self.output.name}
        for n in reversed(self.nodes):
            if n.name in needed:
                needed.update(n.inputs)
        self.nodes = [n for n in self.nodes if n.name in needed]

    # ---- execution ----

    def run_float(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every tensor's float value for a batch of float inputs (N, *input_shape)."""
        values: dict[str, np.ndarray] = {INPUT: self.batch(np.asarray(x, dtype=np.float64))}
        for n in self.nodes:
            values[n.name] = n.forward_float([values[s] for s in n.inputs])
        return values

    def run_int(self, x_int: np.ndarray) -> dict[str, np.ndarray]:
        """Every tensor's integer value for a batch of integer inputs: the golden model."""
        if not self.quantised:
            raise IRError("the graph must be quantised before it can run on integers")
        values: dict[str, np.ndarray] = {INPUT: self.batch(np.asarray(x_int))}
        for n in self.nodes:
            values[n.name] = n.forward_int([values[s] for s in n.inputs], self.in_types(n))
        return values

    def batch(self, x: np.ndarray) -> np.ndarray:
        """Inputs as (N, *input_shape); flat rows (N, input_size) are reshaped."""
        if x.shape[1:] == self.input_shape:
            return x
        if x.ndim == 2 and x.shape[1] == self.input_size:
            return x.reshape(len(x), *self.input_shape)
        raise IRError(f"inputs of shape {x.shape} do not fit the input shape {self.input_shape}")

    # ---- serialisation of the quantised graph (what `verify` reads back) ----

    def to_json(self) -> dict[str, Any]:
        return {
            "ir_version": IR_VERSION,
            "name": self.name,
            "framework": self.framework,
            "source_path": self.source_path,
            "input_shape": list(self.input_shape),
            "input_type": None if self.input_type is None else self.input_type.to_dict(),
            "output": self.output.name,
            "output_activation": self.output_activation,
            "parameters": self.parameters,
            "notes": self.notes,
            "nodes": [n.to_json() for n in self.nodes],
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> Graph:
        if d.get("ir_version") != IR_VERSION:
            raise IRError(f"design.json holds IR version {d.get('ir_version')}; this tool reads version {IR_VERSION}")
        g = Graph(
            name=d["name"],
            framework=d["framework"],
            source_path=d["source_path"],
            input_shape=tuple(d["input_shape"]),
            nodes=[node_from_json(nd) for nd in d["nodes"]],
            input_type=None if d["input_type"] is None else FixedType.from_dict(d["input_type"]),
            output_name=d["output"],
            output_activation=d["output_activation"],
            parameters=int(d.get("parameters", 0)),
            notes=list(d.get("notes", [])),
        )
        g.infer_shapes()
        return g

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json()))

    @staticmethod
    def load(path: Path) -> Graph:
        return Graph.from_json(json.loads(path.read_text()))


class UniqueNames:
    """Hands out names that have not been handed out before: ``base``, ``base_2``, ``base_3``, ..."""

    def __init__(self, taken: set[str] | None = None, fold_case: bool = False) -> None:
        self.fold = fold_case
        self.used: set[str] = {self._key(t) for t in (taken or set())}

    def _key(self, name: str) -> str:
        return name.lower() if self.fold else name

    def __call__(self, base: str) -> str:
        name, i = base, 1
        while self._key(name) in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(self._key(name))
        return name
