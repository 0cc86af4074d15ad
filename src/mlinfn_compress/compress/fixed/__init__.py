"""Fixed-point formats (``types``), their one rounding and overflow rule over any array library
(``rounding``), and the exact conversions between real values and a format's integers (``values``)."""

from mlinfn_compress.compress.fixed.rounding import OVERFLOW_MODES, ROUNDING_MODES
from mlinfn_compress.compress.fixed.types import INT64_SAFE_BITS, FixedType, FixedTypeError, bits_for_range, needs_wide
from mlinfn_compress.compress.fixed.values import (
    apply_overflow,
    integer_bits_for,
    min_frac_bits,
    on_grid,
    quantize,
    requantize,
    shift_round,
    to_float,
)

__all__ = [
    "INT64_SAFE_BITS",
    "OVERFLOW_MODES",
    "ROUNDING_MODES",
    "FixedType",
    "FixedTypeError",
    "apply_overflow",
    "bits_for_range",
    "integer_bits_for",
    "min_frac_bits",
    "needs_wide",
    "on_grid",
    "quantize",
    "requantize",
    "shift_round",
    "to_float",
]
