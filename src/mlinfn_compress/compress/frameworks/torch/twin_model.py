"""A fixed-point network in Brevitas, written by mlinfn-compress: constant power-of-two scales.

Build it with its saved keyword arguments, then load the state_dict; in float64
its inference is exact.  ``layers`` lists the steps in order, each
{"op", "name", "inputs", ...}: "inputs" names the tensors it takes ("input",
the network's input, or earlier steps; by default the step before).  A
Brevitas quantiser is {"bits", "frac", "signed", "narrow", "rounding"}:
integers of that bit width times 2**-frac.  A fixed-point type is {"width",
"integer", "signed", "rounding", "overflow"}: value = integer x 2**-(width -
integer), with the rounding and overflow modes of hls4ml (TRN, RND_CONV, ...,
WRAP, SAT, SAT_SYM, SAT_ZERO).

Tensors are channels-last throughout: (N, features), (N, length, channels)
or (N, height, width, channels), as Keras stores them.  Convolutions and max
pooling move the channels first for torch's layers and back.  Inputs may be
flat rows (N, input_size) or (N, *input_shape); ``logits`` returns the
outputs before a final softmax, ``forward`` after it, as flat rows
(N, output_size) when the output has several axes.
"""

import itertools
import math
from typing import Any

import brevitas.nn as qnn
import torch
import torch.nn.functional as F  # noqa: N812
from brevitas.inject.enum import FloatToIntImplType, ScalingImplType
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
from brevitas.quant.fixed_point import Int8BiasPerTensorFixedPointInternalScaling
from torch import Tensor, nn

try:  # the rule of every fixed-point format: mlinfn-compress's own, or the copy saved beside this file
    from mlinfn_compress.compress.fixed.rounding import quantise, torch_namespace
except ImportError:
    from mlinfn_rounding import quantise, torch_namespace  # type: ignore[no-redef]  # the copy beside a saved twin

TORCH = torch_namespace()

CHANNELS_FIRST = ("conv", "max_pool")  # steps whose torch layer takes the channels first


class ConstWeight(Int8WeightPerTensorFixedPoint):
    scaling_impl_type = ScalingImplType.CONST
    scaling_min_val = None
    narrow_range = False


class ConstBias(Int8BiasPerTensorFixedPointInternalScaling):
    scaling_impl_type = ScalingImplType.CONST
    scaling_min_val = None


class ConstAct(Int8ActPerTensorFixedPoint):
    scaling_impl_type = ScalingImplType.CONST
    scaling_min_val = None


def threshold(
    q: dict[str, Any],
) -> float:  # divided by 2**(bits - signed) (PowerOfTwoIntScaling) it is the scale 2**-frac
    return math.ldexp(1.0, q["bits"] - int(q["signed"]) - q["frac"])


def param_quant(prefix: str, q: dict[str, Any]) -> dict[str, Any]:
    kw = dict(bit_width=q["bits"], scaling_const=threshold(q), signed=q["signed"], narrow_range=q["narrow"])
    return {f"{prefix}_{k}": v for k, v in kw.items()}


def act_quant(q: dict[str, Any]) -> dict[str, Any]:
    top, rounding = threshold(q), getattr(FloatToIntImplType, q["rounding"])
    return dict(act_quant=ConstAct, bit_width=q["bits"], max_val=top, min_val=-top if q["signed"] else 0.0,
                signed=q["signed"], narrow_range=q["narrow"], float_to_int_impl_type=rounding)  # fmt: skip


def fixed_quant(x: Tensor, t: dict[str, Any]) -> Tensor:
    """``x`` (any float) converted to the fixed-point type ``t``; every step is exact in float64."""
    return quantise(TORCH, x, t["width"], t["integer"], t["signed"], t["rounding"], t["overflow"])


def flat_pads(pads: list[list[int]], channels_last: bool) -> list[int]:
    """F.pad's list (last axis first) for padding (before, after) of each spatial axis."""
    flat = [v for a, b in reversed(pads) for v in (a, b)]
    return [0, 0, *flat] if channels_last else flat


