"""Pooling: the largest value, or the average, of every window of each channel.

Integer semantics (the golden model), as hls4ml's pooling computes them:

* max: the largest value of the window's cells inside the input (padding
  never wins), re-quantised to ``result_type`` (exact when it is the input's);
* average: the sum of the window's cells inside the input, exact on the grid
  of ``accum_type``; divided by the number of those cells (``count_pad``:
  by the whole window) with the quotient truncated toward zero on that same
  grid; then re-quantised to ``result_type``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, apply_overflow, requantize
from mlinfn_compress.compress.ir.elementwise import align
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, register
from mlinfn_compress.compress.ir.window import Window, patches, spatial_split


def trunc_div(a: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Integer division truncated toward zero (C's ``/``), elementwise."""
    q = np.abs(a) // d
    return np.where(np.asarray(a) < 0, -q, q)


@register
@dataclass(kw_only=True)
class Pool(Node):
    op = "pool"
    mode: str = "max"  # max or avg
    window: Window | None = None
    count_pad: bool = False  # average: divide by the whole window, padding included
    global_pool: bool = False  # the window covers the whole input (reported as global pooling)
    accum_type: FixedType | None = None  # average only: the sum's type

    @property
    def kind(self) -> str:
        prefix = "global_" if self.global_pool else ""
        return f"{prefix}{self.mode}_pool{self.window.dims if self.window else ''}d"

    @property
    def quantised(self) -> bool:
        return self.result_type is not None and (self.mode == "max" or self.accum_type is not None)

    def types(self) -> dict[str, FixedType]:
        return ({"accum": self.accum_type} if self.accum_type else {}) | super().types()

    def _window(self) -> Window:
        if self.window is None:
            raise IRError(f"node '{self.name}': pooling without a window")
        return self.window

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if self.mode not in ("max", "avg"):
            raise IRError(f"node '{self.name}': unknown pooling mode {self.mode!r}")
        w = self._window()
        spatial, channels = spatial_split(shape, w, f"node '{self.name}'")
        return (*w.out_spatial(spatial), channels)

    def counts(self, in_shape: Shape) -> np.ndarray:
        """Number of cells inside the input for every output position (*out_spatial,)."""
        w = self._window()
        ones = np.ones((1, *in_shape[:-1], 1), dtype=np.int64)
        return patches(ones, w, 0).sum(axis=-2)[0, ..., 0]

    def divisors(self, in_shape: Shape) -> np.ndarray:
        w = self._window()
        counts = self.counts(in_shape)
        return np.full_like(counts, w.taps) if self.count_pad else counts

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        x = np.asarray(xs[0], dtype=np.float64)
        w = self._window()
        if self.mode == "max":
            return patches(x, w, -np.inf).max(axis=-2)
        total = patches(x, w, 0.0).sum(axis=-2)
        return total / self.divisors(x.shape[1:])[None, ..., None]

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.quantised and self.result_type is not None
        (x_t,) = in_types
        x = np.asarray(xs[0])
        w = self._window()
        if self.mode == "max":
            best = patches(x, w, x_t.min_int - 1).max(axis=-2)
            return requantize(best, x_t.frac, self.result_type)
        assert self.accum_type is not None
        total = patches(align(x, x_t.frac, self.accum_type.frac), w, 0).sum(axis=-2)
        total = apply_overflow(total, self.accum_type)
        d = self.divisors(x.shape[1:])[None, ..., None]
        quotient = trunc_div(total, d)
        return requantize(quotient, self.accum_type.frac, self.result_type)

    def to_json(self) -> dict[str, object]:
        d = super().to_json()
        d["window"] = self._window().to_json()
        return d

    def after_load(self) -> None:
        if isinstance(self.window, dict):
            self.window = Window.from_json(self.window)
