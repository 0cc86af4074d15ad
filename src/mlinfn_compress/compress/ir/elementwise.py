"""Element-wise operations of one input: clip (the relu family), leaky relu, casts and lookup tables."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, min_frac_bits, requantize
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, register


def align(x: np.ndarray, frac_from: int, frac_to: int) -> np.ndarray:
    """Integers with ``frac_from`` fractional bits re-expressed exactly with ``frac_to`` >= frac_from."""
    shift = frac_to - frac_from
    if shift < 0:
        raise IRError(f"cannot align {frac_from} fractional bits to fewer ({frac_to}) exactly")
    if shift == 0:
        return np.asarray(x)
    x = np.asarray(x)
    if x.dtype != object and (int(np.max(np.abs(x), initial=0)).bit_length() + shift) > 62:
        x = x.astype(object)
    return x * (1 << shift)


def const_int(value: float, frac: int) -> int:
    """A dyadic constant as an integer with ``frac`` fractional bits (exact)."""
    scaled = math.ldexp(value, frac)
    if scaled != math.floor(scaled):
        raise IRError(f"constant {value} is not a multiple of 2^-{frac}")
    return int(scaled)


class _Unary(Node):
    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        return in_shapes[0]


@register
@dataclass(kw_only=True)
class Clip(_Unary):
    """``y = requantise(min(max(x, lo), hi))``: relu (lo 0), relu6 (lo 0, hi 6), hard tanh (-1, 1).

    ``lo`` and ``hi`` are dyadic constants (exact in binary), None for no bound.
    """

    op = "clip"
    lo: float | None = 0.0
    hi: float | None = None
    label: str = "relu"

    @property
    def kind(self) -> str:
        return self.label

    def _frac(self, x_t: FixedType) -> int:
        fracs = [x_t.frac] + [min_frac_bits(np.array([v])) for v in (self.lo, self.hi) if v is not None]
        return max(fracs)

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        x = np.asarray(xs[0], dtype=np.float64)
        lo = -np.inf if self.lo is None else self.lo
        hi = np.inf if self.hi is None else self.hi
        return np.clip(x, lo, hi)

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.result_type is not None
        (x_t,) = in_types
        frac = self._frac(x_t)
        v = align(xs[0], x_t.frac, frac)
        if self.lo is not None:
            v = np.maximum(v, const_int(self.lo, frac))
        if self.hi is not None:
            v = np.minimum(v, const_int(self.hi, frac))
        return requantize(v, frac, self.result_type)

    def bounds_int(self, x_t: FixedType) -> tuple[int, int, int]:
        """(lowest, highest, frac) of the clipped value before re-quantisation."""
        frac = self._frac(x_t)
        lo, hi = x_t.min_int << (frac - x_t.frac), x_t.max_int << (frac - x_t.frac)
        if self.lo is not None:
            lo, hi = max(lo, const_int(self.lo, frac)), max(hi, const_int(self.lo, frac))
        if self.hi is not None:
            lo, hi = min(lo, const_int(self.hi, frac)), min(hi, const_int(self.hi, frac))
        return lo, hi, frac


@register
@dataclass(kw_only=True)
class LeakyRelu(_Unary):
    """``y = requantise(x if x >= 0 else alpha * x)`` with ``alpha`` quantised to ``alpha_type``."""

    op = "leaky_relu"
    alpha: float = 0.3
    alpha_type: FixedType | None = None
    alpha_int: int | None = None

    @property
    def quantised(self) -> bool:
        return self.result_type is not None and self.alpha_type is not None and self.alpha_int is not None

    def types(self) -> dict[str, FixedType]:
        return ({"alpha": self.alpha_type} if self.alpha_type else {}) | super().types()

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        x = np.asarray(xs[0], dtype=np.float64)
        return np.where(x >= 0, x, self.alpha * x)

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.quantised and self.alpha_type is not None and self.result_type is not None
        (x_t,) = in_types
        x = np.asarray(xs[0])
        fa = self.alpha_type.frac
        if fa < 0:
            raise IRError(f"node '{self.name}': alpha type {self.alpha_type} needs fractional bits >= 0")
        pos = align(x, x_t.frac, x_t.frac + fa)
        assert self.alpha_int is not None
        neg = x * int(self.alpha_int)
        return requantize(np.where(x >= 0, pos, neg), x_t.frac + fa, self.result_type)


@register
@dataclass(kw_only=True)
class Cast(_Unary):
    """``y = requantise(x)`` to ``result_type`` (rounding and overflow of that type)."""

    op = "cast"

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(xs[0], dtype=np.float64)

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.result_type is not None
        return requantize(np.asarray(xs[0]), in_types[0].frac, self.result_type)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


TABLE_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sigmoid": _sigmoid, "tanh": np.tanh}


@register
@dataclass(kw_only=True)
class Table(_Unary):
    """A lookup table: ``q = requantise(x -> index_type)``, ``y = table_int[q - index_type.min_int]``.

    The table has one entry per value of ``index_type`` (2**width entries);
    entries are integers of ``result_type``, computed from ``function``.
    """

    op = "table"
    function: str = "sigmoid"
    index_type: FixedType | None = None
    table_int: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.function

    @property
    def quantised(self) -> bool:
        return self.result_type is not None and self.index_type is not None and self.table_int is not None

    def types(self) -> dict[str, FixedType]:
        return ({"index": self.index_type} if self.index_type else {}) | super().types()

    def float_function(self) -> Callable[[np.ndarray], np.ndarray]:
        try:
            return TABLE_FUNCTIONS[self.function]
        except KeyError:
            raise IRError(f"node '{self.name}': unknown table function {self.function!r}") from None

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        return self.float_function()(np.asarray(xs[0], dtype=np.float64))

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.quantised and self.index_type is not None and self.table_int is not None
        q = requantize(np.asarray(xs[0]), in_types[0].frac, self.index_type)
        return np.asarray(self.table_int)[np.asarray(q, dtype=np.int64) - self.index_type.min_int]

    def index_values(self) -> np.ndarray:
        """The real input value that each table entry stands for."""
        t = self.index_type
        assert t is not None
        return np.ldexp(np.arange(t.min_int, t.max_int + 1, dtype=np.float64), -t.frac)
