"""Real values and the integers of a fixed-point format: quantising, re-quantising, reading back.

All arithmetic is on integers (numpy int64, or Python ints in object arrays
where widths exceed 62 bits), so it is exact; real inputs are scaled by a
power of two in float64.  Rounding and overflow follow ``rounding``, the rule
the framework twins use too.
"""

from __future__ import annotations

import math

import numpy as np

from mlinfn_compress.compress.fixed.rounding import NUMPY, overflow, round_float, round_up
from mlinfn_compress.compress.fixed.types import FixedType, FixedTypeError, needs_wide


def apply_overflow(values: np.ndarray, t: FixedType) -> np.ndarray:
    """Bring integers into the range of ``t`` with its overflow mode."""
    return np.asarray(overflow(NUMPY, np.asarray(values), t.width, t.signed, t.overflow))


def shift_round(values: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """Divide integers by 2**shift with the given rounding (shift <= 0 multiplies exactly)."""
    v = np.asarray(values)
    if shift <= 0:
        return v * (1 << -shift) if shift else v.copy()
    one = 1 << shift
    half = 1 << (shift - 1)
    q = v >> shift  # floor, for int64 and for Python ints alike
    r = v - q * one  # 0 <= r < one
    return q + round_up(rounding, r > half, r == half, r != 0, v < 0, (q & 1) == 1)


def requantize(values: np.ndarray, frac_in: int, t: FixedType) -> np.ndarray:
    """Convert integers with ``frac_in`` fractional bits to type ``t``."""
    shifted = shift_round(values, frac_in - t.frac, t.rounding)
    return apply_overflow(shifted, t)


def quantize(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Quantise real values to integers of type ``t`` (exact, via float64 scaling)."""
    xf = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(xf)):
        raise FixedTypeError("cannot quantise NaN or infinite values")
    r = round_float(NUMPY, np.ldexp(xf, t.frac), t.rounding)  # scaling by a power of two is exact
    wide = needs_wide(t.width + 1) or bool(np.any(np.abs(r) >= 2**62))
    ints = np.array([int(v) for v in r.ravel()], dtype=object).reshape(r.shape) if wide else r.astype(np.int64)
    out = apply_overflow(ints, t)
    return out if needs_wide(t.width) else np.asarray(out).astype(np.int64)


def to_float(values: np.ndarray, frac: int) -> np.ndarray:
    """Real value of integers with ``frac`` fractional bits (float64)."""
    v = np.asarray(values)
    if v.dtype == object:
        return np.array([math.ldexp(float(int(a)), -frac) for a in v.ravel()]).reshape(v.shape)
    return np.ldexp(v.astype(np.float64), -frac)


def on_grid(x: np.ndarray, frac: int) -> bool:
    """True when every value of ``x`` is an exact multiple of 2**-frac."""
    scaled = np.ldexp(np.asarray(x, dtype=np.float64), frac)
    return bool(np.all(scaled == np.round(scaled)))


def min_frac_bits(x: np.ndarray, limit: int = 40) -> int:
    """Fewest fractional bits that represent every value of ``x`` exactly."""
    for f in range(-limit, limit + 1):
        if on_grid(x, f):
            return f
    raise FixedTypeError(f"values are not on any power-of-two grid up to 2^-{limit}")


def integer_bits_for(max_abs: float, signed: bool) -> int:
    """Integer bits (sign included when signed) so that ``max_abs`` fits below 2**(I-sign)."""
    if max_abs <= 0:
        return 1 if signed else 0
    i = math.floor(math.log2(max_abs)) + 1
    return i + 1 if signed else i
