"""Re-quantisation in VHDL: the facts the ``requant`` function template needs.

Every value is re-quantised in ``ieee.numeric_std`` signed arithmetic of
exactly the width it needs: the floor is a slice, the rounding an increment
decided by the bits shifted out, the saturation a comparison of the bits
left; no division and no 32-bit comparison.  Where the input fits VHDL
integers an integer overload of the same function converts it, so callers
write ``requant(v)`` either way.
"""

from __future__ import annotations

from typing import Any

from mlinfn_compress.backends.vhdl.design import VHDL_INT_MAX
from mlinfn_compress.compress.fixed import FixedType, bits_for_range
from mlinfn_compress.errors import UserError

INT_SHIFT_MAX = 30  # 2**30 is the largest power of two a VHDL integer literal holds


def fits_int(lo: int, hi: int) -> bool:
    """Whether every integer in [lo, hi] is a VHDL integer (at least 32-bit, symmetric)."""
    return -VHDL_INT_MAX <= lo and hi <= VHDL_INT_MAX


def type_fits_int(t: FixedType) -> bool:
    return fits_int(t.min_int, t.max_int)


def signed_bits(lo: int, hi: int) -> int:
    """Width of a two's complement vector holding every integer in [lo, hi]."""
    return bits_for_range(min(lo, -1), max(hi, 0))


def check_int(bound: int, where: str) -> None:
    """A UserError unless every value up to ``bound`` in magnitude fits a VHDL integer."""
    if abs(bound) > VHDL_INT_MAX:
        raise UserError(
            f"{where}: values up to {abs(bound)} do not fit the 32-bit integers of this VHDL entity "
            "(more than 31 bits); only linear layers, casts and clips (relu) compute wider values"
        )


# Rounding modes that add a constant before the floor: half, or half minus one (ties down);
# round half to even then clears the lowest bit of a tie (the remainder after adding half is 0).
ADD_HALF = {"RND": 0, "RND_CONV": 0, "RND_MIN_INF": -1}


def half_constant(rounding: str, shift: int) -> int:
    """What a rounding mode of ``ADD_HALF`` adds before the floor of a right shift by ``shift``."""
    return (1 << (shift - 1)) + ADD_HALF[rounding]


def shifted_range(lo: int, hi: int, shift: int) -> tuple[int, int]:
    """The range of values in [lo, hi] shifted right by ``shift`` (left when negative), a rounding carry
    included: before any overflow handling."""
    if shift > 0:
        return lo >> shift, (hi >> shift) + 1
    return lo << -shift, hi << -shift


def requant_spec(
    in_frac: int, in_lo: int, in_hi: int, t: FixedType, fn: str = "requant", folded: bool = False
) -> dict[str, Any]:
    """What the requant function needs to turn a value in [in_lo, in_hi] with ``in_frac``
    fractional bits into type ``t``.

    ``folded``: the caller has already added the rounding constant (``half_constant``) of a mode
    of ``ADD_HALF`` to the value, in an adder it needs anyway; the function then only floors
    (and, for RND_CONV, clears the lowest bit of ties).
    """
    shift = in_frac - t.frac
    lo, hi = t.min_int, t.max_int
    # Range after the shift, to see whether overflow handling can be skipped.
    after_lo, after_hi = shifted_range(in_lo, in_hi, shift)
    sat_lo = -hi if (t.overflow == "SAT_SYM" and t.signed) else lo
    check_range = after_lo < sat_lo or after_hi > hi
    in_w = max(signed_bits(in_lo, in_hi), shift + 1)  # the remainder's bits exist even for huge shifts
    out_w = signed_bits(lo, hi)
    # the width after the shift (and a rounding carry), wide enough to compare with the type's limits
    q_w = max(in_w - shift + 1 if shift >= 0 else in_w - shift, out_w + 1)
    add = half_constant(t.rounding, shift) if shift > 0 and t.rounding in ADD_HALF and not folded else 0
    return {
        "fn": fn,
        "frac_in": in_frac,
        "type": t,
        "shift": shift,
        "rounding": t.rounding,
        "overflow": t.overflow,
        "lo": lo,
        "hi": hi,
        "sat_lo": sat_lo,
        "check_range": check_range,
        "identity": shift == 0 and not check_range,
        "describe": f"shift right by {shift} with {t.rounding}{' (its half already added)' if folded else ''}, "
        f"then {t.overflow}"
        if shift >= 0
        else f"shift left by {-shift}, then {t.overflow}",
        "add": add,
        "folded": folded and shift > 0 and t.rounding in ADD_HALF,
        "tie_even": shift > 0 and t.rounding == "RND_CONV",
        "increment": shift > 0 and t.rounding not in ADD_HALF and t.rounding != "TRN",
        "int_in": fits_int(in_lo, in_hi),
        "out_int": type_fits_int(t),
        "in_w": in_w,
        "q_w": q_w,
        "out_w": out_w,
        "lit": {"hi": signed_literal(hi, q_w), "lo": signed_literal(lo, q_w), "sat_lo": signed_literal(sat_lo, q_w)},
    }


def wide_requant_spec(in_frac: int, in_lo: int, in_hi: int, t: FixedType, w_in: int, fn: str) -> dict[str, Any]:
    """What the ``requant_wide`` function template needs: a signed ``w_in``-bit value in [in_lo, in_hi]
    with ``in_frac`` fractional bits, re-quantised in ``numeric_std`` arithmetic to type ``t``."""
    rq = requant_spec(in_frac, in_lo, in_hi, t, fn=fn)
    shift = rq["shift"]
    rq.update(
        w_in=w_in,
        q_w=w_in - shift if shift < 0 else w_in,
        low_nonzero=f"v({shift - 2} downto 0) /= ({shift - 2} downto 0 => '0')" if shift >= 2 else "false",
    )
    return rq


def signed_literal(value: int, width: int) -> str:
    """A signed constant of any width as a bit-string literal (integer literals stop at 32 bits)."""
    return f'signed\'("{value & ((1 << width) - 1):0{width}b}")'
