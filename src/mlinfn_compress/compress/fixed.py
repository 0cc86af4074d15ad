"""Fixed-point types and their exact integer semantics.

A value of type ``fixed<W,I>`` is stored as an integer ``q`` and means
``q * 2**-(W-I)``.  Rounding and overflow modes use hls4ml's names.
All arithmetic here is on integers (numpy int64 or Python ints in object
arrays), so it is exact; float inputs are converted through exact power-of-two
scaling in float64.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_INF", "RND_MIN_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_SYM", "SAT_ZERO")

_TYPE_RE = re.compile(r"^\s*(u?fixed)\s*<\s*(\d+)\s*,\s*(-?\d+)\s*(?:,\s*([A-Z_]+)\s*)?(?:,\s*([A-Z_]+)\s*)?>\s*$")

# Widths up to this many bits are computed in int64 without risk of overflow
# in a product of two such values plus a sum of a few thousand of them.
INT64_SAFE_BITS = 62


class FixedTypeError(ValueError):
    """A fixed-point type string or parameter that cannot be used."""


@dataclass(frozen=True)
class FixedType:
    """A fixed-point format: sign, total width, integer bits, rounding, overflow."""

    width: int
    integer: int
    signed: bool = True
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self) -> None:
        if self.width < 1:
            raise FixedTypeError(f"width must be at least 1, got {self.width}")
        if self.rounding not in ROUNDING_MODES:
            raise FixedTypeError(f"unknown rounding mode {self.rounding!r}; use one of {', '.join(ROUNDING_MODES)}")
        if self.overflow not in OVERFLOW_MODES:
            raise FixedTypeError(f"unknown overflow mode {self.overflow!r}; use one of {', '.join(OVERFLOW_MODES)}")

    @property
    def frac(self) -> int:
        """Number of fractional bits (may be negative)."""
        return self.width - self.integer

    @property
    def min_int(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_int(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return math.ldexp(1.0, -self.frac)

    def __str__(self) -> str:
        name = "fixed" if self.signed else "ufixed"
        return f"{name}<{self.width},{self.integer},{self.rounding},{self.overflow}>"

    def with_modes(self, rounding: str, overflow: str) -> FixedType:
        return FixedType(self.width, self.integer, self.signed, rounding, overflow)

    def to_dict(self) -> dict[str, object]:
        return {
            "width": self.width,
            "integer": self.integer,
            "signed": self.signed,
            "rounding": self.rounding,
            "overflow": self.overflow,
        }

    @staticmethod
    def from_dict(d: dict[str, object]) -> FixedType:
        return FixedType(
            int(d["width"]),  # type: ignore[arg-type]
            int(d["integer"]),  # type: ignore[arg-type]
            bool(d["signed"]),
            str(d["rounding"]),
            str(d["overflow"]),
        )

    @staticmethod
    def parse(text: str, rounding: str = "TRN", overflow: str = "WRAP") -> FixedType:
        """Parse ``fixed<W,I[,ROUND[,OVERFLOW]]>`` or ``ufixed<...>``."""
        m = _TYPE_RE.match(text)
        if not m:
            raise FixedTypeError(
                f"cannot parse fixed-point type {text!r}; expected e.g. 'fixed<16,6>' or 'ufixed<8,0,RND_CONV,SAT>'"
            )
        kind, w, i, rnd, ovf = m.groups()
        return FixedType(int(w), int(i), kind == "fixed", rnd or rounding, ovf or overflow)

    @staticmethod
    def for_range(lo: int, hi: int, frac: int, **modes: str) -> FixedType:
        """Smallest type with ``frac`` fractional bits holding every integer in [lo, hi]."""
        signed = lo < 0
        width = bits_for_range(lo, hi)
        return FixedType(width, width - frac, signed, **modes)


def bits_for_range(lo: int, hi: int) -> int:
    """Bits needed to store every integer in [lo, hi] (two's complement if lo < 0)."""
    lo, hi = int(lo), int(hi)
    if lo < 0:
        return max(int(hi).bit_length(), int(-lo - 1).bit_length()) + 1
    return max(1, int(hi).bit_length())


def shift_round(values: np.ndarray, shift: int, rounding: str) -> np.ndarray:
    """Divide integers by 2**shift with the given rounding (shift <= 0 multiplies exactly)."""
    v = np.asarray(values)
    if shift <= 0:
        return v * (1 << -shift) if shift else v.copy()
    one = 1 << shift
    half = 1 << (shift - 1)
    q = v >> shift  # floor, for int64 and for Python ints alike
    r = v - q * one  # 0 <= r < one
    return q + _round_up(rounding, r > half, r == half, r != 0, v < 0, (q & 1) == 1)


def _round_up(mode: str, above: Any, tie: Any, inexact: Any, neg: Any, odd: Any) -> Any:
    """Whether the floor of a value goes up by one: from where the value lies between
    floor and floor + 1 (above half, exactly half, not exact), its sign and the
    floor's parity."""
    if mode == "TRN":
        return np.zeros_like(above)
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
    raise FixedTypeError(f"unknown rounding mode {mode!r}")


def apply_overflow(values: np.ndarray, t: FixedType) -> np.ndarray:
    """Bring integers into the range of ``t`` with its overflow mode."""
    v = np.asarray(values)
    lo, hi = t.min_int, t.max_int
    if t.overflow == "WRAP":
        span = 1 << t.width
        return ((v - lo) % span) + lo
    if t.overflow == "SAT":
        return np.minimum(np.maximum(v, lo), hi)
    if t.overflow == "SAT_SYM":
        sym_lo = -hi if t.signed else 0
        return np.minimum(np.maximum(v, sym_lo), hi)
    if t.overflow == "SAT_ZERO":
        return np.where((v < lo) | (v > hi), 0, v)
    raise FixedTypeError(f"unknown overflow mode {t.overflow!r}")


def needs_wide(*widths: int) -> bool:
    return max(widths) > INT64_SAFE_BITS


def requantize(values: np.ndarray, frac_in: int, t: FixedType) -> np.ndarray:
    """Convert integers with ``frac_in`` fractional bits to type ``t``."""
    shifted = shift_round(values, frac_in - t.frac, t.rounding)
    return apply_overflow(shifted, t)


def quantize(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Quantise real values to integers of type ``t`` (exact, via float64 scaling)."""
    xf = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(xf)):
        raise FixedTypeError("cannot quantise NaN or infinite values")
    scaled = np.ldexp(xf, t.frac)  # exact: multiplication by a power of two
    fl = np.floor(scaled)
    part = scaled - fl  # exact in float64
    r = fl + _round_up(t.rounding, part > 0.5, part == 0.5, part != 0, scaled < 0, np.mod(fl, 2) == 1)
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
