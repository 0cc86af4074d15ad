"""Translators of the Keras layers that compute or move tensors: dense, convolution, pooling,
batch norm, reshaping, padding, cropping, up-sampling, and the merges Add and Concatenate."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mlinfn_compress.compress.frameworks.keras.qparams import read_quantised_weights
from mlinfn_compress.compress.frameworks.keras.tfkeras import act_name
from mlinfn_compress.compress.frameworks.keras.walk import LayerCall
from mlinfn_compress.compress.ir import (
    Add,
    Concat,
    Crop,
    Linear,
    Maximum,
    Merge,
    Minimum,
    Pad,
    Pool,
    Reshape,
    Upsample,
    Window,
)

if TYPE_CHECKING:
    from mlinfn_compress.compress.frameworks.keras.translate import Handler, Translator


def _ints(v: Any, n: int) -> tuple[int, ...]:
    """A Keras size argument (an int or a tuple) as ``n`` ints."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * n
    return tuple(int(a) for a in v)


def _pairs(v: Any, n: int) -> tuple[tuple[int, int], ...]:
    """A Keras padding / cropping argument as ((before, after),) * n."""
    if isinstance(v, (int, np.integer)):
        return ((int(v), int(v)),) * n
    items = list(v)
    if n == 1 and len(items) == 2 and all(isinstance(a, (int, np.integer)) for a in items):
        return ((int(items[0]), int(items[1])),)
    out = []
    for a in items:
        out.append((int(a), int(a)) if isinstance(a, (int, np.integer)) else (int(a[0]), int(a[1])))
    return tuple(out)


def _dims(cls: str) -> int:
    return 1 if "1D" in cls else 2


def _channels_last(tr: Translator, layer: Any) -> None:
    fmt = getattr(layer, "data_format", "channels_last")
    if fmt not in (None, "channels_last"):
        raise tr.reject(layer, f"uses data_format='{fmt}'; only channels_last (Keras's default) is supported")


def _spatial(tr: Translator, call: LayerCall, dims: int) -> tuple[int, ...]:
    shape = call.in_shapes[0]
    if len(shape) != dims + 1:
        raise tr.reject(call.layer, f"receives a tensor of shape {shape}; it needs {dims} spatial axes and channels")
    return tuple(int(s) for s in shape[:-1])  # type: ignore[arg-type]  # Keras types shape entries int | None: the walk has checked they are known


def _padding(
    tr: Translator, layer: Any, kernel: tuple[int, ...], strides: tuple[int, ...], spatial: tuple[int, ...]
) -> Any:
    mode = str(layer.padding).lower()
    if mode == "valid":
        return tuple((0, 0) for _ in kernel)
    if mode == "same":
        return Window.same(kernel, strides, spatial)
    if mode == "causal" and len(kernel) == 1:
        return ((kernel[0] - 1, 0),)
    raise tr.reject(layer, f"has padding '{mode}'; supported: valid, same (and causal for Conv1D)", supported=False)


def _cmvm(tr: Translator, call: LayerCall, x: str, node: Linear) -> str:
    """Add a dense or convolution node (QKeras's quantised weights where the layer has quantisers)
    and the layer's activation."""
    layer = call.layer
    if call.cls.startswith("Q") and not read_quantised_weights(layer, node):
        tr.exact = False
    y = tr.add(node)
    return tr.activation(call, layer.activation, y, f"{node.name}_{act_name(layer.activation)}", fused=True)


def dense(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer = call.layer
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float64)
    n_in = call.in_shapes[0][-1] if call.in_shapes[0] else None
    if kernel.shape[0] != n_in:
        raise tr.reject(layer, f"expects {kernel.shape[0]} inputs but receives {n_in}")
    units = kernel.shape[1]
    bias = np.asarray(weights[1], dtype=np.float64) if layer.use_bias else np.zeros(units)
    node = Linear(name=layer.name, inputs=xs, source=call.cls, weight=kernel, bias=bias)
    return _cmvm(tr, call, xs[0], node)


def conv(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer, dims = call.layer, _dims(call.cls)
    _channels_last(tr, layer)
    if any(int(d) != 1 for d in _ints(layer.dilation_rate, dims)):
        raise tr.reject(layer, f"has dilation_rate {layer.dilation_rate}; only 1 is supported", supported=False)
    if int(getattr(layer, "groups", 1)) != 1:
        raise tr.reject(layer, f"has groups={layer.groups}; only 1 is supported", supported=False)
    spatial = _spatial(tr, call, dims)
    kernel_size, strides = _ints(layer.kernel_size, dims), _ints(layer.strides, dims)
    window = Window(kernel_size, strides, _padding(tr, layer, kernel_size, strides, spatial))
    weights = layer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float64)  # (kernel..., in channels, filters)
    filters = kernel.shape[-1]
    bias = np.asarray(weights[1], dtype=np.float64) if layer.use_bias else np.zeros(filters)
    node = Linear(
        name=layer.name,
        inputs=xs,
        source=call.cls,
        weight=kernel.reshape(-1, filters),
        bias=bias,
        window=window,
        label=f"conv{dims}d",
    )
    return _cmvm(tr, call, xs[0], node)


