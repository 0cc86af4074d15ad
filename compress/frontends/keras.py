"""Keras / QKeras frontend: translate a saved model into the float IR.

Reads legacy HDF5 (tf.keras / tf_keras), ``.keras`` archives (Keras 3 or
tf_keras), and architecture JSON + weights HDF5.  QKeras layers are read
with their quantisers; the quantised weights are taken from QKeras itself.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedLayer, UserError
from ..fixed import FixedType, min_frac_bits, on_grid
from ..ir import Cast, Clip, Graph, Linear, Node
from ..tfkeras import act_name, keras3, linear, qkeras_objects, tf_keras
from .base import LoadedModel, safe_name, short_error

SUPPORTED = (
    "InputLayer, Dense (linear/relu), Activation (relu/linear), ReLU, Dropout, "
    "QDense, QActivation (quantized_relu, quantized_bits), and a softmax or sigmoid at the output"
)
FINAL_ACTIVATIONS = ("softmax", "sigmoid")  # at the output: the hardware emits the values before them
_IDENTITY = ("InputLayer", "Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise")


def _saved_keras_version(path: Path) -> str:
    """The Keras version recorded in a saved file ('' when unknown)."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                meta = json.loads(z.read("metadata.json"))
                return str(meta.get("keras_version", ""))
        import h5py

        with h5py.File(path, "r") as f:
            v = f.attrs.get("keras_version", b"")
            return v.decode() if isinstance(v, bytes) else str(v)
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read the model file ({e}); is it a complete Keras model?") from e


def load_keras_file(path: Path, weights: Path | None = None) -> Any:
    """Load a Keras model object from the supported file forms."""
    if path.suffix == ".json":
        if weights is None:
            for cand in (path.with_name(path.stem + "_weights.h5"), path.with_suffix(".h5")):
                if cand.exists():
                    weights = cand
                    break
        if weights is None or not weights.exists():
            raise UserError(
                f"{path}: an architecture JSON needs its weights; pass --weights FILE.h5 "
                f"(looked for {path.stem}_weights.h5 beside it)"
            )
        tfk = tf_keras()
        try:
            arch = _legacy_quantizers(json.loads(path.read_text()))
            model = tfk.models.model_from_json(json.dumps(arch), custom_objects=qkeras_objects())
            model.load_weights(str(weights))
        except Exception as e:  # noqa: BLE001 - any loader failure is a bad input
            raise UserError(f"{path} + {weights}: cannot load the model ({short_error(e)})") from e
        return model
    if path.suffix not in (".h5", ".hdf5", ".keras"):
        raise UserError(f"{path}: unknown model format; expected .h5, .keras or .json (+ weights)")
    version = _saved_keras_version(path)
    try:
        if version.startswith("3"):
            return keras3().saving.load_model(str(path), compile=False)
        tfk = tf_keras()
        return tfk.models.load_model(str(path), custom_objects=qkeras_objects(), compile=False)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: cannot load the model ({short_error(e)})") from e


