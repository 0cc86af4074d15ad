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

    def info(self, text: str) -> None:
        if not self.quiet:
            print(f"  {text}", file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        """Shown even when quiet."""
        print(f"mlinfn-compress: warning: {text}", file=sys.stderr, flush=True)

    @contextmanager
    def step(self, key: str, text: str) -> Iterator[None]:
        if not self.quiet:
            print(f"- {text} ...", end="", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        ok = False
        try:
            yield
            ok = True
        finally:
            dt = time.perf_counter() - t0
            self.timings[key] = round(dt, 3)
            if not self.quiet:
                print(f" {'done' if ok else 'failed'} ({dt:.1f} s)", file=sys.stderr, flush=True)
