"""Translators of activations: Keras activation functions and layers, and QKeras activation quantisers.

Piecewise-linear activations become exact IR operations (a clip, a leaky
relu, a per-channel scale and shift); sigmoid and tanh become lookup tables.
QKeras quantisers fix their output formats, read from the quantiser:

* ``quantized_relu(bits, integer)``: a relu rounded half to even and
  saturated to ``ufixed<bits, integer>``; with ``negative_slope`` s (a power
  of two) a leaky relu to ``fixed<bits, integer+1>`` whose negative side
  stops at ``-s * 2**integer``;
* ``quantized_bits``: a cast;
* ``quantized_tanh(bits)``: with QKeras's default hard sigmoid,
  ``2 * hard_sigmoid(x) - 1`` is ``clip(x, -1, 1)``, rounded to
  ``fixed<bits, 1>``; with ``use_real_tanh`` a tanh table;
* ``quantized_sigmoid(bits)``: ``clip(0.5 x + 0.5, 0, 1)`` rounded to
  ``ufixed<bits, 0>``; with ``use_real_sigmoid`` a sigmoid table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, FixedTypeError, min_frac_bits
from mlinfn_compress.compress.frameworks.keras.qparams import exact_constant
from mlinfn_compress.compress.frameworks.keras.tfkeras import act_name
from mlinfn_compress.compress.frameworks.keras.walk import LayerCall
from mlinfn_compress.compress.ir import Cast, Clip, LeakyRelu, Linear, Table

if TYPE_CHECKING:
    from mlinfn_compress.compress.frameworks.keras.translate import Handler, Translator

ACTIVATIONS = "relu, relu6, leaky_relu, hard_sigmoid, hard_tanh, sigmoid, tanh, linear, and softmax at the output"
QUANTIZERS = "quantized_relu, quantized_bits, quantized_tanh, quantized_sigmoid"
ROUND = ("RND_CONV", "SAT")  # QKeras rounds half to even (tf.round) and clips


def _dyadic(tr: Translator, layer: Any, what: str, value: float) -> float:
    try:
        min_frac_bits(np.array([value]), limit=30)
    except FixedTypeError:
        raise tr.reject(
            layer, f"has {what} {value}, which is not a multiple of a power of two (2**-30 or coarser)"
        ) from None
    return float(value)


def _float32(v: Any) -> float:
    """A Keras layer argument as the float32 value Keras computes with."""
    return float(np.float32(np.asarray(v, dtype=np.float64)))


def table(
    tr: Translator, function: str, x: str, layer: Any, name: str | None = None, t: FixedType | None = None
) -> str:
    return tr.add(
        Table(name=name or layer.name, inputs=[x], source=type(layer).__name__, function=function, result_type=t)
    )


def clip(
    tr: Translator,
    layer: Any,
    x: str,
    name: str,
    lo: float | None,
    hi: float | None,
    label: str,
    t: FixedType | None = None,
) -> str:
    return tr.add(Clip(name=name, inputs=[x], source=type(layer).__name__, lo=lo, hi=hi, label=label, result_type=t))


def _relu_label(hi: float | None) -> str:
    return "relu" if hi is None else "relu6" if hi == 6.0 else "clipped_relu"


def hard_sigmoid(tr: Translator, call: LayerCall, x: str, name: str, slope: float, t: FixedType | None = None) -> str:
    """clip(slope * x + 0.5, 0, 1): a per-channel scale and shift, then a clip; exact types when ``t`` is given."""
    layer = call.layer
    channels = int(call.out_shape[-1])  # type: ignore[arg-type]  # Keras types shape entries int | None: the walk has checked they are known
    scale = Linear(
        name=f"{name}_scale",
        inputs=[x],
        source=type(layer).__name__,
        weight=np.diag(np.full(channels, slope)),
        bias=np.full(channels, 0.5),
        label="batchnorm",
        notes=[f"the slope {slope:g} and offset 0.5 of a hard sigmoid, a per-channel scale and shift"],
    )
    if t is not None:
        scale.weight_type, scale.bias_type = exact_constant(np.array([slope])), exact_constant(np.array([0.5]))
    s = tr.add(scale)
    return clip(tr, layer, s, name, 0.0, 1.0, "hard_sigmoid", t)


def _keras_hard_sigmoid_slope(act: Any) -> float:
    """tf_keras: 0.2 x + 0.5; Keras 3: relu6(x + 3) / 6; QKeras's own hard_sigmoid: 0.5 x + 0.5."""
    module = str(getattr(act, "__module__", ""))
    if module.startswith("qkeras"):
        return 0.5
    if module.startswith("keras."):
        return 1.0 / 6.0
    return _float32(0.2)


