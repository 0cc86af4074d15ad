"""The numeric options and their ranges: one definition for the command line and the Python API."""

from __future__ import annotations

from dataclasses import dataclass

from mlinfn_compress.errors import UserError


@dataclass(frozen=True)
class Range:
    """An integer in [lo, hi] (hi None: no upper bound), or a float in [lo, hi) when ``fraction``."""

    lo: float
    hi: float | None = None
    fraction: bool = False

    def describe(self) -> str:
        if self.fraction:
            return f"a number in [{self.lo:g}, {self.hi:g})"
        if self.hi is None:
            return f"an integer >= {int(self.lo)}"
        return f"an integer from {int(self.lo)} to {int(self.hi)}"

    def problem(self, value: object) -> str | None:
        """Why ``value`` is out of range ("must be ..."), or None when it is fine."""
        if self.fraction:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and self.lo <= float(value) < float(self.hi)  # type: ignore[arg-type]
        else:
            ok = isinstance(value, int) and not isinstance(value, bool)
            ok = ok and value >= self.lo and (self.hi is None or value <= self.hi)  # type: ignore[operator]
        return None if ok else f"must be {self.describe()}, got {value!r}"


RANGES: dict[str, Range] = {
    "bits": Range(2, 24),
    "weight_bits": Range(2, 24),
    "act_bits": Range(2, 24),
    "epochs": Range(1),
    "simulate": Range(1),
    "seed": Range(0),
    "reuse": Range(1),
    "prune": Range(0.0, 1.0, fraction=True),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check(name: str, value: object) -> None:
    """UserError naming the option and its range when ``value`` is out of it (None: not given, fine)."""
    if value is None:
        return
    why = RANGES[name].problem(value)
    if why is not None:
        raise UserError(f"{flag(name)} {why}")
