"""Bit-exact comparison of integer outputs, with the first mismatch located."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Comparison:
    against: str
    samples: int
    mismatches: int  # samples with at least one differing output
    first: dict[str, Any] | None

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "samples": self.samples,
            "mismatches": self.mismatches,
            "bit_exact": self.bit_exact,
            "first_mismatch": self.first,
        }


def compare(got: np.ndarray, expected: np.ndarray, against: str, output_names: list[str] | None = None) -> Comparison:
    """Compare (N, k) arrays exactly; a missing or extra row counts as a mismatch."""
    got = np.asarray(got)
    expected = np.asarray(expected)
    if got.ndim == 1:
        got = got[:, None]
    if expected.ndim == 1:
        expected = expected[:, None]
    n = len(expected)
    rows = min(len(got), n)
    diff = np.asarray(got[:rows] != expected[:rows])
    bad = np.flatnonzero(diff.any(axis=1))
    mismatches = len(bad) + abs(len(got) - n)
    first: dict[str, Any] | None = None
    if len(bad):
        s = int(bad[0])
        o = int(np.flatnonzero(diff[s])[0])
        first = {
            "sample": s,
            "output": o,
            "output_name": output_names[o] if output_names else str(o),
            "expected": _num(expected[s, o]),
            "got": _num(got[s, o]),
        }
    elif len(got) != n:
        first = {"sample": rows, "output": None, "expected": f"{n} samples", "got": f"{len(got)} samples"}
    return Comparison(against, n, mismatches, first)


def _num(v: Any) -> int | float:
    f = float(v)
    return int(v) if f.is_integer() and abs(f) < 2**53 else f
