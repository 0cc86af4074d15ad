"""Exact fixed-point semantics: rounding ties, negatives, saturation, wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import (
    FixedType,
    FixedTypeError,
    apply_overflow,
    bits_for_range,
    quantize,
    requantize,
    shift_round,
    to_float,
)

# Integers with 2 fractional bits: -2.75 .. 2.75 in steps of 0.25; ties at .5.
VALUES = np.array([-11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5, 6, 7, 10, 11])
REAL = VALUES / 4  # -2.75 -2.5 -2.25 -2 -1.75 -1.5 -1.25 -1 -0.75 -0.5 -0.25 0 0.25 0.5 0.75 1.25 1.5 1.75 2.5 2.75

EXPECTED = {
    "TRN": [-3, -3, -3, -2, -2, -2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2, 2],
    "TRN_ZERO": [-2, -2, -2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2],
    "RND": [-3, -2, -2, -2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
    "RND_ZERO": [-3, -2, -2, -2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3],
    "RND_INF": [-3, -3, -2, -2, -2, -2, -1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3],
    "RND_MIN_INF": [-3, -3, -2, -2, -2, -2, -1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3],
    "RND_CONV": [-3, -2, -2, -2, -2, -2, -1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3],
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_shift_round_every_mode(mode: str) -> None:
    assert shift_round(VALUES, 2, mode).tolist() == EXPECTED[mode]


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_quantize_from_float_matches_integer_rounding(mode: str) -> None:
    t = FixedType(8, 8, True, mode, "SAT")  # integers
    assert quantize(REAL, t).tolist() == EXPECTED[mode]


def test_rnd_conv_ties_go_to_even() -> None:
    t = FixedType(8, 8, True, "RND_CONV", "SAT")
    assert quantize(np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5]), t).tolist() == [0, 2, 2, 0, -2, -2]


def test_saturation_at_both_ends() -> None:
    t = FixedType(4, 2, True, "TRN", "SAT")  # -2.0 .. 1.75
    assert (t.min_int, t.max_int) == (-8, 7)
    assert quantize(np.array([-100.0, -2.0, -2.01, 1.75, 1.8, 100.0]), t).tolist() == [-8, -8, -8, 7, 7, 7]
    u = FixedType(4, 2, False, "TRN", "SAT")  # 0 .. 3.75
    assert quantize(np.array([-1.0, 0.0, 3.75, 9.0]), u).tolist() == [0, 0, 15, 15]


def test_sat_sym_is_symmetric() -> None:
    t = FixedType(4, 4, True, "TRN", "SAT_SYM")
    assert apply_overflow(np.array([-9, -8, -7, 7, 8]), t).tolist() == [-7, -7, -7, 7, 7]


def test_wrap_around() -> None:
    t = FixedType(4, 4, True, "TRN", "WRAP")  # -8 .. 7
    assert apply_overflow(np.array([8, 9, 15, 16, -9, -16, -17]), t).tolist() == [-8, -7, -1, 0, 7, 0, -1]
    u = FixedType(4, 4, False, "TRN", "WRAP")  # 0 .. 15
    assert apply_overflow(np.array([16, 17, -1]), u).tolist() == [0, 1, 15]


def test_sat_zero() -> None:
    t = FixedType(4, 4, True, "TRN", "SAT_ZERO")
    assert apply_overflow(np.array([-9, -8, 7, 8]), t).tolist() == [0, -8, 7, 0]


def test_requantize_rounds_then_overflows() -> None:
    # 4 fractional bits -> fixed<4,2> (2 fractional bits): 1.875 rounds to 2.0, which saturates to 1.75.
    t = FixedType(4, 2, True, "RND", "SAT")
    assert requantize(np.array([30, -33, 6]), 4, t).tolist() == [7, -8, 2]
    # Left shift when the target has more fractional bits.
    t2 = FixedType(8, 2, True, "TRN", "SAT")  # 6 fractional bits: shift left by 4
    assert requantize(np.array([3, -3]), 2, t2).tolist() == [48, -48]


def test_wide_values_use_python_integers() -> None:
    t = FixedType(70, 70, True, "TRN", "WRAP")
    v = np.array([2**69 - 1, 2**69], dtype=object)
    assert apply_overflow(v, t).tolist() == [2**69 - 1, -(2**69)]
    assert shift_round(np.array([2**65 + 2**3], dtype=object), 4, "RND_CONV").tolist() == [2**61 + 0]


def test_parse_and_print() -> None:
    t = FixedType.parse("fixed<16,6>")
    assert (t.width, t.integer, t.signed, t.rounding, t.overflow) == (16, 6, True, "TRN", "WRAP")
    assert str(FixedType.parse("ufixed<8, 0, RND_CONV, SAT>")) == "ufixed<8,0,RND_CONV,SAT>"
    assert FixedType.parse("fixed<16,6>", rounding="RND_CONV", overflow="SAT").rounding == "RND_CONV"
    with pytest.raises(FixedTypeError, match="cannot parse fixed-point type 'float'"):
        FixedType.parse("float")
    with pytest.raises(FixedTypeError, match="unknown rounding mode 'NEAR'"):
        FixedType.parse("fixed<8,2,NEAR,SAT>")


def test_value_and_range_helpers() -> None:
    t = FixedType(16, 6)
    assert t.frac == 10 and t.lsb == 2**-10
    assert to_float(np.array([1024, -1536]), 10).tolist() == [1.0, -1.5]
    assert bits_for_range(-8, 7) == 4 and bits_for_range(-9, 7) == 5 and bits_for_range(0, 255) == 8
    assert FixedType.for_range(-100, 50, 3) == FixedType(8, 5, True)
