"""Brevitas quantisers read exactly: power-of-two scales, integer values and bit widths from Brevitas itself.

QuantLinear and QuantConv1d/2d give their quantised weights and biases (per
tensor, or per channel stored with the finest scale), an input quantiser
before them and an output quantiser after; QuantIdentity, QuantReLU and
QuantHardTanh become a re-quantisation (after a clamp for QuantReLU).  Any
other scale is refused with the quantisers to use instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, on_grid
from mlinfn_compress.compress.frameworks.base import short_error
from mlinfn_compress.compress.frameworks.torch.trace import Call
from mlinfn_compress.compress.ir import Cast, Clip, Linear
from mlinfn_compress.errors import UnsupportedLayer, UserError

if TYPE_CHECKING:
    from mlinfn_compress.compress.frameworks.torch.translate import Translator, Value

FIXED_POINT = (
    "use the fixed-point quantisers (Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, "
    "Uint8ActPerTensorFixedPoint) or a bias quantiser with a power-of-two scale"
)
ROUNDING = {"ROUND": "RND_CONV", "FLOOR": "TRN", "ROUND_TO_ZERO": "TRN_ZERO"}  # Brevitas -> ours


def is_brevitas(m: Any) -> bool:
    return type(m).__module__.startswith("brevitas")


def po2_fracs(scale: Any, zero_point: Any, where: str) -> np.ndarray:
    """Fractional bits of power-of-two scales (scale = 2**-frac); a UserError for any other scale."""
    if zero_point is not None and float(zero_point.detach().abs().max()) != 0.0:
        raise UnsupportedLayer(f"{where}: a non-zero zero point is not supported; {FIXED_POINT}")
    s = np.asarray(scale.detach().double().cpu().numpy(), dtype=np.float64).ravel()
    mant, exp = np.frexp(s)
    if s.size == 0 or not np.all(mant == 0.5):
        bad = float(s[mant != 0.5][0]) if s.size else None
        raise UserError(f"{where}: scale {bad} is not a power of two; {FIXED_POINT}")
    return (1 - exp).astype(np.int64)


def quant_values(qt: Any, where: str) -> tuple[np.ndarray, FixedType, bool]:
    """(values, a type holding them exactly, whether it is the per-tensor type) of a Brevitas QuantTensor."""
    fracs = po2_fracs(qt.scale, qt.zero_point, where)
    values = qt.value.detach().double().cpu().numpy()
    bits, frac = int(qt.bit_width), int(fracs.max())  # per-channel scales: stored with the finest
    if bits != float(qt.bit_width):
        raise UnsupportedLayer(f"{where}: a bit width of {float(qt.bit_width)} is not a whole number")
    t = FixedType(bits, bits - frac, bool(qt.signed), "RND_CONV", "SAT")
    ints = np.ldexp(values, frac)
    if not on_grid(values, frac):
        raise UserError(f"{where}: quantised values are not on the grid of their scale")
    lo, hi = (int(ints.min()), int(ints.max())) if ints.size else (0, 0)
    if fracs.min() == frac and t.min_int <= lo and hi <= t.max_int:
        return values, t, True
    return values, FixedType.for_range(min(lo, -1), max(hi, 1), frac, rounding="RND_CONV", overflow="SAT"), False


def act_type(proxy: Any, where: str) -> FixedType | None:
    """The fixed-point type of a Brevitas activation quantiser (None when it does not quantise)."""
    if proxy is None or not proxy.is_quant_enabled:
        return None
    try:
        scale, bits, zp = proxy.scale(), proxy.bit_width(), proxy.zero_point()
    except Exception as e:  # noqa: BLE001
        raise UnsupportedLayer(f"{where}: cannot read its activation quantiser ({short_error(e)})") from e
    if scale is not None and scale.numel() != 1:
        raise UnsupportedLayer(f"{where}: a per-channel activation scale is not supported")
    if scale is None:
        return None
    frac = int(po2_fracs(scale, zp, where)[0])
    rounding = ROUNDING.get(str(proxy.rounding_mode).upper())
    signed, narrow = bool(proxy.is_signed), bool(proxy.is_narrow_range)
    if rounding is None or (narrow and not signed) or float(bits) != int(bits):
        raise UnsupportedLayer(
            f"{where}: rounding {proxy.rounding_mode}, unsigned narrow range or {float(bits)} bits is not supported"
        )
    return FixedType(int(bits), int(bits) - frac, signed, rounding, "SAT_SYM" if narrow else "SAT")


def _cast(tr: Translator, tensor: str, t: FixedType, base: str, source: str) -> str:
    return tr.add(Cast(name="", inputs=[tensor], result_type=t, source=source), base)


def quant_cmvm(tr: Translator, call: Call, node: Linear, x: Value, matrix: Any) -> int | None:
    """Fill ``node`` from a QuantLinear / QuantConv: input quantiser, weights, bias.

    Returns the fractional bits of its (unquantised) output's Brevitas scale, when known.
    """
    m = call.module
    where = tr.where(call)
    tr.brevitas = True
    in_frac = x.frac
    t_in = act_type(m.input_quant, where + " input_quant")
    if t_in is not None:
        node.inputs = [_cast(tr, x.tensor, t_in, f"{call.name}_input", f"{call.cls}.input_quant")]
        in_frac = t_in.frac
    qw = None
    if m.weight_quant.is_quant_enabled:
        try:
            qw = m.quant_weight()
        except Exception as e:  # noqa: BLE001
            raise UnsupportedLayer(f"{where}: cannot read its weight quantiser ({short_error(e)})") from e
        weight, node.weight_type, per_tensor = quant_values(qw, where + " weight")
        node.weight = matrix(weight)
        if not per_tensor:
            node.notes.append(f"weight: per-channel power-of-two scales stored exactly as {node.weight_type}")
    else:
        tr.exact = False
        node.notes.append("weight has no quantiser: quantised post-training")
    if m.bias is None:
        node.bias_type = node.weight_type or FixedType(1, 1)
    elif m.bias_quant.is_quant_enabled:
        node.bias, node.bias_type = _quant_bias(m, qw, where, in_frac)
    else:
        tr.exact = False
        node.notes.append("float bias quantised to the accumulator's fractional bits")
    if in_frac is None or qw is None or qw.scale.numel() != 1 or node.weight_type is None:
        return None
    return in_frac + node.weight_type.frac


def _quant_bias(m: Any, qw: Any, where: str, in_frac: int | None) -> tuple[np.ndarray, FixedType]:
    import torch
    from brevitas.quant_tensor import IntQuantTensor

    qin = None
    if getattr(m.bias_quant, "requires_input_scale", False):  # e.g. Int16Bias: scale = input x weight scale
        if in_frac is None or qw is None:
            raise UnsupportedLayer(
                f"{where}: its bias quantiser takes its scale from the input, but the input is not quantised "
                "by the model; put a QuantIdentity(..., return_quant_tensor=True) before it or give the bias "
                "a quantiser with its own power-of-two scale"
            )
        one = torch.tensor(1.0)
        qin = IntQuantTensor(torch.zeros(1, 1), one * 2.0**-in_frac, one * 0, one * 8, True, False)
    try:
        qb = m.bias_quant(m.bias, qin, qw)
    except Exception as e:  # noqa: BLE001
        raise UnsupportedLayer(f"{where}: cannot read its bias quantiser ({short_error(e)})") from e
    values, t, _ = quant_values(qb, where + " bias")
    return values.ravel(), t


def output_quant(tr: Translator, call: Call, out: Value) -> Value:
    """A QuantLinear / QuantConv's output quantiser as a re-quantisation after it."""
    m = call.module
    if not is_brevitas(m):
        return out
    t = act_type(m.output_quant, tr.where(call) + " output_quant")
    if t is None:
        return out
    tensor = _cast(tr, out.tensor, t, f"{call.name}_output", f"{call.cls}.output_quant")
    return tr.out_value(out, tensor, frac=t.frac)


