"""A float tf_keras model rebuilt in QKeras for quantisation-aware training.

The layer graph (Sequential or functional, with branches) is walked from the
input to the output and every call is re-applied with a new layer:
Dense / Conv1D / Conv2D become QDense / QConv1D / QConv2D with
``quantized_bits`` kernels and biases, each ReLU (fused or a layer of its own)
a ``QActivation(quantized_relu)``, with integer bits from the weights' and
activations' ranges; a batch norm right after a dense or convolution layer
with a linear activation (its only consumer) is folded into that layer's
weights, so that the QKeras model fixes every format; every other layer is
copied with its weights.  TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import integer_bits_for
from mlinfn_compress.compress.frameworks.keras.tfkeras import act_name, tf_keras
from mlinfn_compress.compress.frameworks.keras.walk import LayerCall, Walk

WEIGHTED = {"Dense": "QDense", "QDense": "QDense", "Conv1D": "QConv1D", "QConv1D": "QConv1D",
            "Conv2D": "QConv2D", "QConv2D": "QConv2D"}  # fmt: skip
CONV_ARGS = ("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate")


def act_kind(act: Any) -> str:
    """The activation's name, a quantised relu counting as relu."""
    return "relu" if type(act).__name__ == "quantized_relu" else act_name(act)


def layer_kind(layer: Any) -> str:
    """'weighted' (dense, convolution), 'relu', 'softmax', 'identity' or 'other' (what the layer does)."""
    cls = type(layer).__name__
    if cls in WEIGHTED:
        return "weighted"
    if cls in ("Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D", "SpatialDropout2D"):
        return "identity"
    if cls == "Softmax":
        return "softmax"
    if cls == "ReLU":
        cfg = layer.get_config()
        plain = cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold")
        return "relu" if plain else "other"
    if cls == "Activation":
        return {"relu": "relu", "softmax": "softmax", "linear": "identity"}.get(act_kind(layer.activation), "other")
    if cls == "QActivation" and type(layer.quantizer).__name__ == "quantized_relu":
        return "relu"
    return "other"


def _weight_quantizer(values: np.ndarray, bits: int) -> Any:
    """quantized_bits(bits, I-1, alpha=1) with I from the values' range (QKeras needs I-1 >= 0)."""
    from qkeras import quantized_bits

    i = integer_bits_for(float(np.max(np.abs(values))) if values.size else 0.0, signed=True)
    return quantized_bits(bits, max(0, i - 1), alpha=1)


def _relu_quantizer(max_value: float, bits: int) -> Any:
    from qkeras import quantized_relu

    return quantized_relu(bits, max(0, integer_bits_for(max_value, signed=False)))


def _call_outputs(walk: Walk, x: np.ndarray) -> dict[int, float]:
    """The largest value of every call's output on ``x`` (keyed by call index)."""
    tfk = tf_keras()
    outs = [walk.tensors[c.output] for c in walk.calls]
    if not outs:
        return {}
    probe = tfk.Model(walk.input, outs)
    values = probe(np.asarray(x, dtype=np.float32), training=False)
    values = values if isinstance(values, (list, tuple)) else [values]
    return {i: float(np.max(v)) if np.size(v) else 0.0 for i, v in enumerate(values)}


def _folds(walk: Walk) -> dict[str, LayerCall]:
    """Batch norms to fold, by the name of the dense / convolution layer before them."""
    consumers: dict[Any, int] = {}
    for c in walk.calls:
        for k in c.inputs:
            consumers[k] = consumers.get(k, 0) + 1
    out = {}
    for c in walk.calls:
        if c.cls != "BatchNormalization" or consumers.get(c.inputs[0], 0) != 1:
            continue
        prev = walk.producer(c.inputs[0])
        if prev is not None and layer_kind(prev.layer) == "weighted" and act_kind(prev.layer.activation) == "linear":
            axis = c.layer.axis
            axes = [int(axis)] if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
            if [a % (len(c.in_shapes[0]) + 1) for a in axes] == [len(c.in_shapes[0])]:
                out[prev.layer.name] = c
    return out


