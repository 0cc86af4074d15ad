"""The arithmetic layers of a PyTorch model as IR nodes: Linear, Conv, BatchNorm, pooling, activations.

A Linear or a convolution becomes one CMVM node (``Linear``, with a window
for a convolution: rows in (kernel..., channel) order).  A batch norm becomes
a CMVM with a diagonal matrix, which the ``fold_batchnorm`` pass merges into
the float Linear or convolution before it when it is that layer's only reader.  Brevitas
layers read their quantisers in ``brevitas.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, min_frac_bits
from mlinfn_compress.compress.frameworks.torch import brevitas
from mlinfn_compress.compress.frameworks.torch.trace import Call
from mlinfn_compress.compress.frameworks.torch.translate import STRUCTURAL, Translator, Value
from mlinfn_compress.compress.ir import Clip, LeakyRelu, Linear, Pool, Table, Window

EXACT_ALPHA_BITS = 16  # a LeakyReLU slope exact in this many bits is kept exactly


def _array(t: Any) -> np.ndarray:
    return np.asarray(t.detach().double().cpu().numpy(), dtype=np.float64)


def _pairs(value: Any, dims: int) -> tuple[int, ...]:
    """An int or a tuple of ints as one int per spatial axis."""
    if isinstance(value, int):
        return (value,) * dims
    values = tuple(int(v) for v in value)
    return values * dims if len(values) == 1 else values


def conv_matrix(w: np.ndarray, dims: int) -> np.ndarray:
    """A torch convolution weight (out, in, *kernel) as the IR's matrix (taps * in, out), rows in (kernel, in) order."""
    moved = w.transpose(*range(2, 2 + dims), 1, 0)
    return moved.reshape(-1, w.shape[0])


