"""The layer graph of a Keras model (tf_keras, QKeras or Keras 3): every layer call from the
input to the output, in topological order, with the tensors it reads and writes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Key = tuple[int, int, int]  # (layer, call, output index): one tensor of the graph


@dataclass
class LayerCall:
    """One application of a layer: the tensors it reads and the one it writes (batch axis dropped)."""

    layer: Any
    inputs: list[Key]
    in_shapes: list[tuple[int | None, ...]]
    output: Key
    out_shape: tuple[int | None, ...]

    @property
    def cls(self) -> str:
        return type(self.layer).__name__


def tensor_key(t: Any) -> Key:
    history = t._keras_history
    return (id(history[0]), int(history[1]), int(history[2]))


def shape_of(t: Any) -> tuple[int | None, ...]:
    return tuple(None if d is None else int(d) for d in tuple(t.shape)[1:])


def flat(x: Any) -> list[Any]:
    if isinstance(x, (list, tuple)):
        return [y for v in x for y in flat(v)]
    if isinstance(x, dict):
        return [y for v in x.values() for y in flat(v)]
    return [] if x is None else [x]


def is_model(layer: Any) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs") and hasattr(layer, "outputs")


class Walk:
    """The calls that compute the model's output from its input, inputs first."""

    def __init__(self, model: Any) -> None:
        self.model = model
        try:
            inputs, outputs = flat(model.inputs), flat(model.outputs)
        except (AttributeError, ValueError):  # a Sequential model that was never built
            inputs, outputs = [], []
        self.input = inputs
        self.output = outputs
        self.calls: list[LayerCall] = []
        self.tensors: dict[Key, Any] = {}
        if len(inputs) == 1 and len(outputs) == 1:
            self.input_key = tensor_key(inputs[0])
            self.output_key = tensor_key(outputs[0])
            self._visit(outputs[0], set())

    def _visit(self, t: Any, done: set[tuple[int, int]]) -> None:
        """Post-order walk from tensor ``t`` back to the model input (iterative: deep U-Nets are fine)."""
        stack: list[tuple[Any, bool]] = [(t, False)]
        while stack:
            tensor, expanded = stack.pop()
            key = tensor_key(tensor)
            self.tensors[key] = tensor
            if key == self.input_key:
                continue
            layer, node_index = tensor._keras_history[0], int(tensor._keras_history[1])
            call_id = (id(layer), node_index)
            if call_id in done:
                continue
            node = layer._inbound_nodes[node_index]
            ins = flat(node.input_tensors)
            if expanded:
                done.add(call_id)
                for i in ins:
                    self.tensors[tensor_key(i)] = i
                outs = flat(node.output_tensors)
                self.calls.append(
                    LayerCall(
                        layer=layer,
                        inputs=[tensor_key(i) for i in ins],
                        in_shapes=[shape_of(i) for i in ins],
                        output=tensor_key(outs[0]) if len(outs) == 1 else key,
                        out_shape=shape_of(outs[0]) if len(outs) == 1 else (),
                    )
                )
                continue
            stack.append((tensor, True))
            for i in reversed(ins):
                stack.append((i, False))

    def producer(self, key: Key) -> LayerCall | None:
        for c in self.calls:
            if c.output == key:
                return c
        return None
