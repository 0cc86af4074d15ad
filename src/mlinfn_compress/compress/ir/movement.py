"""Operations that move data without arithmetic: reshape, transpose, padding, cropping, up-sampling, concatenation.

Their result type is their input's (concatenation: one type holding every
input exactly, or a re-quantisation to the node's result type).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, requantize
from mlinfn_compress.compress.ir.node import IRError, Node, Shape, register
from mlinfn_compress.compress.ir.window import pad_spatial


class Movement(Node):
    """A data-movement node on one input: the value type passes through unchanged."""

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        return self.move(np.asarray(xs[0], dtype=np.float64))

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.result_type is not None
        x = np.asarray(xs[0])
        if in_types[0] != self.result_type:
            x = requantize(x, in_types[0].frac, self.result_type)
        return self.move(x)

    def move(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def source_index(self, in_shape: Shape) -> np.ndarray:
        """For each output element (row-major), the flat index of the input element it copies, or -1 for a zero."""
        n = math.prod(in_shape)
        idx = np.arange(n, dtype=np.int64).reshape(1, *in_shape)
        if isinstance(self, Pad):
            return self.move(idx + 1).ravel() - 1  # padding zeros become -1
        return self.move(idx).ravel()


@register
@dataclass(kw_only=True)
class Reshape(Movement):
    """Flatten or reshape: the row-major order of the data is unchanged."""

    op = "reshape"
    target: tuple[int, ...] = ()
    label: str = "reshape"

    @property
    def kind(self) -> str:
        return self.label

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if math.prod(self.target) != math.prod(shape):
            raise IRError(f"node '{self.name}': cannot reshape {shape} to {self.target}")
        return tuple(self.target)

    def move(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(x.shape[0], *self.target)

    def after_load(self) -> None:
        self.target = tuple(self.target)


@register
@dataclass(kw_only=True)
class Pad(Movement):
    """Zero padding (before, after) of each spatial axis (all axes but the last)."""

    op = "pad"
    pads: tuple[tuple[int, int], ...] = ()

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(self.pads) != len(shape) - 1:
            raise IRError(f"node '{self.name}': {len(self.pads)} paddings for the spatial axes of {shape}")
        return (*(s + a + b for s, (a, b) in zip(shape, self.pads, strict=False)), shape[-1])

    def move(self, x: np.ndarray) -> np.ndarray:
        return pad_spatial(x, self.pads, 0)

    def after_load(self) -> None:
        self.pads = tuple((int(a), int(b)) for a, b in self.pads)


@register
@dataclass(kw_only=True)
class Crop(Movement):
    """Cropping (before, after) of each spatial axis."""

    op = "crop"
    crops: tuple[tuple[int, int], ...] = ()

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(self.crops) != len(shape) - 1:
            raise IRError(f"node '{self.name}': {len(self.crops)} croppings for the spatial axes of {shape}")
        out = [s - a - b for s, (a, b) in zip(shape, self.crops, strict=False)]
        if min(out) < 1:
            raise IRError(f"node '{self.name}': cropping {self.crops} leaves nothing of {shape}")
        return (*out, shape[-1])

    def move(self, x: np.ndarray) -> np.ndarray:
        index = (slice(None),) + tuple(slice(a, x.shape[i + 1] - b) for i, (a, b) in enumerate(self.crops))
        return x[index]

    def after_load(self) -> None:
        self.crops = tuple((int(a), int(b)) for a, b in self.crops)


@register
@dataclass(kw_only=True)
class Upsample(Movement):
    """Nearest-neighbour up-sampling: every element repeated ``factors[i]`` times along spatial axis i."""

    op = "upsample"
    factors: tuple[int, ...] = ()

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if len(self.factors) != len(shape) - 1 or min(self.factors, default=1) < 1:
            raise IRError(f"node '{self.name}': factors {self.factors} do not fit the spatial axes of {shape}")
        return (*(s * f for s, f in zip(shape, self.factors, strict=False)), shape[-1])

    def move(self, x: np.ndarray) -> np.ndarray:
        for axis, f in enumerate(self.factors, start=1):
            x = np.repeat(x, f, axis=axis)
        return x

    def after_load(self) -> None:
        self.factors = tuple(int(f) for f in self.factors)


@register
@dataclass(kw_only=True)
class Transpose(Movement):
    """A permutation of the tensor's axes: output axis i is input axis ``axes[i]`` (batch axis excluded)."""

    op = "transpose"
    axes: tuple[int, ...] = ()

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        (shape,) = in_shapes
        if sorted(self.axes) != list(range(len(shape))):
            raise IRError(f"node '{self.name}': axes {self.axes} are not a permutation of the axes of {shape}")
        return tuple(shape[a] for a in self.axes)

    def move(self, x: np.ndarray) -> np.ndarray:
        return x.transpose(0, *(a + 1 for a in self.axes))

    def after_load(self) -> None:
        self.axes = tuple(int(a) for a in self.axes)


@register
@dataclass(kw_only=True)
class Concat(Node):
    """Concatenation along ``axis`` (of the tensor, without batch; -1 is channels), each input
    re-quantised to ``result_type`` (exact when that type holds every input)."""

    op = "concat"
    arity = None
    axis: int = -1

    def _axis(self, ndim: int) -> int:
        a = self.axis if self.axis >= 0 else ndim + self.axis
        if not 0 <= a < ndim:
            raise IRError(f"node '{self.name}': axis {self.axis} does not exist in a {ndim}-axis tensor")
        return a

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        ndim = len(in_shapes[0])
        a = self._axis(ndim)
        for s in in_shapes:
            if len(s) != ndim or any(s[i] != in_shapes[0][i] for i in range(ndim) if i != a):
                raise IRError(f"node '{self.name}': cannot concatenate {in_shapes} along axis {self.axis}")
        out = list(in_shapes[0])
        out[a] = sum(s[a] for s in in_shapes)
        return tuple(out)

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(x, dtype=np.float64) for x in xs], axis=1 + self._axis(xs[0].ndim - 1))

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        assert self.result_type is not None
        parts = [requantize(np.asarray(x), t.frac, self.result_type) for x, t in zip(xs, in_types, strict=True)]
        if any(p.dtype == object for p in parts):
            parts = [p.astype(object) for p in parts]
        return np.concatenate(parts, axis=1 + self._axis(xs[0].ndim - 1))
