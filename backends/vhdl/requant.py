"""Re-quantisation in VHDL integer arithmetic: the facts the ``requant`` function template needs."""

from __future__ import annotations

from typing import Any

from mlinfn_compress.errors import UserError
from mlinfn_compress.fixed import FixedType

from .design import VHDL_INT_MAX


def check_int(bound: int, where: str) -> None:
    """A UserError unless every value up to ``bound`` in magnitude fits a VHDL integer."""
    if abs(bound) > VHDL_INT_MAX:
        raise UserError(
            f"{where}: values up to {abs(bound)} do not fit the 32-bit integers of the VHDL backend (more than 31 bits)"
        )


def requant_spec(
    in_frac: int, in_lo: int, in_hi: int, t: FixedType, fn: str = "requant", max_shift: int = 30
) -> dict[str, Any]:
    """What the requant function needs to turn a value in [in_lo, in_hi] with ``in_frac``
    fractional bits into type ``t``.

    ``max_shift`` bounds the shift: 30 for integer arithmetic; the wide (signed)
    dense template shifts vectors and accepts any shift.
    """
    shift = in_frac - t.frac
    lo, hi = t.min_int, t.max_int
    # Range after the shift, to see whether overflow handling can be skipped.
    after_lo = in_lo >> shift if shift >= 0 else in_lo << -shift
    after_hi = (in_hi >> shift) + 1 if shift > 0 else (in_hi << -shift if shift < 0 else in_hi)
    sat_lo = -hi if (t.overflow == "SAT_SYM" and t.signed) else lo
    if shift > max_shift or t.width > 30:
        raise UserError(f"type {t}: shifts and widths over 30 bits are not supported by the VHDL backend")
    if shift < 0 and max_shift <= 30:  # integer arithmetic (the wide template shifts vectors)
        check_int(max(abs(in_lo), abs(in_hi)) << -shift, f"re-quantisation to {t}")
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
        "check_range": after_lo < sat_lo or after_hi > hi,
        "identity": shift == 0 and not (after_lo < sat_lo or after_hi > hi),
        "describe": f"shift right by {shift} with {t.rounding}, then {t.overflow}"
        if shift >= 0
        else f"shift left by {-shift}, then {t.overflow}",
    }


def wide_requant_spec(in_frac: int, in_lo: int, in_hi: int, t: FixedType, w_in: int, fn: str) -> dict[str, Any]:
    """What the ``requant_wide`` function template needs: a signed ``w_in``-bit value in [in_lo, in_hi]
    with ``in_frac`` fractional bits, re-quantised in ``numeric_std`` arithmetic to type ``t``."""
    rq = requant_spec(in_frac, in_lo, in_hi, t, fn=fn, max_shift=w_in - 1)
    shift = rq["shift"]
    rq.update(
        w_in=w_in,
        q_w=w_in - shift if shift < 0 else w_in,
        low_nonzero=f"v({shift - 2} downto 0) /= ({shift - 2} downto 0 => '0')" if shift >= 2 else "false",
    )
    return rq
