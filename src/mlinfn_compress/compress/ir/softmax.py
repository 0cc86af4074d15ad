"""The lookup-table softmax over the last axis, exactly as hls4ml's ``softmax_stable`` computes it.

Integer semantics (the golden model), one slice of n values ``x`` at a time:

    d_i   = requantise(max(x) - x_i -> inp_norm_type)
    e_i   = requantise(EXP[top N bits of d_i] -> accum_type)         N = log2(exp_table_size)
    s     = the balanced tree of two-input sums of the e_i, each sum requantised to accum_type
            (hls4ml's ``reduce``: the left part has the largest power of two below n values)
    s'    = requantise(s -> inv_inp_type)
    y_i   = requantise(e_i * INV[top M bits of s'] -> result_type)   M = log2(inv_table_size)

"Top N bits" reads the raw two's-complement pattern of the value in its type,
as hls4ml's ``softmax_idx_from_real_val`` slices ``x(x.width - 1, x.width - N)``.
The tables are what hls4ml's C++ fills them with at start-up:
``EXP[i] = exp_table_type(std::exp(-(float)v_i))`` and
``INV[j] = inv_table_type(1 / (float)w_j)`` where ``v_i`` (``w_j``) is the
value of ``inp_norm_type`` (``inv_inp_type``) whose top bits are ``i`` (``j``)
and all others zero: ``expf`` from the C library this process uses (called
through ctypes), the division in float32, and the conversion to the table type
with its rounding and overflow (an infinite value counts as 2**1024, as
ap_fixed's double constructor reads it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, requantize
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, register

TYPE_ROLES = ("inp_norm", "exp_table", "accum", "inv_inp", "inv_table")


@cache
def _expf() -> Any:
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    fn = libm.expf
    fn.argtypes = [ctypes.c_float]
    fn.restype = ctypes.c_float
    return fn


def from_float(value: float, t: FixedType) -> int:
    """ap_fixed's conversion of a float or double to ``t`` (its rounding and overflow), as an integer."""
    if math.isnan(value):
        raise IRError("a softmax table entry is NaN")
    if math.isinf(value):
        num, shift = (1 << 1024) * (1 if value > 0 else -1), 0
    else:
        num, den = float(value).as_integer_ratio()
        shift = den.bit_length() - 1  # den is a power of two
    return int(requantize(np.array([num], dtype=object), shift, t)[0])


def index_values(t: FixedType, bits: int) -> np.ndarray:
    """The value of ``t`` whose top ``bits`` raw bits are i and the rest zero, for every i (float64, exact)."""
    if not 1 <= bits <= min(t.width, 24):
        raise IRError(f"a table of 2**{bits} entries cannot be indexed by the top bits of {t}")
    raw = np.arange(1 << bits, dtype=np.int64) << (t.width - bits)
    if t.signed:
        raw = np.where(raw >= 1 << (t.width - 1), raw - (1 << t.width), raw)
    return np.ldexp(raw.astype(np.float64), -t.frac)


def exp_table(inp_norm: FixedType, size: int, t: FixedType) -> np.ndarray:
    """hls4ml's ``init_exp_table(..., negative=true)``: exp(-v) in float32, converted to ``t``."""
    expf = _expf()
    xs = index_values(inp_norm, _log2(size))
    return np.array([from_float(float(expf(-float(np.float32(v)))), t) for v in xs], dtype=object)