def _folded(layer: Any, bn: Any) -> list[np.ndarray]:
    """The layer's kernel and bias with the batch norm after it folded in."""
    w = layer.get_weights()
    kernel = np.asarray(w[0], dtype=np.float64)
    bias = np.asarray(w[1], dtype=np.float64) if layer.use_bias else np.zeros(kernel.shape[-1])
    values = dict(zip([v.name.split("/")[-1].split(":")[0] for v in bn.weights], bn.get_weights(), strict=True))
    gamma = values.get("gamma", np.ones_like(bias))
    beta = values.get("beta", np.zeros_like(bias))
    scale = gamma / np.sqrt(values["moving_variance"] + float(bn.epsilon))
    return [kernel * scale, bias * scale + beta - values["moving_mean"] * scale]


def _weighted(layer: Any, weights: list[np.ndarray], weight_bits: int) -> Any:
    """The QKeras layer of a dense or convolution layer, without its activation."""
    import qkeras

    cfg = layer.get_config()
    cls = getattr(qkeras, WEIGHTED[type(layer).__name__])
    bias = weights[1] if len(weights) > 1 else np.zeros(weights[0].shape[-1])
    args: dict[str, Any] = {"units": cfg["units"]} if cls.__name__ == "QDense" else {k: cfg[k] for k in CONV_ARGS}
    return cls(
        **args,
        use_bias=len(weights) > 1,
        kernel_quantizer=_weight_quantizer(weights[0], weight_bits),
        bias_quantizer=_weight_quantizer(bias, weight_bits),
        name=layer.name,
    )


def quantised_copy(model: Any, x: np.ndarray, weight_bits: int, act_bits: int) -> Any:
    """The model rebuilt in QKeras with its weights: quantised kernels, biases and ReLUs.

    Integer bits come from each layer's weights and from the ReLU outputs on ``x``.
    A dense or convolution layer's output without a ReLU stays unquantised; a
    final softmax stays a softmax.  ValueError names a layer that cannot be rebuilt.
    """
    from qkeras import QActivation

    tfk = tf_keras()
    walk = Walk(model)
    if len(walk.input) != 1 or len(walk.output) != 1:
        raise ValueError("only a model with one input and one output can be quantisation-aware trained")
    tops = _call_outputs(walk, x)
    folds = _folds(walk)
    folded = {id(bn.layer) for bn in folds.values()}
    inp = tfk.layers.Input(tuple(walk.input[0].shape)[1:], name="input")
    tensors: dict[Any, Any] = {walk.input_key: inp}
    weights: dict[str, list[np.ndarray]] = {}
    for i, call in enumerate(walk.calls):
        layer, kind = call.layer, layer_kind(call.layer)
        ins = [tensors[k] for k in call.inputs]
        t = ins[0] if len(ins) == 1 else ins
        if id(layer) in folded:
            y = t
        elif kind == "weighted":
            w = _folded(layer, folds[layer.name].layer) if layer.name in folds else layer.get_weights()
            weights[layer.name] = w
            y = _weighted(layer, w, weight_bits)(t)
            act = act_kind(layer.activation)
            if act == "relu":
                y = QActivation(_relu_quantizer(tops[i], act_bits), name=f"{layer.name}_relu")(y)
            elif act == "softmax":
                y = tfk.layers.Activation("softmax", name=f"{layer.name}_softmax")(y)
            elif act != "linear":
                raise ValueError(f"layer '{layer.name}': activation '{act}' cannot be quantised; use relu")
        elif kind == "relu":
            y = QActivation(_relu_quantizer(tops[i], act_bits), name=layer.name)(t)
        elif type(layer).__name__ == "QActivation":
            q = layer.quantizer
            y = QActivation(type(q).from_config(q.get_config()), name=layer.name)(t)
        elif getattr(layer, "layers", None) is not None:
            raise ValueError(f"layer '{layer.name}' is a nested model, which cannot be quantisation-aware trained")
        else:  # pooling, reshaping, merges, batch norms left standing, softmax, dropout: copied
            new = type(layer).from_config(layer.get_config())
            y = new(t)
            if layer.get_weights():
                weights[layer.name] = layer.get_weights()
        tensors[call.output] = y
    qmodel = tfk.Model(inp, tensors[walk.output_key], name=model.name)
    for name, w in weights.items():
        qmodel.get_layer(name).set_weights(w)
    return qmodel
