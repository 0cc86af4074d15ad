"""A float PyTorch chain of layers rebuilt in Brevitas with power-of-two fixed-point quantisers.

``quantised_copy`` keeps the layers' names and weights: a ``QuantIdentity``
for the input, ``QuantLinear`` / ``QuantConv1d`` / ``QuantConv2d`` with
``Int8WeightPerTensorFixedPoint`` weights and biases on the accumulator's grid,
``QuantReLU`` with a constant power-of-two scale from the range each
activation takes on the training data, max pooling and flattening (which keep
the scale), and a batch norm folded into the layer before it.  Only chains are
rebuilt (each layer reads the one before); anything else is refused with the
reason.  torch and brevitas are imported inside the functions.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import integer_bits_for

INPUT_QUANT = "input_quant"
BIAS_MARGIN = 4.0  # biases may grow this much during fine-tuning before their quantiser saturates
QAT_LAYERS = "a chain of Linear, Conv1d/Conv2d (with a BatchNorm after them), ReLU, MaxPool1d/2d, Flatten, Dropout"


@functools.cache
def _quantizers() -> dict[str, Any]:
    """Fixed-point quantisers: weights scaled from their statistics, constant activations, biases on the grid."""
    from brevitas.inject.enum import ScalingImplType
    from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias

    class ConstAct(Int8ActPerTensorFixedPoint):  # type: ignore[misc]  # Brevitas is untyped: its quantiser classes are Any to mypy
        scaling_impl_type = ScalingImplType.CONST
        scaling_min_val = None

    return {"weight": Int8WeightPerTensorFixedPoint, "act": ConstAct, "bias": Int16Bias}


def _act_kwargs(bits: int, integer: int, signed: bool) -> dict[str, Any]:
    """A constant power-of-two activation quantiser: ``bits`` bits, ``integer`` of them above the point."""
    top = math.ldexp(1.0, integer - int(signed))  # the threshold: scale 2**(integer - bits)
    q = _quantizers()["act"]
    return {"act_quant": q, "bit_width": bits, "max_val": top, "min_val": -top if signed else 0.0, "signed": signed}


def _ranges(runner: Any, x: np.ndarray, dtype: Any) -> dict[str, float]:
    """Largest absolute value of every tensor of the float model on ``x``, by fx node name."""
    import torch
    import torch.fx as fx

    out: dict[str, float] = {}

    class Recorder(fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            if isinstance(result, torch.Tensor) and result.is_floating_point():
                out[n.name] = float(result.abs().max()) if result.numel() else 0.0
            return result

    with torch.no_grad():
        Recorder(runner).run(torch.from_numpy(np.asarray(x, dtype=np.float64)).to(dtype))
    return out


def _bn_fold(bn: Any) -> tuple[Any, Any]:
    """(scale, shift) of a batch norm at inference."""
    import torch

    scale = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def _chain(traced: Any) -> list[Any]:
    """The calls of a chain (each reads the one before), without identities; ValueError otherwise."""
    meta = {c.out for c in traced.calls if c.kind == "meta"}  # sizes read by views
    prev, calls = traced.input, []
    for call in traced.calls:
        if call.kind == "meta":
            continue
        if [i for i in call.inputs if i not in meta] != [prev]:
            raise ValueError(
                f"'{call.name}' ({call.cls}) does not continue a chain of layers; quantisation-aware training "
                f"rebuilds {QAT_LAYERS} (pruning alone takes any graph)"
            )
        prev = call.out
        if call.kind != "identity":
            calls.append(call)
    if traced.output != prev:
        raise ValueError("forward must return the last layer's output alone")
    return calls


def quantised_copy(model: Any, x: np.ndarray, weight_bits: int, act_bits: int) -> Any:
    """The model rebuilt in Brevitas with its weights (a new ``nn.Sequential``).

    Layers keep their names ('.' becomes '_'); the input quantiser is named
    ``input_quant``.  Activation scales are powers of two from the ranges on ``x``
    (inputs in the model's own shape).
    """
    import brevitas.nn as qnn
    import torch

    from mlinfn_compress.compress.frameworks.torch.trace import probe
    from mlinfn_compress.compress.frameworks.torch.trainable import dtype_of, trainable_trace

    tr = trainable_trace(model)
    calls = _chain(tr)
    ranges = _ranges(tr.runner, x, dtype_of(model))
    shapes = probe(Path(type(model).__name__), tr, tuple(np.shape(x)[1:]), dtype_of(model))
    for call in calls:
        if call.module is not None and type(call.module).__module__.startswith("brevitas"):
            raise ValueError(f"layer '{call.name}' ({call.cls}) is already quantised by Brevitas")
    if not any(c.kind in ("linear", "conv") for c in calls):
        raise ValueError(f"{type(model).__name__} has no Linear or convolution layer")
    last = max(i for i, c in enumerate(calls) if i < len(calls) - 1 or c.kind not in ("softmax", "sigmoid"))
    x_integer = integer_bits_for(float(np.max(np.abs(x))) if np.size(x) else 0.0, signed=True)
    layers = [(INPUT_QUANT, qnn.QuantIdentity(**_act_kwargs(act_bits, x_integer, True), return_quant_tensor=True))]
    in_frac = act_bits - x_integer
    used = {INPUT_QUANT}
    for i, call in enumerate(calls):
        key = call.name.replace(".", "_")
        key = f"{key}_{i}" if key in used else key
        rqt = i < last
        if call.kind in ("linear", "conv"):
            fold = calls[i + 1] if i + 1 < len(calls) and calls[i + 1].kind == "batch_norm" else None
            layer, w_frac = _cmvm(call.module, fold, weight_bits, in_frac, rqt)
            in_frac += w_frac
        elif call.kind == "batch_norm":
            if i == 0 or calls[i - 1].kind not in ("linear", "conv"):
                raise ValueError(f"layer '{call.name}' ({call.cls}) follows no Linear or convolution to fold into")
            continue
        elif call.kind == "relu":
            integer = integer_bits_for(ranges.get(call.out, 0.0), signed=False)
            layer = qnn.QuantReLU(**_act_kwargs(act_bits, integer, False), return_quant_tensor=rqt)
            in_frac = act_bits - integer
        elif call.kind == "max_pool":
            layer = _max_pool(call)
        elif call.kind == "reshape" and len(shapes[call.out]) == 1:
            layer = torch.nn.Flatten()
        elif call.kind in ("softmax", "sigmoid") and i == len(calls) - 1:  # the final activation
            layer = torch.nn.Softmax(dim=1) if call.kind == "softmax" else torch.nn.Sigmoid()
        else:
            raise ValueError(f"layer '{call.name}' ({call.cls}) cannot be quantisation-aware trained; {QAT_LAYERS}")
        used.add(key)
        layers.append((key, layer))
    return torch.nn.Sequential(OrderedDict(layers)).to(dtype_of(model)).eval()


def _max_pool(call: Any) -> Any:
    import torch

    if call.module is not None:
        return call.module
    kernel = call.params["kernel_size"]
    dims = 1 if call.cls == "max_pool1d" else 2
    cls = torch.nn.MaxPool1d if dims == 1 else torch.nn.MaxPool2d
    return cls(kernel, call.params.get("stride"), call.params.get("padding", 0))


def _cmvm(m: Any, bn: Any, weight_bits: int, in_frac: int, rqt: bool) -> tuple[Any, int]:
    """A QuantLinear / QuantConv1d / QuantConv2d with ``m``'s weights (and ``bn`` folded in); its weight's frac."""
    import brevitas.nn as qnn
    import torch

    q = _quantizers()
    w = m.weight.detach().double()
    b = m.bias.detach().double() if m.bias is not None else None
    if bn is not None:
        scale, shift = _bn_fold(bn.module)
        w = w * scale.reshape(-1, *([1] * (w.dim() - 1)))
        b = shift if b is None else b * scale + shift
    w_frac = weight_bits - 1 - math.ceil(math.log2(max(float(w.abs().max()), 2.0**-60)))
    kw: dict[str, Any] = {}
    if b is not None:  # on the accumulator's grid, wide enough for the bias's range
        top = max(float(b.abs().max()) * BIAS_MARGIN, 1.0)
        bits = max(2, integer_bits_for(top, signed=True) + in_frac + w_frac)
        kw = {"bias_quant": q["bias"], "bias_bit_width": bits}
    common = dict(bias=b is not None, weight_quant=q["weight"], weight_bit_width=weight_bits,
                  return_quant_tensor=rqt, **kw)  # fmt: skip
    if isinstance(m, torch.nn.Linear):
        layer = qnn.QuantLinear(m.in_features, m.out_features, **common)
    else:
        if m.groups != 1 or m.padding_mode != "zeros":
            raise ValueError(f"a convolution with groups={m.groups}, padding_mode={m.padding_mode!r}")
        cls = qnn.QuantConv1d if isinstance(m, torch.nn.Conv1d) else qnn.QuantConv2d
        layer = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                    dilation=m.dilation, **common)  # fmt: skip
    with torch.no_grad():
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
    return layer, w_frac
