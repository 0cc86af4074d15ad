"""QKeras parameters: the values QKeras itself computes with, and fixed-point types that hold them exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, min_frac_bits, on_grid
from mlinfn_compress.compress.ir import Linear, Node


def exact_type(values: np.ndarray, declared: FixedType | None = None) -> tuple[FixedType, bool]:
    """A storage type for already-quantised values; (type, whether it is the declared one)."""
    if declared is not None and on_grid(values, declared.frac):
        ints = np.ldexp(values.astype(np.float64), declared.frac)
        if ints.size == 0 or (ints.min() >= declared.min_int and ints.max() <= declared.max_int):
            return declared, True
    frac = min_frac_bits(values)
    ints = np.ldexp(values.astype(np.float64), frac)
    lo, hi = (int(ints.min()), int(ints.max())) if ints.size else (0, 0)
    return FixedType.for_range(min(lo, -1), max(hi, 1), frac), False


def declared_type(q: Any) -> FixedType | None:
    """The format a ``quantized_bits`` parameter quantiser declares (None for other quantisers)."""
    if type(q).__name__ != "quantized_bits" or q.alpha not in (None, 1, 1.0):
        return None
    signed = bool(q.keep_negative)
    return FixedType(int(q.bits), int(q.integer) + signed, signed, "RND_CONV", "SAT")


def quantised_values(node: Node, what: str, quantiser: Any, variable: Any) -> tuple[np.ndarray, FixedType]:
    """The values QKeras computes with (``quantiser(variable)``) and a type that holds them exactly."""
    values = np.asarray(quantiser(variable).numpy(), dtype=np.float64)
    t, declared = exact_type(values, declared_type(quantiser))
    if not declared:
        node.notes.append(f"{what} quantiser {quantiser} stored exactly as {t}")
    return values, t


def read_quantised_weights(layer: Any, node: Linear) -> bool:
    """Give ``node`` (the CMVM of a QDense / QConv layer) QKeras's quantised kernel and bias.

    The kernel keeps its layout (kernel taps..., in channels, out channels) flattened
    to (K, N).  Returns False when QKeras's inference uses a float bias that the
    hardware must round, so it cannot be compared bit for bit.
    """
    exact = True
    n_out = node.n_out
    if layer.kernel_quantizer_internal is None:
        node.notes.append("kernel has no quantiser: quantised post-training")
    else:
        values, node.weight_type = quantised_values(node, "kernel", layer.kernel_quantizer_internal, layer.kernel)
        node.weight = values.reshape(-1, n_out)
    if not layer.use_bias:
        node.bias_type = node.weight_type or FixedType(1, 1)
    elif layer.bias_quantizer_internal is None:
        exact = False
        node.notes.append(
            "bias has no quantiser: rounded to the accumulator's fractional bits; "
            "QKeras's own inference uses the float bias"
        )
    else:
        node.bias, node.bias_type = quantised_values(node, "bias", layer.bias_quantizer_internal, layer.bias)
    return exact


def exact_constant(values: np.ndarray) -> FixedType:
    """The smallest signed type holding dyadic constants exactly (a scale of 0.5, an offset of 0.5, ...)."""
    return exact_type(np.asarray(values, dtype=np.float64))[0]
