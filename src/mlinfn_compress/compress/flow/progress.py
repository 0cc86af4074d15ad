"""Progress lines on stderr for the steps that take time."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class Progress:
    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self._open = False  # a step's line is waiting for its "done"

    def _print(self, text: str, end: str = "\n") -> None:
        print(text, end=end, file=sys.stderr, flush=True)

    def info(self, text: str) -> None:
        if self.quiet:
            return
        if self._open:
            self._print("")
            self._open = False
        self._print(f"  {text}")

    def warn(self, text: str) -> None:
        """Shown even when quiet."""
        if self._open:
            self._print("")
            self._open = False
        self._print(f"mlinfn-compress: warning: {text}")

    @contextmanager
    def step(self, key: str, text: str) -> Iterator[None]:
        if not self.quiet:
            self._print(f"- {text} ...", end="")
            self._open = True
        t0 = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.perf_counter() - t0
            self.timings[key] = round(dt, 3)
            if not self.quiet:
                result = f"{'done' if ok else 'failed'} ({dt:.1f} s)"
                self._print(f" {result}" if self._open else f"  ... {result}")
                self._open = False