def _activation(m: Any) -> Any:
    """The float activation a Brevitas activation layer applies before quantising (None: none)."""
    import torch

    proxy = getattr(m.act_quant, "fused_activation_quant_proxy", None)
    impl = getattr(proxy, "activation_impl", None)
    if impl is None:
        return torch.nn.ReLU() if type(m).__name__ == "QuantReLU" else None
    return None if isinstance(impl, torch.nn.Identity) else impl


def quant_act(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """QuantIdentity / QuantReLU / QuantHardTanh: an optional clamp, then the quantiser's format."""
    import torch

    (v,) = xs
    m = call.module
    where = tr.where(call)
    tr.brevitas = True
    tensor = v.tensor
    t_in = act_type(getattr(m, "input_quant", None), where + " input_quant")
    if t_in is not None:
        tensor = _cast(tr, tensor, t_in, f"{call.name}_input", f"{call.cls}.input_quant")
    t = act_type(m.act_quant, where)
    impl = _activation(m)
    if isinstance(impl, torch.nn.ReLU):
        node: Cast | Clip = Clip(name="", inputs=[tensor], result_type=t, source=call.cls)
    elif isinstance(impl, torch.nn.Hardtanh):
        lo, hi = float(impl.min_val), float(impl.max_val)
        node = Clip(name="", inputs=[tensor], lo=lo, hi=hi, label="hard_tanh", result_type=t, source=call.cls)
    elif impl is not None:
        raise tr.reject(f"applies {type(impl).__name__} before quantising; not supported")
    elif t is None:
        return tr.out_value(v, tensor, frac=t_in.frac if t_in is not None else v.frac)
    else:
        node = Cast(name="", inputs=[tensor], result_type=t, source=call.cls)
    frac = t.frac if t is not None else None
    return tr.out_value(v, tr.add(node), frac=frac)