def pool(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer, dims = call.layer, _dims(call.cls)
    _channels_last(tr, layer)
    spatial = _spatial(tr, call, dims)
    mode = "max" if "Max" in call.cls else "avg"
    if call.cls.startswith("Global"):
        window = Window(spatial, (1,) * dims, ((0, 0),) * dims)
        node = Pool(name=layer.name, inputs=xs, source=call.cls, mode=mode, window=window, global_pool=True)
        y = tr.add(node)
        if getattr(layer, "keepdims", False):
            return y
        channels = int(call.in_shapes[0][-1])  # type: ignore[arg-type]  # Keras types shape entries int | None: the walk has checked they are known
        flat = Reshape(name=f"{layer.name}_flatten", inputs=[y], source=call.cls, target=(channels,), label="flatten")
        return tr.add(flat)
    size = _ints(layer.pool_size, dims)
    strides = _ints(layer.strides if layer.strides is not None else size, dims)
    window = Window(size, strides, _padding(tr, layer, size, strides, spatial))
    node = Pool(name=layer.name, inputs=xs, source=call.cls, mode=mode, window=window, count_pad=False)
    return tr.add(node)


def _bn_values(layer: Any, what: str, quantised: bool) -> np.ndarray | None:
    variable = getattr(layer, what, None)
    if variable is None:
        return None
    quantiser = getattr(layer, f"{what.replace('moving_', '')}_quantizer_internal", None) if quantised else None
    if quantiser is not None:
        return np.asarray(quantiser(variable).numpy(), dtype=np.float64)
    return np.asarray(variable.numpy(), dtype=np.float64)


def batchnorm(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    """y = gamma * (x - mean) / sqrt(var + eps) + beta: a per-channel scale and shift over the last axis."""
    layer = call.layer
    rank = len(call.in_shapes[0]) + 1
    axis = layer.axis
    given = [int(axis)] if isinstance(axis, (int, np.integer)) else [int(a) for a in axis]
    if [a % rank for a in given] != [rank - 1]:
        raise tr.reject(layer, f"normalises axis {given}; only the last (channel) axis is supported")
    quantised = call.cls.startswith("Q")
    mean = _bn_values(layer, "moving_mean", quantised)
    var = _bn_values(layer, "moving_variance", quantised)
    assert mean is not None and var is not None
    gamma = _bn_values(layer, "gamma", quantised) if layer.scale else None
    beta = _bn_values(layer, "beta", quantised) if layer.center else None
    scale = (np.ones_like(mean) if gamma is None else gamma) / np.sqrt(var + float(layer.epsilon))
    shift = (np.zeros_like(mean) if beta is None else beta) - mean * scale
    node = Linear(name=layer.name, inputs=xs, source=call.cls, weight=np.diag(scale), bias=shift, label="batchnorm")
    if quantised:
        node.notes.append(
            "scale and shift computed from the quantisers' gamma, beta, mean and variance; QKeras computes "
            "them in float, so the batch norm's formats are chosen post-training"
        )
    return tr.add(node)


def flatten(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    _channels_last(tr, call.layer)
    size = math.prod(int(s) for s in call.in_shapes[0])  # type: ignore[arg-type]  # Keras types shape entries int | None: the walk has checked they are known
    return tr.add(Reshape(name=call.layer.name, inputs=xs, source=call.cls, target=(size,), label="flatten"))


def reshape(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    target = tuple(int(s) for s in call.out_shape)  # type: ignore[arg-type]  # Keras types shape entries int | None: the walk has checked they are known
    return tr.add(Reshape(name=call.layer.name, inputs=xs, source=call.cls, target=target, label="reshape"))


def pad(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer, dims = call.layer, _dims(call.cls)
    _channels_last(tr, layer)
    _spatial(tr, call, dims)
    return tr.add(Pad(name=layer.name, inputs=xs, source=call.cls, pads=_pairs(layer.padding, dims)))


def crop(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer, dims = call.layer, _dims(call.cls)
    _channels_last(tr, layer)
    _spatial(tr, call, dims)
    return tr.add(Crop(name=layer.name, inputs=xs, source=call.cls, crops=_pairs(layer.cropping, dims)))


def upsample(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer, dims = call.layer, _dims(call.cls)
    _channels_last(tr, layer)
    _spatial(tr, call, dims)
    interpolation = getattr(layer, "interpolation", "nearest")
    if interpolation != "nearest":
        raise tr.reject(layer, f"interpolates '{interpolation}'; only nearest is supported", supported=False)
    return tr.add(Upsample(name=layer.name, inputs=xs, source=call.cls, factors=_ints(layer.size, dims)))


MERGES: dict[str, type[Merge]] = {"Add": Add, "Maximum": Maximum, "Minimum": Minimum}  # layers of several inputs


def merge(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    return tr.add(MERGES[call.cls](name=call.layer.name, inputs=xs, source=call.cls))


def concatenate(tr: Translator, call: LayerCall, xs: list[str]) -> str:
    layer = call.layer
    rank = len(call.in_shapes[0]) + 1
    axis = int(layer.axis)
    if axis % rank == 0:
        raise tr.reject(layer, "concatenates along the batch axis", supported=False)
    ir_axis = axis if axis < 0 else axis - 1  # the IR's tensors have no batch axis
    return tr.add(Concat(name=layer.name, inputs=xs, source=call.cls, axis=ir_axis))


HANDLERS: dict[str, Handler] = {
    "Dense": dense,
    "QDense": dense,
    "Conv1D": conv,
    "Conv2D": conv,
    "QConv1D": conv,
    "QConv2D": conv,
    "MaxPooling1D": pool,
    "MaxPooling2D": pool,
    "AveragePooling1D": pool,
    "AveragePooling2D": pool,
    "GlobalMaxPooling1D": pool,
    "GlobalMaxPooling2D": pool,
    "GlobalAveragePooling1D": pool,
    "GlobalAveragePooling2D": pool,
    "BatchNormalization": batchnorm,
    "QBatchNormalization": batchnorm,
    "Flatten": flatten,
    "Reshape": reshape,
    "ZeroPadding1D": pad,
    "ZeroPadding2D": pad,
    "Cropping1D": crop,
    "Cropping2D": crop,
    "UpSampling1D": upsample,
    "UpSampling2D": upsample,
    **dict.fromkeys(MERGES, merge),
    "Concatenate": concatenate,
}
