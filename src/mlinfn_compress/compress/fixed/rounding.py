"""The one rounding and overflow rule of every fixed-point format, over any array library.

The golden model rounds numpy integers (and Python integers where widths
exceed 62 bits), the QKeras twin TensorFlow floats, the Brevitas twin torch
floats; all three call the functions here with their library's namespace
(``NUMPY``, ``tensorflow_namespace()``, ``torch_namespace()``), so the rule is
written once.  Rounding modes and overflow modes have hls4ml's names:

* ``round_up`` says whether a value's floor goes up by one, from where the
  value lies between floor and floor + 1 (above half, at half, not exact),
  its sign and its floor's parity;
* ``overflow`` brings integer values into a format's range: WRAP (two's
  complement), SAT, SAT_SYM (symmetric), SAT_ZERO (out of range is 0);
* ``quantise`` converts real values to a format's grid (as integers times the
  step, in the input's own float type: exact in float64 for the twins).

This module imports only the standard library, so that a saved Brevitas twin
can carry a copy of it beside its class file.
"""

from __future__ import annotations

from typing import Any

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO")


class Namespace:
    """The few array functions the rule needs; subclassed per library."""

    def floor(self, x: Any) -> Any:
        raise NotImplementedError

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        raise NotImplementedError

    def zeros_like(self, x: Any) -> Any:
        raise NotImplementedError

    def equal(self, a: Any, b: Any) -> Any:
        return a == b

    def not_equal(self, a: Any, b: Any) -> Any:
        return a != b

    def as_values(self, flags: Any, like: Any) -> Any:
        """Booleans as 0 and 1 of ``like``'s type."""
        raise NotImplementedError


class _Numpy(Namespace):
    def __init__(self) -> None:
        import numpy as np

        self.np = np

    def floor(self, x: Any) -> Any:
        return self.np.floor(x)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self.np.where(cond, a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return self.np.minimum(self.np.maximum(x, lo), hi)

    def zeros_like(self, x: Any) -> Any:
        return self.np.zeros_like(x)

    def as_values(self, flags: Any, like: Any) -> Any:
        return self.np.asarray(flags).astype(self.np.asarray(like).dtype)


class _TensorFlow(Namespace):
    def __init__(self) -> None:
        import tensorflow as tf

        self.tf = tf

    def floor(self, x: Any) -> Any:
        return self.tf.floor(x)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self.tf.where(cond, a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return self.tf.clip_by_value(x, float(lo), float(hi))

    def zeros_like(self, x: Any) -> Any:
        return self.tf.zeros_like(x)

    def equal(self, a: Any, b: Any) -> Any:
        return self.tf.equal(a, b)

    def not_equal(self, a: Any, b: Any) -> Any:
        return self.tf.not_equal(a, b)

    def as_values(self, flags: Any, like: Any) -> Any:
        return self.tf.cast(flags, like.dtype)


class _Torch(Namespace):
    def __init__(self) -> None:
        import torch

        self.torch = torch

    def floor(self, x: Any) -> Any:
        return self.torch.floor(x)

    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if not isinstance(a, self.torch.Tensor):
            a = self.torch.full_like(b, a)
        if not isinstance(b, self.torch.Tensor):
            b = self.torch.full_like(a, b)
        return self.torch.where(cond, a, b)

    def clip(self, x: Any, lo: float, hi: float) -> Any:
        return self.torch.clamp(x, lo, hi)

    def zeros_like(self, x: Any) -> Any:
        return self.torch.zeros_like(x)

    def as_values(self, flags: Any, like: Any) -> Any:
        return flags.to(like.dtype)


NUMPY: Namespace = _Numpy()


def tensorflow_namespace() -> Namespace:
    """The rule's functions in TensorFlow (import TensorFlow the project's way before calling this)."""
    return _TensorFlow()


def torch_namespace() -> Namespace:
    return _Torch()


def round_up(mode: str, above: Any, tie: Any, inexact: Any, neg: Any, odd: Any) -> Any:
    """Whether a value's floor goes up by one (boolean arrays of any library: ``&``, ``|``, ``~``)."""
    if mode == "TRN":
        return above & ~above
    if mode == "TRN_ZERO":
        return inexact & neg
    if mode == "RND":
        return above | tie
    if mode == "RND_ZERO":
        return above | (tie & neg)
    if mode == "RND_INF":
        return above | (tie & ~neg)
    if mode == "RND_MIN_INF":
        return above
    if mode == "RND_CONV":
        return above | (tie & odd)
    raise ValueError(f"unknown rounding mode {mode!r}; use one of {', '.join(ROUNDING_MODES)}")


def bounds(width: int, signed: bool) -> tuple[int, int]:
    """The lowest and highest integer of a format."""
    return (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)


def overflow(xp: Namespace, r: Any, width: int, signed: bool, mode: str) -> Any:
    """Integer values ``r`` (integers, or integer-valued floats) brought into a format's range."""
    lo, hi = bounds(width, signed)
    if mode == "WRAP":
        span = 1 << width
        return ((r - lo) % span) + lo
    if mode == "SAT":
        return xp.clip(r, lo, hi)
    if mode == "SAT_SYM":
        return xp.clip(r, -hi if signed else 0, hi)
    if mode == "SAT_ZERO":
        return xp.where((r < lo) | (r > hi), xp.zeros_like(r), r)
    raise ValueError(f"unknown overflow mode {mode!r}; use one of {', '.join(OVERFLOW_MODES)}")


def round_float(xp: Namespace, scaled: Any, mode: str) -> Any:
    """Real values (already scaled to the format's step) rounded to integer-valued floats."""
    fl = xp.floor(scaled)
    part = scaled - fl  # exact
    odd = xp.equal(fl - 2.0 * xp.floor(fl / 2.0), 1.0)
    up = round_up(mode, part > 0.5, xp.equal(part, 0.5), xp.not_equal(part, 0.0), scaled < 0, odd)
    return fl + xp.as_values(up, fl)


def quantise(xp: Namespace, x: Any, width: int, integer: int, signed: bool, rounding: str, overflow_mode: str) -> Any:
    """Real values ``x`` (floats of any library) on the grid of a format, as floats of the same type.

    Exact wherever the values and the format fit the float's significand
    (float64 for the twins): scaling is by a power of two.
    """
    frac = width - integer
    r = round_float(xp, x * 2.0**frac, rounding)
    return overflow(xp, r, width, signed, overflow_mode) * 2.0**-frac
