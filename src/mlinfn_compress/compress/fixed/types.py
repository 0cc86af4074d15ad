"""Fixed-point formats: ``fixed<W,I,ROUNDING,OVERFLOW>``, and the integers a format holds.

A value of type ``fixed<W,I>`` is stored as an integer ``q`` and means
``q * 2**-(W-I)``.  Rounding and overflow modes use hls4ml's names (their
rule is ``rounding``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from mlinfn_compress.compress.fixed.rounding import OVERFLOW_MODES, ROUNDING_MODES

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
    def from_dict(d: dict[str, Any]) -> FixedType:
        return FixedType(
            int(d["width"]),
            int(d["integer"]),
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


def needs_wide(*widths: int) -> bool:
    """Whether values this wide need Python integers (int64 could overflow)."""
    return max(widths) > INT64_SAFE_BITS
