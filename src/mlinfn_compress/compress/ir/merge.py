"""Merges: tensors of one shape combined element by element (add, maximum, minimum).

Each input is aligned exactly to the finest input grid, the aligned values
are combined, and the result is re-quantised to the node's type.  A merge
is defined by one binary operation (``pair``) that is non-decreasing in
both arguments, so every consumer derives the exact range of the combined
value from the input types alone (``exact_range``): the quantiser's format
rule, each VHDL form, the HLS writer and the twins' plan serve every merge
with one entry.  A new merge is a class here, a VHDL statement template and
its layer in each twin.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce
from typing import Any, ClassVar

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, requantize
from mlinfn_compress.compress.ir.elementwise import align
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, register


@dataclass(kw_only=True)
class Merge(Node):
    """``y = requantise(x1 . x2 . ...)`` for the merge's operation ``.`` (``pair``)."""

    arity = None
    partial: ClassVar[str]  # what a partial result is called where a target combines two inputs at a time
    operands: ClassVar[str]  # what the inputs are, in messages
    grows: ClassVar[bool] = False  # whether a partial result can outgrow every input (a sum can; a maximum cannot)

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        if any(s != in_shapes[0] for s in in_shapes):
            raise IRError(f"node '{self.name}': {self.operands} must have one shape, got {in_shapes}")
        return in_shapes[0]

    @staticmethod
    def pair(a: Any, b: Any) -> Any:
        """The operation on two integers or arrays (of integers, or floats)."""
        raise NotImplementedError

    def combine(self, xs: list[Any]) -> Any:
        return reduce(self.pair, xs)

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.asarray(self.combine([np.asarray(x, dtype=np.float64) for x in xs]))

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.result_type is not None
        frac = max(t.frac for t in in_types)
        aligned = [align(x, t.frac, frac) for x, t in zip(xs, in_types, strict=True)]
        return requantize(np.asarray(self.combine(aligned)), frac, self.result_type)

    @staticmethod
    def shifts(in_types: list[FixedType], frac: int | None = None) -> list[int]:
        """How far each input moves left to the grid 2**-frac (default: the finest input grid)."""
        to = max(t.frac for t in in_types) if frac is None else frac
        return [to - t.frac for t in in_types]

    def exact_range(self, in_types: list[FixedType], frac: int | None = None) -> tuple[int, int, int]:
        """(lo, hi, frac): every value the combination can take, as integers on the grid 2**-frac (default:
        the finest input grid)."""
        shifts = self.shifts(in_types, frac)
        los = [t.min_int << s for t, s in zip(in_types, shifts, strict=True)]
        his = [t.max_int << s for t, s in zip(in_types, shifts, strict=True)]
        return int(self.combine(los)), int(self.combine(his)), in_types[0].frac + shifts[0]

    def magnitude(self, in_types: list[FixedType]) -> int:
        """A bound on the magnitude of every partial result, on the finest input grid."""
        shifts = self.shifts(in_types)
        bounds = [max(abs(t.min_int), abs(t.max_int)) << s for t, s in zip(in_types, shifts, strict=True)]
        return sum(bounds) if self.grows else max(bounds)


@register
@dataclass(kw_only=True)
class Add(Merge):
    """``y = requantise(x1 + x2 + ...)``."""

    op = "add"
    partial = "sum"
    operands = "added tensors"
    grows = True

    @staticmethod
    def pair(a: Any, b: Any) -> Any:
        return a + b


@register
@dataclass(kw_only=True)
class Maximum(Merge):
    """``y = requantise(max(x1, x2, ...))``."""

    op = "maximum"
    partial = "max"
    operands = "compared tensors"

    @staticmethod
    def pair(a: Any, b: Any) -> Any:
        return np.maximum(a, b)


@register
@dataclass(kw_only=True)
class Minimum(Merge):
    """``y = requantise(min(x1, x2, ...))``."""

    op = "minimum"
    partial = "min"
    operands = "compared tensors"

    @staticmethod
    def pair(a: Any, b: Any) -> Any:
        return np.minimum(a, b)