def apply(tr: Translator, call: LayerCall, act: Any, x: str, name: str, fused: bool) -> str:
    """The IR of activation ``act`` (a Keras activation function or a QKeras quantiser) on tensor ``x``."""
    layer = call.layer
    quantiser = QUANTISERS.get(type(act).__name__)
    if quantiser is not None:
        tr.quantised_by_model = True
        return quantiser(tr, call, act, x, name)
    kind = act_name(act)
    if kind == "linear":
        return x
    if kind in ("softmax", "sigmoid"):
        return tr.final_activation(call, kind, x, fused, name)
    if kind == "relu":
        return clip(tr, layer, x, name, 0.0, None, "relu")
    if kind == "relu6":
        return clip(tr, layer, x, name, 0.0, 6.0, "relu6")
    if kind == "hard_tanh":
        return clip(tr, layer, x, name, -1.0, 1.0, "hard_tanh")
    if kind == "leaky_relu":  # Keras 3's activation function: negative slope 0.2
        return tr.add(LeakyRelu(name=name, inputs=[x], source=type(layer).__name__, alpha=_float32(0.2)))
    if kind == "hard_sigmoid":
        return hard_sigmoid(tr, call, x, name, _keras_hard_sigmoid_slope(act))
    if kind == "tanh":
        return table(tr, "tanh", x, layer, name)
    raise tr.reject(layer, f"has activation '{kind}', which is not supported; supported activations: {ACTIVATIONS}")


# ---- Keras activation layers ----