def inv_table(inv_inp: FixedType, size: int, t: FixedType) -> np.ndarray:
    """hls4ml's ``init_invert_table``: 1 / w in float32, converted to ``t``."""
    xs = index_values(inv_inp, _log2(size)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.float32(1) / xs
    return np.array([from_float(float(v), t) for v in inv], dtype=object)


def _log2(size: int) -> int:
    if size < 2 or size & (size - 1):
        raise IRError(f"softmax table sizes must be powers of two >= 2, got {size}")
    return size.bit_length() - 1


def top_bits(values: np.ndarray, t: FixedType, bits: int) -> np.ndarray:
    """The top ``bits`` of each value's raw ``t.width``-bit pattern (two's complement), as table indices."""
    raw = np.asarray(values).astype(object) % (1 << t.width)
    return np.asarray(raw // (1 << (t.width - bits))).astype(np.int64)


def reduce_tree(values: list[np.ndarray], add: Any) -> np.ndarray:
    """hls4ml's ``reduce``: the first largest-power-of-two-below-n values, then the rest, recursively."""
    n = len(values)
    if n == 1:
        return values[0]
    if n == 2:
        return add(values[0], values[1])
    left = 1 << ((n - 1).bit_length() - 1)
    return add(reduce_tree(values[:left], add), reduce_tree(values[left:], add))


@register
@dataclass(kw_only=True)
class Softmax(Node):
    """Softmax over the last axis by two lookup tables (exp and inverse), hls4ml's ``softmax_stable``."""

    op = "softmax"
    exp_table_size: int = 1024
    inv_table_size: int = 1024
    inp_norm_type: FixedType | None = None
    exp_table_type: FixedType | None = None
    accum_type: FixedType | None = None
    inv_inp_type: FixedType | None = None
    inv_table_type: FixedType | None = None
    exp_table_int: np.ndarray | None = None
    inv_table_int: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return "softmax"

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if not shape or shape[-1] < 1:
            raise IRError(f"node '{self.name}': softmax needs a last axis, got shape {shape}")
        return shape

    @property
    def quantised(self) -> bool:
        return (
            self.result_type is not None
            and all(getattr(self, f"{r}_type") is not None for r in TYPE_ROLES)
            and self.exp_table_int is not None
            and self.inv_table_int is not None
        )

    def types(self) -> dict[str, FixedType]:
        out = {r: getattr(self, f"{r}_type") for r in TYPE_ROLES if getattr(self, f"{r}_type") is not None}
        return out | super().types()

    def compute_tables(self) -> None:
        """Fill both tables from the types and sizes, as hls4ml's C++ does at start-up."""
        assert self.inp_norm_type and self.exp_table_type and self.inv_inp_type and self.inv_table_type
        self.exp_table_int = exp_table(self.inp_norm_type, self.exp_table_size, self.exp_table_type)
        self.inv_table_int = inv_table(self.inv_inp_type, self.inv_table_size, self.inv_table_type)

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        x = np.asarray(xs[0], dtype=np.float64)
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.quantised and self.result_type is not None
        assert self.inp_norm_type and self.exp_table_type and self.accum_type and self.inv_inp_type
        assert self.inv_table_type and self.exp_table_int is not None and self.inv_table_int is not None
        (x_t,) = in_types
        x = np.asarray(xs[0]).astype(object)
        acc = self.accum_type
        d = requantize(x.max(axis=-1, keepdims=True) - x, x_t.frac, self.inp_norm_type)
        e = np.asarray(self.exp_table_int)[top_bits(d, self.inp_norm_type, _log2(self.exp_table_size))]
        e = requantize(e, self.exp_table_type.frac, acc)

        def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return requantize(a + b, acc.frac, acc)

        total = reduce_tree([e[..., i] for i in range(e.shape[-1])], add)
        s = requantize(total, acc.frac, self.inv_inp_type)
        inv = np.asarray(self.inv_table_int)[top_bits(s, self.inv_inp_type, _log2(self.inv_table_size))]
        y = requantize(e * inv[..., None], acc.frac + self.inv_table_type.frac, self.result_type)
        return _narrow(y, self.result_type)

    def check(self) -> None:
        """IRError unless the table sizes fit the types that index them (hls4ml slices the top bits)."""
        assert self.inp_norm_type is not None and self.inv_inp_type is not None
        for size, t, what in (
            (self.exp_table_size, self.inp_norm_type, "exp"),
            (self.inv_table_size, self.inv_inp_type, "inverse"),
        ):
            bits = _log2(size)
            if bits > min(t.width, 24):
                raise IRError(f"node '{self.name}': the {what} table's {size} entries need {bits} index bits, "
                              f"but its index type {t} has {t.width}")  # fmt: skip

    def after_load(self) -> None:
        self.exp_table_size, self.inv_table_size = int(self.exp_table_size), int(self.inv_table_size)


def _narrow(y: np.ndarray, t: FixedType) -> np.ndarray:
    """Integers of ``t`` as int64 when they fit (they are Python ints after exact arithmetic)."""
    return np.asarray(y).astype(np.int64) if t.width <= 62 else np.asarray(y)