class FixedQuant(nn.Module):
    """Re-quantisation to a fixed-point type, every rounding and overflow mode."""

    def __init__(self, fixed: dict[str, Any]) -> None:
        super().__init__()
        self.fixed = dict(fixed)

    def forward(self, x: Tensor) -> Tensor:
        return fixed_quant(x, self.fixed)


class TableLookup(nn.Module):
    """``table[q - min]`` where ``q`` is the input quantised to the ``index`` type."""

    def __init__(self, index: dict[str, Any], size: int) -> None:
        super().__init__()
        self.index = dict(index)
        self.register_buffer("table", torch.zeros(size, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        t = self.index
        lowest = -(2 ** (t["width"] - 1)) if t["signed"] else 0
        position = fixed_quant(x, t) * 2.0 ** (t["width"] - t["integer"]) - lowest  # an exact integer
        return self.table[position.long()]


class TruncAvgPool(nn.Module):
    """The window's sum (zero padding) on the accumulator's grid, its overflow when ``overflow``, divided by
    ``divisors`` (one per output position) truncated toward zero."""

    def __init__(
        self,
        kernel: list[int],
        stride: list[int],
        pads: list[list[int]],
        divisors: list[Any],
        accum: dict[str, Any],
        overflow: bool,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.pads = list(kernel), list(stride), [list(p) for p in pads]
        self.accum, self.overflow = dict(accum), bool(overflow)
        self.register_buffer("divisors", torch.tensor(divisors, dtype=torch.float64), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        xp = F.pad(x, flat_pads(self.pads, True))
        total = None
        out = self.divisors.shape  # output positions
        for offsets in itertools.product(*(range(k) for k in self.kernel)):
            index = [slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offsets, out, self.stride, strict=True)]
            part = xp[(slice(None), *index, slice(None))]
            total = part if total is None else total + part
        if self.overflow:
            total = fixed_quant(total, self.accum)
        scale = 2.0 ** (self.accum["width"] - self.accum["integer"])
        return torch.trunc(total * scale / self.divisors[None, ..., None]) / scale


MERGES = {"add": torch.add, "maximum": torch.maximum, "minimum": torch.minimum}


class Merge(nn.Module):
    """Tensors of one shape combined element by element, two at a time (``op``: a key of ``MERGES``)."""

    def __init__(self, op: str) -> None:
        super().__init__()
        self.op = op

    def forward(self, *xs: Tensor) -> Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = MERGES[self.op](out, x)
        return out


class Concat(nn.Module):
    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, dim=self.axis + 1 if self.axis >= 0 else self.axis)


class Reshape(nn.Module):
    def __init__(self, target: list[int]) -> None:
        super().__init__()
        self.target = list(target)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.target)


class Transpose(nn.Module):
    """A permutation of the axes after the batch axis: output axis i is input axis ``axes[i]``."""

    def __init__(self, axes: list[int]) -> None:
        super().__init__()
        self.axes = list(axes)

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, *(a + 1 for a in self.axes))


class ZeroPad(nn.Module):
    def __init__(self, pads: list[list[int]]) -> None:
        super().__init__()
        self.pads = [list(p) for p in pads]

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x, flat_pads(self.pads, True))


class Crop(nn.Module):
    def __init__(self, crops: list[list[int]]) -> None:
        super().__init__()
        self.crops = [list(c) for c in crops]

    def forward(self, x: Tensor) -> Tensor:
        index = [slice(a, x.shape[i + 1] - b) for i, (a, b) in enumerate(self.crops)]
        return x[(slice(None), *index)]


class Upsample(nn.Module):
    """Nearest-neighbour: every element repeated ``factors[i]`` times along spatial axis i."""

    def __init__(self, factors: list[int]) -> None:
        super().__init__()
        self.factors = list(factors)

    def forward(self, x: Tensor) -> Tensor:
        for axis, f in enumerate(self.factors, start=1):
            x = torch.repeat_interleave(x, f, dim=axis)
        return x