def activation_layer(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    return apply(tr, call, call.layer.activation, xs[0], call.layer.name, fused=False)


def relu_layer(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer = call.layer
    cfg = layer.get_config()
    if cfg.get("threshold") is not None and float(cfg["threshold"]) != 0.0:
        raise tr.reject(layer, f"has threshold {float(cfg['threshold'])}; only 0 is supported", supported=False)
    top = cfg.get("max_value")
    hi = None if top is None else _dyadic(tr, layer, "max_value", _float32(top))
    slope = _float32(cfg.get("negative_slope") or 0.0)
    if slope == 0.0:
        return clip(tr, layer, xs[0], layer.name, 0.0, hi, _relu_label(hi))
    if hi is None:
        return tr.add(LeakyRelu(name=layer.name, inputs=xs, source=call.cls, alpha=slope))
    leaky = tr.add(LeakyRelu(name=f"{layer.name}_leaky", inputs=xs, source=call.cls, alpha=slope))
    return clip(tr, layer, leaky, layer.name, None, hi, "clipped_relu")


def leaky_relu_layer(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer = call.layer
    slope = getattr(layer, "negative_slope", None)
    slope = layer.alpha if slope is None else slope
    return tr.add(LeakyRelu(name=layer.name, inputs=xs, source=call.cls, alpha=_float32(slope)))


def softmax_layer(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer = call.layer
    axis = getattr(layer, "axis", -1)
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = len(call.in_shapes[0]) + 1
    if [int(a) % rank for a in axes] != [rank - 1]:
        raise tr.reject(layer, f"applies a softmax over axis {axis}; only the last axis is supported", supported=False)
    return tr.final_activation(call, "softmax", xs[0], False, layer.name)


def qactivation_layer(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    tr.quantised_by_model = True
    return apply(tr, call, call.layer.quantizer, xs[0], call.layer.name, fused=False)


# ---- QKeras activation quantisers ----


def _no_stochastic(tr: Translator, layer: Any, q: Any) -> None:
    if getattr(q, "use_stochastic_rounding", False):
        raise tr.reject(layer, f"uses {q} with stochastic rounding, which has no fixed-point equivalent")


def _hard_sigmoid_mode(tr: Translator, layer: Any, q: Any) -> None:
    from qkeras import quantizers

    mode = getattr(quantizers._sigmoid, "__name__", "")
    if mode != "hard_sigmoid":
        raise tr.reject(
            layer,
            f"uses {q} while QKeras's internal sigmoid is '{mode}' (set_internal_sigmoid); only QKeras's default "
            "'hard' is supported, or use_real_tanh / use_real_sigmoid",
            supported=False,
        )


def quantized_relu(tr: Translator, call: LayerCall, q: Any, x: str, name: str) -> str:
    layer = call.layer
    bits, integer = int(q.bits), int(q.integer)
    if q.use_sigmoid or not q.is_quantized_clip:
        raise tr.reject(
            layer,
            f"uses {q} with use_sigmoid or is_quantized_clip=False, which are not supported; "
            "use quantized_relu(bits, integer[, negative_slope])",
            supported=False,
        )
    _no_stochastic(tr, layer, q)
    slope = float(q.negative_slope)
    if slope == 0.0:
        return clip(tr, layer, x, name, 0.0, None, "relu", FixedType(bits, integer, False, *ROUND))
    if bits < 2 or slope * 2 ** (bits - 1) < 1:
        raise tr.reject(
            layer,
            f"uses {q}: a negative slope below 2**-(bits-1) rounds outside the format's grid",
            supported=False,
        )
    # QKeras clips the negative side at -slope * 2**integer: clip the input at -2**integer first
    floor = clip(tr, layer, x, f"{name}_floor", -(2.0**integer), None, "clip")
    alpha_type = exact_constant(np.array([slope]))
    t = FixedType(bits, integer + 1, True, *ROUND)
    node = LeakyRelu(name=name, inputs=[floor], source=type(layer).__name__, alpha=slope, alpha_type=alpha_type)
    node.result_type = t
    return tr.add(node)


def quantized_bits(tr: Translator, call: LayerCall, q: Any, x: str, name: str) -> str:
    layer = call.layer
    if q.alpha not in (None, 1, 1.0):
        raise tr.reject(layer, f"uses an activation quantized_bits with alpha={q.alpha!r}; it needs alpha=1")
    _no_stochastic(tr, layer, q)
    signed = bool(q.keep_negative)
    if int(q.bits) - signed < 1:
        raise tr.reject(layer, f"uses quantized_bits with {q.bits} bit, which is not supported")
    overflow = "SAT_SYM" if q.symmetric else "SAT"
    t = FixedType(int(q.bits), int(q.integer) + signed, signed, "RND_CONV", overflow)
    return tr.add(Cast(name=name, inputs=[x], source=type(layer).__name__, result_type=t))


def quantized_tanh(tr: Translator, call: LayerCall, q: Any, x: str, name: str) -> str:
    layer = call.layer
    _no_stochastic(tr, layer, q)
    if int(q.bits) < 2:
        raise tr.reject(layer, f"uses {q}; quantized_tanh needs at least 2 bits", supported=False)
    t = FixedType(int(q.bits), 1, True, "RND_CONV", "SAT_SYM" if q.symmetric else "SAT")
    if q.use_real_tanh:
        return table(tr, "tanh", x, layer, name, t)
    _hard_sigmoid_mode(tr, layer, q)
    return clip(tr, layer, x, name, -1.0, 1.0, "hard_tanh", t)


def quantized_sigmoid(tr: Translator, call: LayerCall, q: Any, x: str, name: str) -> str:
    layer = call.layer
    _no_stochastic(tr, layer, q)
    if q.symmetric:
        raise tr.reject(layer, f"uses {q} with symmetric=True, which is not supported", supported=False)
    t = FixedType(int(q.bits), 0, False, *ROUND)
    if q.use_real_sigmoid:
        return table(tr, "sigmoid", x, layer, name, t)
    _hard_sigmoid_mode(tr, layer, q)
    return hard_sigmoid(tr, call, x, name, 0.5, t)


def _refuse_quantiser(tr: Translator, call: LayerCall, q: Any, x: str, name: str) -> str:
    raise tr.reject(
        call.layer, f"uses activation quantiser {type(q).__name__}; supported: {QUANTIZERS}", supported=False
    )


QUANTISERS: dict[str, Any] = {
    "quantized_relu": quantized_relu,
    "quantized_bits": quantized_bits,
    "quantized_tanh": quantized_tanh,
    "quantized_sigmoid": quantized_sigmoid,
    **{
        cls: _refuse_quantiser
        for cls in (
            "quantized_po2",
            "quantized_relu_po2",
            "quantized_ulaw",
            "quantized_hswish",
            "binary",
            "ternary",
            "stochastic_binary",
            "stochastic_ternary",
            "bernoulli",
        )
    },  # fmt: skip
}

HANDLERS: dict[str, Handler] = {
    "Activation": activation_layer,
    "ReLU": relu_layer,
    "LeakyReLU": leaky_relu_layer,
    "Softmax": softmax_layer,
    "QActivation": qactivation_layer,
}
