"""Translating a Keras / QKeras model's layer graph into the float IR.

The walk visits every layer call from the input to the output; a translator
per layer family (``layers``, ``activations``) appends IR nodes and returns
the IR tensor that holds the call's output.  Tensors are channels-last, as
Keras stores them.  A softmax or sigmoid that produces the model's output is
removed (``Graph.output_activation``): the hardware emits the values before it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import safe_name
from mlinfn_compress.compress.frameworks.keras import activations, layers
from mlinfn_compress.compress.frameworks.keras.walk import Key, LayerCall, Walk, is_model
from mlinfn_compress.compress.ir import INPUT, Graph, Node, Shape, UniqueNames
from mlinfn_compress.compress.passes.batchnorm import fold_batchnorm
from mlinfn_compress.errors import UnsupportedLayer

SUPPORTED = (
    "Dense, Conv1D, Conv2D (strides 1 or 2, valid/same padding), MaxPooling1D/2D, AveragePooling1D/2D, "
    "GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D, BatchNormalization, Flatten, Reshape, ZeroPadding1D/2D, "
    f"Cropping1D/2D, UpSampling1D/2D (nearest), {', '.join(layers.MERGES)}, Concatenate, Dropout (identity), "
    "Activation, ReLU, "
    "LeakyReLU, Softmax (at the output); QKeras QDense, QConv1D, QConv2D, QActivation, QBatchNormalization"
)
Handler = Callable[["Translator", LayerCall, list[str]], str]
HANDLERS: dict[str, Handler] = {**layers.HANDLERS, **activations.HANDLERS}
IDENTITY = (
    "InputLayer",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "ActivityRegularization",
)


class Translator:
    """The state of one translation: the IR built so far and what the reference needs."""

    def __init__(self, path: Path, model: Any) -> None:
        self.path = path
        self.model = model
        self.walk = Walk(model)
        self.nodes: list[Node] = []
        self.names = UniqueNames({INPUT})
        self.tensors: dict[Key, str] = {}
        self.final_keys: set[Key] = set()  # the output tensor, and what identity layers pass on to it
        self.final: str | None = None  # "softmax" or "sigmoid" removed from the output
        self.stop: tuple[LayerCall, bool] | None = None  # the final activation's call, and whether it is fused
        self.exact = True  # QKeras's own inference computes what the golden model computes
        self.quantised_by_model = False

    # ---- messages ----

    def where(self, layer: Any) -> str:
        return f"{self.path.name}: layer '{layer.name}' ({type(layer).__name__})"

    def reject(self, layer: Any, what: str = "is not supported", supported: bool = True) -> UnsupportedLayer:
        tail = f"; supported: {SUPPORTED}" if supported else ""
        return UnsupportedLayer(f"{self.where(layer)} {what}{tail}")

    # ---- building ----

    def name(self, base: str) -> str:
        return self.names(base)

    def add(self, node: Node) -> str:
        node.name = self.name(node.name)
        self.nodes.append(node)
        return node.name

    def at_output(self, call: LayerCall) -> bool:
        """Whether the call's output is the model's (perhaps through identity layers such as Dropout)."""
        return call.output in self.final_keys

    def activation(self, call: LayerCall, act: Any, x: str, name: str, fused: bool) -> str:
        return activations.apply(self, call, act, x, name, fused)

    def final_activation(self, call: LayerCall, kind: str, x: str, fused: bool, name: str) -> str:
        """A softmax or sigmoid: removed at the output, a table (sigmoid) or refused (softmax) elsewhere."""
        layer = call.layer
        if self.at_output(call):
            if kind == "softmax" and len([d for d in call.out_shape if d != 1]) > 1:
                raise self.reject(
                    layer,
                    f"ends in a softmax over the last axis of a {call.out_shape} tensor; a final softmax is "
                    "supported on a flat output only (the hardware emits the values before it and their "
                    "arg-max): end the model with the layer before the softmax, or use a sigmoid",
                    supported=False,
                )
            self.final = kind
            self.stop = (call, fused)
            return x
        if kind == "softmax":
            raise self.reject(
                layer,
                "applies a softmax inside the model; a softmax is supported only at the model's output "
                "(the hardware emits the values before it)",
                supported=False,
            )
        return activations.table(self, "sigmoid", x, layer, name)

    # ---- the walk ----

    def translate(self) -> Graph:
        w, model = self.walk, self.model
        if not w.input:
            raise UnsupportedLayer(
                f"{self.path.name}: the model has no input shape (a Sequential model that was never built); "
                "start it with an Input layer, or build it, before saving"
            )
        if len(w.input) != 1 or len(w.output) != 1:
            raise UnsupportedLayer(
                f"{self.path.name}: the model has {len(w.input)} inputs and {len(w.output)} outputs; "
                "one input and one output are supported"
            )
        in_shape = tuple(w.input[0].shape)[1:]
        if not in_shape or any(d is None for d in in_shape):
            raise UnsupportedLayer(
                f"{self.path.name}: input shape {tuple(in_shape)} has a free size; give the Input layer a "
                "fixed shape (features,), (length, channels) or (height, width, channels)"
            )
        self.final_keys = self._final_keys()
        self.tensors[w.input_key] = INPUT
        for call in w.calls:
            self.tensors[call.output] = self.translate_call(call)
        output = self.tensors[w.output_key]
        if output == INPUT or not self.nodes:
            raise UnsupportedLayer(f"{self.path.name}: the model computes nothing from its input")
        graph = Graph(
            name=safe_name(model.name or self.path.stem),
            framework="qkeras" if self.quantised_by_model else "keras",
            source_path=str(self.path),
            input_shape=tuple(int(d) for d in in_shape),
            nodes=self.nodes,
            output_name=output,
            output_activation=self.final,
            parameters=int(model.count_params()),
        )
        graph.infer_shapes()
        graph.prune_unused()
        self.check_shapes(graph)
        fold_batchnorm(graph)
        return graph

    def translate_call(self, call: LayerCall) -> str:
        layer, cls = call.layer, call.cls
        if is_model(layer):
            raise self.reject(
                layer,
                "is a model nested inside the model; build the model from its layers (or call the inner "
                "model's layers directly)",
                supported=False,
            )
        if len(call.inputs) != 1 and cls not in (*layers.MERGES, "Concatenate"):
            raise self.reject(layer, f"takes {len(call.inputs)} inputs")
        xs = [self.tensors[k] for k in call.inputs]
        if cls in IDENTITY:
            return xs[0]
        handler = HANDLERS.get(cls)
        if handler is None:
            raise self.reject(layer)
        if cls.startswith("Q"):
            self.quantised_by_model = True
        return handler(self, call, xs)

    def _final_keys(self) -> set[Key]:
        """The model's output tensor and the tensors that identity layers pass on to it."""
        keys, key = set(), self.walk.output_key
        while True:
            keys.add(key)
            call = self.walk.producer(key)
            if call is None or call.cls not in IDENTITY or len(call.inputs) != 1:
                return keys
            key = call.inputs[0]

    def check_shapes(self, graph: Graph) -> None:
        """Every layer's IR tensor has the shape Keras gives it (a translation error otherwise)."""
        for call in self.walk.calls:
            name = self.tensors[call.output]
            if name == INPUT or name not in {n.name for n in graph.nodes}:
                continue
            got: Shape = graph.shape_of(name)
            if call.out_shape and tuple(call.out_shape) != got:
                raise UnsupportedLayer(
                    f"{self.where(call.layer)} computes shape {call.out_shape} in Keras but {got} once "
                    "translated; this layer configuration is not supported"
                )
