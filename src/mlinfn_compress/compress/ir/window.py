"""Sliding windows over the spatial axes of a channels-last tensor (convolutions, pooling)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlinfn_compress.compress.ir.node import IRError, Shape


@dataclass(frozen=True)
class Window:
    """Kernel size, strides and zero padding (before, after) of each spatial axis."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        n = len(self.kernel)
        if n not in (1, 2) or len(self.strides) != n or len(self.pads) != n:
            raise IRError(f"a window has 1 or 2 spatial axes with one stride and one padding each: {self}")
        if min(self.kernel) < 1 or min(self.strides) < 1 or min(p for pair in self.pads for p in pair) < 0:
            raise IRError(f"window sizes and strides must be positive and paddings >= 0: {self}")

    @property
    def dims(self) -> int:
        return len(self.kernel)

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)

    def out_spatial(self, spatial: Shape) -> Shape:
        out = []
        for size, k, s, (a, b) in zip(spatial, self.kernel, self.strides, self.pads, strict=True):
            padded = size + a + b
            if padded < k:
                raise IRError(f"window {self.kernel} does not fit the padded input {spatial}")
            out.append((padded - k) // s + 1)
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {"kernel": list(self.kernel), "strides": list(self.strides), "pads": [list(p) for p in self.pads]}

    @staticmethod
    def from_json(d: dict[str, Any] | None) -> Window | None:
        if d is None:
            return None
        return Window(
            tuple(int(k) for k in d["kernel"]),
            tuple(int(s) for s in d["strides"]),
            tuple((int(a), int(b)) for a, b in d["pads"]),
        )

    @staticmethod
    def same(kernel: tuple[int, ...], strides: tuple[int, ...], spatial: Shape) -> tuple[tuple[int, int], ...]:
        """Keras's ``padding="same"``: output size ceil(in / stride), the extra padding after."""
        pads = []
        for size, k, s in zip(spatial, kernel, strides, strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)


def spatial_split(shape: Shape, window: Window, where: str) -> tuple[Shape, int]:
    """(spatial axes, channels) of an input shape that the window slides over."""
    if len(shape) != window.dims + 1:
        raise IRError(f"{where}: a {window.dims}-D window needs an input of {window.dims + 1} axes, got {shape}")
    return shape[:-1], shape[-1]


def pad_spatial(x: np.ndarray, pads: tuple[tuple[int, int], ...], value: Any = 0) -> np.ndarray:
    """Pad the spatial axes of a batch (N, *spatial, C) with ``value``."""
    if not any(a or b for a, b in pads):
        return x
    width = [(0, 0), *pads, (0, 0)]
    if x.dtype == object:
        out = np.full(tuple(s + a + b for s, (a, b) in zip(x.shape, width, strict=True)), value, dtype=object)
        index = tuple(slice(a, a + s) for s, (a, _) in zip(x.shape, width, strict=True))
        out[index] = x
        return out
    return np.pad(x, width, constant_values=value)


def patches(x: np.ndarray, window: Window, pad_value: Any = 0) -> np.ndarray:
    """Every window of a batch (N, *spatial, C) as (N, *out_spatial, taps, C), in kernel order."""
    xp = pad_spatial(x, window.pads, pad_value)
    axes = tuple(range(1, 1 + window.dims))
    view = np.lib.stride_tricks.sliding_window_view(xp, window.kernel, axis=axes)
    # view: (N, *positions, C, *kernel); take every stride-th position
    index = (slice(None),) + tuple(slice(None, None, s) for s in window.strides)
    view = view[index]
    n, c = x.shape[0], x.shape[-1]
    positions = view.shape[1 : 1 + window.dims]
    kernel_axes = tuple(range(2 + window.dims, 2 + 2 * window.dims))
    moved = np.moveaxis(view, kernel_axes, tuple(range(1 + window.dims, 1 + 2 * window.dims)))
    # moved: (N, *positions, *kernel, C)
    return moved.reshape(n, *positions, window.taps, c)
