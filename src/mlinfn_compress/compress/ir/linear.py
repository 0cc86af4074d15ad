"""The one arithmetic block: a constant matrix-vector multiplication (CMVM).

A dense layer is one CMVM on the last axis; a convolution is the same CMVM
applied to every window (kernel taps x input channels, in that order); a
batch norm either folds into the CMVM before it or becomes a CMVM of its
own with a diagonal matrix.  Integer semantics (the golden model):

    acc = x_window @ (weight_int << sw) + (bias_int << sb)      exact
    acc = overflow(acc, accum_type)                              (sized never to overflow)
    y   = requantise(acc, accum_type.frac -> result_type)

where sw and sb align the products and the bias to the accumulator's
fractional bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, apply_overflow, needs_wide, requantize
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, register
from mlinfn_compress.compress.ir.window import Window, patches, spatial_split

FLOAT_EXACT_BITS = 52  # integer sums below 2**52 in magnitude are exact in float64


@register
@dataclass(kw_only=True)
class Linear(Node):
    op = "linear"

    weight: np.ndarray | None = None  # float, (K, N): K = taps * in_channels for a window
    bias: np.ndarray | None = None  # float, (N,)
    window: Window | None = None  # None: the matrix applies to the last axis
    label: str = "dense"  # dense, conv1d, conv2d, batchnorm: what the layer was
    weight_type: FixedType | None = None
    bias_type: FixedType | None = None
    accum_type: FixedType | None = None
    weight_int: np.ndarray | None = None
    bias_int: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.label

    @property
    def n_in(self) -> int:
        m = self.weight_int if self.weight_int is not None else self.weight
        assert m is not None
        return int(m.shape[0])

    @property
    def n_out(self) -> int:
        m = self.weight_int if self.weight_int is not None else self.weight
        assert m is not None
        return int(m.shape[1])

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if self.window is None:
            if not shape or shape[-1] != self.n_in:
                raise IRError(f"node '{self.name}': a {self.n_in}-input matrix cannot take a tensor of shape {shape}")
            return (*shape[:-1], self.n_out)
        spatial, channels = spatial_split(shape, self.window, f"node '{self.name}'")
        if self.window.taps * channels != self.n_in:
            raise IRError(
                f"node '{self.name}': a {self.window.kernel} window of {channels} channels has "
                f"{self.window.taps * channels} inputs, but the matrix takes {self.n_in}"
            )
        return (*self.window.out_spatial(spatial), self.n_out)

    def rows(self, x: np.ndarray, pad_value: Any = 0) -> np.ndarray:
        """The matrix's input vectors: (..., K), one per output position."""
        if self.window is None:
            return x
        p = patches(x, self.window, pad_value)
        return p.reshape(*p.shape[:-2], p.shape[-2] * p.shape[-1])

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        assert self.weight is not None and self.bias is not None
        return self.rows(np.asarray(xs[0], dtype=np.float64)) @ self.weight + self.bias

    # ---- the integer view ----

    @property
    def quantised(self) -> bool:
        return (
            self.result_type is not None
            and self.weight_int is not None
            and self.bias_int is not None
            and self.weight_type is not None
            and self.bias_type is not None
            and self.accum_type is not None
        )

    def types(self) -> dict[str, FixedType]:
        out = {}
        for role, t in (("weight", self.weight_type), ("bias", self.bias_type), ("accum", self.accum_type)):
            if t is not None:
                out[role] = t
        return out | super().types()

    def shifts(self, x_t: FixedType, accum_frac: int | None = None) -> tuple[int, int]:
        """(sw, sb): left shifts that put products and bias on the accumulator's grid."""
        assert self.weight_type is not None and self.bias_type is not None
        if accum_frac is None:
            assert self.accum_type is not None
            accum_frac = self.accum_type.frac
        frac = accum_frac
        sw = frac - (x_t.frac + self.weight_type.frac)
        sb = frac - self.bias_type.frac
        if sw < 0 or sb < 0:
            raise IRError(f"node '{self.name}': the accumulator has fewer fractional bits than its terms")
        return sw, sb

    def constants(self, x_t: FixedType, accum_frac: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weights and bias on the accumulator's grid, as exact Python ints (object arrays)."""
        assert self.weight_int is not None and self.bias_int is not None
        sw, sb = self.shifts(x_t, accum_frac)
        w = np.asarray(self.weight_int).astype(object) * (1 << sw)
        b = np.asarray(self.bias_int).astype(object) * (1 << sb)
        return w, b

    def bounds(self, x_t: FixedType, accum_frac: int | None = None) -> tuple[int, int, int]:
        """Lowest and highest accumulator value over all inputs and outputs, and the largest
        partial-sum magnitude (Python ints).  Zero padding lies inside every input range."""
        lo, hi, mag = self.column_bounds(x_t, accum_frac)
        if not len(lo):
            return 0, 0, 0
        return int(min(lo)), int(max(hi)), int(max(mag))

    def column_bounds(self, x_t: FixedType, accum_frac: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per output: lowest and highest accumulator value, and the largest partial-sum magnitude."""
        w, b = self.constants(x_t, accum_frac)
        a, c = w * x_t.min_int, w * x_t.max_int
        lo = np.minimum(a, c).sum(axis=0) + b
        hi = np.maximum(a, c).sum(axis=0) + b
        mag = np.maximum(abs(a), abs(c)).sum(axis=0) + abs(b)
        return lo, hi, mag

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.quantised and self.accum_type is not None and self.result_type is not None
        (x_t,) = in_types
        w, b = self.constants(x_t)
        _, _, mag = self.bounds(x_t)
        rows = self.rows(np.asarray(xs[0]))
        if mag < 2**FLOAT_EXACT_BITS:
            # every partial sum is an integer below 2**52: float64 is exact, and fast
            acc = np.rint(rows.astype(np.float64) @ w.astype(np.float64)).astype(np.int64) + b.astype(np.int64)
        elif not needs_wide(mag.bit_length() + 1):
            acc = rows.astype(np.int64) @ w.astype(np.int64) + b.astype(np.int64)
        else:
            acc = rows.astype(object) @ w + b
        acc = apply_overflow(acc, self.accum_type)
        return requantize(acc, self.accum_type.frac, self.result_type)

    def sparsity(self) -> float:
        if self.weight_int is None:
            return 0.0
        return float(np.mean(np.asarray(self.weight_int) == 0))

    def multipliers(self) -> int:
        if self.weight_int is None:
            return 0
        return int(np.count_nonzero(np.asarray(self.weight_int)))

    def to_json(self) -> dict[str, Any]:
        d = super().to_json()
        d.pop("weight")  # the float view is not part of the quantised design
        d.pop("bias")
        d["window"] = self.window.to_json() if self.window is not None else None
        return d

    def after_load(self) -> None:
        if isinstance(self.window, dict):
            self.window = Window.from_json(self.window)