def _legacy_quantizers(obj: Any, nested: bool = False) -> Any:
    """Rewrite QKeras quantisers nested in layer configs into the form QKeras can read back.

    tf_keras's ``to_json`` writes them as ``{"module", "class_name", "config",
    "registered_name"}``, which QKeras layers cannot deserialise from JSON.
    """
    if isinstance(obj, list):
        return [_legacy_quantizers(v, True) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if nested and str(obj.get("module", "")).startswith("qkeras.quantizers") and "config" in obj:
        return {"class_name": obj["class_name"], "config": obj["config"], "__passive_serialization__": True}
    return {k: _legacy_quantizers(v, True) for k, v in obj.items()}


def _quantizer_type(q: Any, where: str) -> tuple[str, FixedType | None]:
    """Map a QKeras activation quantiser to (op, fixed type)."""
    cls = type(q).__name__
    if cls == "quantized_relu":
        if q.use_sigmoid or q.negative_slope or q.relu_upper_bound is not None or not q.is_quantized_clip:
            raise UnsupportedLayer(
                f"{where}: quantized_relu options (use_sigmoid, negative_slope, relu_upper_bound, "
                "is_quantized_clip=False) are not supported; use quantized_relu(bits, integer)"
            )
        return "relu", FixedType(int(q.bits), int(q.integer), False, "RND_CONV", "SAT")
    if cls == "quantized_bits":
        if q.alpha not in (None, 1, 1.0) or q.use_stochastic_rounding:
            raise UnsupportedLayer(f"{where}: an activation quantized_bits needs alpha=1 (got {q.alpha!r})")
        signed = bool(q.keep_negative)
        if int(q.bits) - signed < 1:
            raise UnsupportedLayer(f"{where}: quantized_bits with {q.bits} bit is not supported")
        ovf = "SAT_SYM" if q.symmetric else "SAT"
        return "cast", FixedType(int(q.bits), int(q.integer) + signed, signed, "RND_CONV", ovf)
    raise UnsupportedLayer(
        f"{where}: activation quantiser {cls} is not supported; use quantized_relu or quantized_bits"
    )


def _param_type(values: np.ndarray, declared: FixedType | None) -> tuple[FixedType, bool]:
    """A storage type for already-quantised parameters; (type, matches_declared)."""
    if declared is not None and on_grid(values, declared.frac):
        ints = np.ldexp(values.astype(np.float64), declared.frac)
        if ints.size == 0 or (ints.min() >= declared.min_int and ints.max() <= declared.max_int):
            return declared, True
    frac = min_frac_bits(values)
    ints = np.ldexp(values.astype(np.float64), frac)
    lo, hi = (int(ints.min()), int(ints.max())) if ints.size else (0, 0)
    return FixedType.for_range(min(lo, -1), max(hi, 1), frac), False


def _declared_param_type(q: Any) -> FixedType | None:
    if type(q).__name__ != "quantized_bits" or q.alpha not in (None, 1, 1.0):
        return None
    signed = bool(q.keep_negative)
    return FixedType(int(q.bits), int(q.integer) + signed, signed, "RND_CONV", "SAT")


class _Translator:
    def __init__(self, path: Path, model: Any) -> None:
        self.path = path
        self.model = model
        self.nodes: list[Node] = []
        self.final: str | None = None  # "softmax" or "sigmoid" at the output
        self.exact = True  # framework inference can be bit-exact
        self.quantised_by_model = False
        self.calls: list[tuple[Any, bool]] = []  # (layer, strip its final activation) for the reference

    def where(self, layer: Any) -> str:
        return f"{self.path.name}: layer '{layer.name}' ({type(layer).__name__})"

    def reject(self, layer: Any, what: str = "is not supported") -> None:
        raise UnsupportedLayer(f"{self.where(layer)} {what}; supported: {SUPPORTED}")

    def prev(self) -> str:
        return self.nodes[-1].name if self.nodes else "input"

    def add(self, node: Node) -> None:
        if self.final:
            raise UnsupportedLayer(
                f"{self.path.name}: layer '{node.name}' follows the {self.final}; a {self.final} is supported "
                "only as the last layer"
            )
        self.nodes.append(node)

    def add_activation(self, layer: Any, act: Any, size: int, name: str) -> None:
        kind = act_name(act)
        if type(act).__name__ in ("quantized_relu", "quantized_bits"):
            op, t = _quantizer_type(act, self.where(layer))
            self.quantised_by_model = True
            cls = Clip if op == "relu" else Cast
            self.add(cls(name=name, inputs=[self.prev()], source=type(layer).__name__, result_type=t))
        elif kind == "relu":
            self.add(Clip(name=name, inputs=[self.prev()], source=type(layer).__name__))
        elif kind in FINAL_ACTIVATIONS:
            self.final = kind
        elif kind != "linear":
            self.reject(layer, f"has activation '{kind}', which is not supported")

    def translate(self) -> Graph:
        model = self.model
        known = {*_IDENTITY, "Dense", "QDense", "Activation", "QActivation", "ReLU", "Softmax"}
        for layer in model.layers:
            if type(layer).__name__ not in known:
                self.reject(layer)
        shape = tuple(model.inputs[0].shape)[1:] if model.inputs else None
        if shape is None or len(shape) != 1 or shape[0] is None:
            raise UnsupportedLayer(
                f"{self.path.name}: input shape {shape} is not a flat feature vector; only 1-D inputs "
                "(batch, features) are supported"
            )
        size = int(shape[0])
        input_size = size
        for layer in model.layers:
            cls = type(layer).__name__
            strip = False
            if cls in _IDENTITY:
                continue
            if cls in ("Dense", "QDense"):
                size = self.dense(layer, size)
                strip = act_name(layer.activation) in FINAL_ACTIVATIONS
            elif cls == "Activation":
                self.add_activation(layer, layer.activation, size, layer.name)
                strip = self.final is not None
            elif cls == "QActivation":
                self.add_activation(layer, layer.quantizer, size, layer.name)
            elif cls == "ReLU":
                cfg = layer.get_config()
                if cfg.get("max_value") is not None or cfg.get("negative_slope") or cfg.get("threshold"):
                    self.reject(layer, "with max_value, negative_slope or threshold is not supported")
                self.add_activation(layer, "relu", size, layer.name)
            elif cls == "Softmax":
                self.final = "softmax"
                strip = True
            else:
                self.reject(layer)
            if not strip:
                self.calls.append((layer, False))
            elif cls in ("Dense", "QDense"):
                self.calls.append((layer, True))
        if not any(isinstance(n, Linear) for n in self.nodes):
            raise UnsupportedLayer(f"{self.path.name}: the model has no Dense layer")
        graph = Graph(
            name=safe_name(model.name or self.path.stem),
            framework="qkeras" if self.quantised_by_model else "keras",
            source_path=str(self.path),
            input_shape=(input_size,),
            nodes=self.nodes,
            output_activation=self.final,
            parameters=int(model.count_params()),
        )
        graph.infer_shapes()
        return graph

    def dense(self, layer: Any, size: int) -> int:
        cls = type(layer).__name__
        weights = layer.get_weights()
        kernel = np.asarray(weights[0], dtype=np.float64)
        if kernel.shape[0] != size:
            self.reject(layer, f"expects {kernel.shape[0]} inputs but receives {size}")
        units = kernel.shape[1]
        bias = np.asarray(weights[1], dtype=np.float64) if layer.use_bias else np.zeros(units)
        node = Linear(name=layer.name, inputs=[self.prev()], source=cls, weight=kernel, bias=bias)
        if cls == "QDense":
            self.quantised_by_model = True
            self.qdense_params(layer, node)
        self.add(node)
        act_node_name = f"{layer.name}_{act_name(layer.activation)}"
        self.add_activation(layer, layer.activation, units, act_node_name)
        return int(units)

    def qdense_params(self, layer: Any, node: Linear) -> None:
        if layer.kernel_quantizer_internal is None:
            node.notes.append("kernel has no quantiser: quantised post-training")
        else:
            node.weight, node.weight_type = self.quantised_param(
                node, "kernel", layer.kernel_quantizer_internal, layer.kernel
            )
        if not layer.use_bias:
            node.bias_type = node.weight_type or FixedType(1, 1)
        elif layer.bias_quantizer_internal is None:
            self.exact = False
            node.notes.append(
                "bias has no quantiser: rounded to the accumulator's fractional bits; "
                "QKeras's own inference uses the float bias"
            )
        else:
            node.bias, node.bias_type = self.quantised_param(node, "bias", layer.bias_quantizer_internal, layer.bias)

    @staticmethod
    def quantised_param(node: Node, what: str, quantiser: Any, variable: Any) -> tuple[np.ndarray, FixedType]:
        """The values QKeras itself computes with, and a type that holds them exactly."""
        values = np.asarray(quantiser(variable).numpy(), dtype=np.float64)
        t, declared = _param_type(values, _declared_param_type(quantiser))
        if not declared:
            node.notes.append(f"{what} quantiser {quantiser} stored exactly as {t}")
        return values, t

    def reference(self) -> Callable[[np.ndarray], np.ndarray]:
        calls = list(self.calls)

        def run(x: np.ndarray) -> np.ndarray:
            return _run_layers(calls, x)

        return run


def _run_layers(calls: list[tuple[Any, bool]], x: np.ndarray, batch: int = 4096) -> np.ndarray:
    import tensorflow as tf

    outs = []
    for start in range(0, len(x), batch):
        t = tf.constant(x[start : start + batch].astype(np.float32))
        for layer, strip_softmax in calls:
            if strip_softmax:
                saved = layer.activation
                layer.activation = linear
                try:
                    t = layer(t, training=False)
                finally:
                    layer.activation = saved
            else:
                t = layer(t, training=False)
        outs.append(np.asarray(t, dtype=np.float64))
    return np.concatenate(outs, axis=0) if outs else np.zeros((0, 0))


def load(path: Path, weights: Path | None = None) -> LoadedModel:
    model = load_keras_file(path, weights)
    tr = _Translator(path, model)
    graph = tr.translate()
    exact = tr.exact and tr.quantised_by_model
    return LoadedModel(graph=graph, reference=tr.reference(), reference_exact=exact, model=model)