def linear(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """nn.Linear / QuantLinear: over a flat vector (any order, absorbed in the rows) or an N-D tensor's last axis."""
    (v,) = xs
    m = call.module
    x = tr.flat(v) if len(v.shape) == 1 else tr.plain(v)
    if int(m.in_features) != x.shape[-1]:
        raise tr.reject(f"expects {m.in_features} inputs but receives {x.shape[-1]}")
    order = x.order if len(v.shape) == 1 else None

    def matrix(w: np.ndarray) -> np.ndarray:
        return w.T if order is None else w.T[order]

    node, frac = _cmvm(tr, call, x, matrix, None, "dense")
    return brevitas.output_quant(tr, call, Value(node.name, (*v.shape[:-1], node.n_out), frac=frac))


def conv(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """nn.Conv1d/2d and QuantConv1d/2d: a CMVM over every window of the channels-last input."""
    (v,) = xs
    m = call.module
    dims = len(m.kernel_size)
    tr.spatial_dims(v, dims)
    if int(m.groups) != 1 or any(d != 1 for d in _pairs(m.dilation, dims)):
        raise tr.reject(f"has groups={m.groups}, dilation={m.dilation}; only groups=1 and dilation=1 are supported")
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise tr.reject(f"pads with padding_mode={m.padding_mode!r}; only 'zeros' is supported")
    kernel, strides = _pairs(m.kernel_size, dims), _pairs(m.stride, dims)
    if m.padding == "valid":
        pads: tuple[tuple[int, int], ...] = ((0, 0),) * dims
    elif m.padding == "same":  # torch: total k - 1, the extra one after
        pads = tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in kernel)
    else:
        pads = tuple((p, p) for p in _pairs(m.padding, dims))
    x = tr.natural(v)
    node, frac = _cmvm(tr, call, x, lambda w: conv_matrix(w, dims), Window(kernel, strides, pads), f"conv{dims}d")
    return brevitas.output_quant(tr, call, tr.natural_value(node.name, frac))


def _cmvm(
    tr: Translator, call: Call, x: Value, matrix: Any, window: Window | None, label: str
) -> tuple[Linear, int | None]:
    """The CMVM node of a Linear or convolution (Brevitas quantisers read exactly), appended to the graph,
    and the fractional bits of its output's Brevitas scale when known."""
    m = call.module
    weight = _array(m.weight)
    bias = np.zeros(weight.shape[0]) if m.bias is None else _array(m.bias)
    tr.parameters += weight.size + (0 if m.bias is None else bias.size)
    node = Linear(name="", inputs=[x.tensor], weight=matrix(weight), bias=bias, window=window, label=label,
                  source=call.cls)  # fmt: skip
    frac = None
    if brevitas.is_brevitas(m):
        frac = brevitas.quant_cmvm(tr, call, node, x, matrix)
    else:
        tr.exact = False  # formats chosen post-training
    tr.add(node)
    return node, frac


def batch_norm(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """BatchNorm1d/2d: a per-channel scale and shift, a diagonal CMVM (``fold_batchnorm`` may merge it)."""
    (v,) = xs
    m = call.module
    if m.running_mean is None or m.running_var is None:
        raise tr.reject("normalises with batch statistics at inference (track_running_stats=False)")
    mean, var = _array(m.running_mean), _array(m.running_var)
    scale = 1.0 / np.sqrt(var + float(m.eps))
    if m.weight is not None:
        scale = scale * _array(m.weight)
    shift = -mean * scale + (_array(m.bias) if m.bias is not None else 0.0)
    tr.parameters += 2 * len(mean) if m.weight is not None else 0
    tr.exact = False
    if len(v.shape) == 1:
        x = tr.flat(v)
        index = x.order if x.order is not None else np.arange(x.size)
        scale, shift = scale[index], shift[index]
    else:
        x = tr.natural(v)
    node = Linear(name="", inputs=[x.tensor], weight=np.diag(scale), bias=shift, label="batchnorm", source=call.cls)
    return tr.out_value(x, tr.add(node))


def pool(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """Max and average pooling (module or function), and adaptive pooling to size 1 (global) or exact divisors."""
    (v,) = xs
    dims = tr.spatial_dims(v)
    mode = "max" if "max" in call.kind else "avg"
    spatial = v.shape[1:]
    if call.kind.startswith("adaptive"):
        out = tr.shapes[call.out][1:]
        if any(i % o for i, o in zip(spatial, out, strict=True)):
            raise tr.reject(f"pools {spatial} to {out}; only output sizes that divide the input are supported")
        kernel = strides = tuple(i // o for i, o in zip(spatial, out, strict=True))
        window, count_pad, whole = Window(kernel, strides, ((0, 0),) * dims), False, all(o == 1 for o in out)
    else:
        kernel = _pairs(call.param("kernel_size"), dims)
        stride = call.param("stride")
        strides = kernel if stride is None or stride == () or stride == [] else _pairs(stride, dims)
        pads = tuple((p, p) for p in _pairs(call.param("padding", 0), dims))
        if call.param("ceil_mode", False):
            raise tr.reject("uses ceil_mode=True; only ceil_mode=False is supported")
        if mode == "max" and (any(d != 1 for d in _pairs(call.param("dilation", 1), dims)) or
                              call.param("return_indices", False)):  # fmt: skip
            raise tr.reject("has a dilation or returns indices; neither is supported")
        if mode == "avg" and call.param("divisor_override") is not None:
            raise tr.reject("has a divisor_override; it is not supported")
        window, count_pad, whole = Window(kernel, strides, pads), bool(call.param("count_include_pad", True)), False
    x = tr.natural(v)
    node = Pool(name="", inputs=[x.tensor], mode=mode, window=window, count_pad=count_pad, global_pool=whole,
                source=call.cls)  # fmt: skip
    if mode == "avg" and any(d & (d - 1) for d in {int(d) for d in np.ravel(node.divisors(tr.ir_shapes[x.tensor]))}):
        tr.exact = False  # a division by other than a power of two is rounded
    return tr.natural_value(tr.add(node), x.frac if mode == "max" else None)


# ---- activations ----


def _dyadic(tr: Translator, value: float, what: str) -> float:
    if not math.isfinite(value) or not math.ldexp(value, 24).is_integer():
        raise tr.reject(f"has {what} {value}, which is not a binary fraction of at most 24 fractional bits")
    return float(value)


def clip(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """ReLU, ReLU6, Hardtanh: a clamp."""
    (v,) = xs
    if call.kind == "relu":
        lo, hi, label = 0.0, None, "relu"
    elif call.kind == "relu6":
        lo, hi, label = 0.0, 6.0, "relu6"
    else:
        lo = _dyadic(tr, float(call.param("min_val", -1.0)), "min_val")
        hi = _dyadic(tr, float(call.param("max_val", 1.0)), "max_val")
        label = "hard_tanh"
    source = call.cls if call.is_module else f"F.{call.cls}" if call.cls in ("relu", "relu6", "hardtanh") else call.cls
    node = Clip(name="", inputs=[v.tensor], lo=lo, hi=hi, label=label, source=source)
    return tr.out_value(v, tr.add(node), frac=v.frac)


def leaky_relu(tr: Translator, call: Call, xs: list[Value]) -> Value:
    (v,) = xs
    alpha = float(call.param("negative_slope", 0.01))
    node = LeakyRelu(name="", inputs=[v.tensor], alpha=alpha, source=call.cls)
    if math.ldexp(alpha, EXACT_ALPHA_BITS).is_integer():  # the slope is exact: keep it so
        frac = min_frac_bits(np.array([alpha]))
        a = int(math.ldexp(alpha, frac))
        node.alpha_type = FixedType.for_range(min(a, -1), max(a, 1), frac)
    else:
        tr.exact = False
    return tr.out_value(v, tr.add(node))


def hardsigmoid(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """x / 6 + 1/2 clamped to [0, 1]: a scale-and-shift CMVM over the last axis, then a clamp."""
    (v,) = xs
    n = tr.ir_shapes[v.tensor][-1] if tr.ir_shapes[v.tensor] else 1
    scale = Linear(name="", inputs=[v.tensor], weight=np.eye(n) / 6.0, bias=np.full(n, 0.5), label="batchnorm",
                   source=call.cls)  # fmt: skip
    t = tr.add(scale, f"{call.name}_scale")
    tr.exact = False
    return tr.out_value(v, tr.add(Clip(name="", inputs=[t], lo=0.0, hi=1.0, label="hard_sigmoid", source=call.cls)))


def table(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """Sigmoid or tanh inside the network: a lookup table."""
    (v,) = xs
    tr.exact = False
    return tr.out_value(v, tr.add(Table(name="", inputs=[v.tensor], function=call.kind, source=call.cls)))


HANDLERS = STRUCTURAL | {
    "linear": linear, "conv": conv, "batch_norm": batch_norm,
    "max_pool": pool, "avg_pool": pool, "adaptive_avg_pool": pool, "adaptive_max_pool": pool,
    "relu": clip, "relu6": clip, "hardtanh": clip, "leaky_relu": leaky_relu, "hardsigmoid": hardsigmoid,
    "sigmoid": table, "tanh": table, "quant_act": brevitas.quant_act,
}  # fmt: skip