def _layer(spec: dict[str, Any]) -> nn.Module:
    op = spec["op"]
    if op in ("linear", "conv"):
        weight, bias = spec["weight"], spec.get("bias")
        kw = param_quant("weight", weight) | (param_quant("bias", bias) if bias else {})
        kw |= dict(bias=bias is not None, weight_quant=ConstWeight, bias_quant=ConstBias if bias else None)
        if op == "linear":
            return qnn.QuantLinear(spec["in"], spec["out"], **kw)
        conv = {1: qnn.QuantConv1d, 2: qnn.QuantConv2d}[len(spec["kernel"])]
        return conv(spec["in"], spec["out"], spec["kernel"], stride=spec["stride"], padding=0, **kw)
    if op in ("quant", "quant_relu"):
        return (qnn.QuantIdentity if op == "quant" else qnn.QuantReLU)(**act_quant(spec["quant"]))
    if op == "max_pool":
        return {1: nn.MaxPool1d, 2: nn.MaxPool2d}[len(spec["kernel"])](spec["kernel"], spec["stride"])
    if op == "avg_pool":
        keys = ("kernel", "stride", "pads", "divisors", "accum", "overflow")
        return TruncAvgPool(*(spec[k] for k in keys))
    if op == "clamp":
        lo, hi = spec["lo"], spec["hi"]
        return nn.Hardtanh(-math.inf if lo is None else lo, math.inf if hi is None else hi)
    simple = {
        "relu": lambda: nn.ReLU(),
        "softmax": lambda: nn.Softmax(dim=1),
        "flatten": lambda: nn.Flatten(),
        "fixed": lambda: FixedQuant(spec["fixed"]),
        "leaky_relu": lambda: nn.LeakyReLU(spec["alpha"]),
        "table": lambda: TableLookup(spec["index"], spec["size"]),
        "concat": lambda: Concat(spec["axis"]),
        "reshape": lambda: Reshape(spec["target"]),
        "transpose": lambda: Transpose(spec["axes"]),
        "pad": lambda: ZeroPad(spec["pads"]),
        "crop": lambda: Crop(spec["crops"]),
        "upsample": lambda: Upsample(spec["factors"]),
    }
    if op in MERGES:
        return Merge(op)
    if op not in simple:
        raise ValueError(f"unknown layer op {op!r}")
    return simple[op]()


class Twin(nn.Module):
    """The steps of ``layers`` in order; ``output`` names the logits (default: the last step before a softmax)."""

    def __init__(
        self,
        layers: list[dict[str, Any]],
        dtype: str = "float64",
        input_shape: list[int] | None = None,
        output: str | None = None,
    ) -> None:
        super().__init__()
        self.steps = [dict(spec) for spec in layers]
        self.input_shape = None if input_shape is None else list(input_shape)
        self.output = output
        for spec in self.steps:
            self.add_module(spec["name"], _layer(spec))
        self.to(getattr(torch, dtype))
        self.eval()

    def logits(self, x: Tensor) -> Tensor:
        if self.input_shape is not None and len(self.input_shape) > 1:
            x = x.reshape(-1, *self.input_shape)
        values, last = {"input": x}, "input"
        for spec in self.steps:
            if spec["op"] == "softmax":
                continue
            xs = [values[name] for name in spec.get("inputs", [last])]
            layer = getattr(self, spec["name"])
            if spec["op"] in CHANNELS_FIRST:
                xc = F.pad(xs[0].movedim(-1, 1), flat_pads(spec["pads"], False), value=spec.get("pad_value", 0.0))
                y = layer(xc).movedim(1, -1)
            else:
                y = layer(*xs)
            values[spec["name"]] = y
            last = spec["name"]
        return values[self.output or last]

    def forward(self, x: Tensor) -> Tensor:
        y = self.logits(x)
        for spec in self.steps:
            if spec["op"] == "softmax":
                y = getattr(self, spec["name"])(y)
        return y
