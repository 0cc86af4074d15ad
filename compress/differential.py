"""Differential checking: every implementation of a quantised graph against the golden model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from . import golden
from .ir import Graph

BACKENDS = ("vhdl",)


def check_backends(
    graph: Graph, x_int: np.ndarray, workdir: Path, backends: tuple[str, ...] = BACKENDS
) -> dict[str, int]:
    """Rows (of ``x_int``, flat integer inputs) where each implementation differs from the golden model."""
    expected = golden.run(graph, x_int)["logits"]
    result: dict[str, int] = {}
    for backend in backends:
        out = workdir / backend
        shutil.rmtree(out, ignore_errors=True)
        if backend == "vhdl":
            from .backends.vhdl import render
            from .sim.ghdl import simulate

            d = render(graph, out / "vhdl", out / "sim")
            got = simulate(d.files, d.testbench, d.top, x_int, d.n_out, d.argmax, out / "work").logits
        else:
            raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        result[backend] = (
            int((np.asarray(got) != expected).any(axis=1).sum()) if len(got) == len(expected) else len(x_int)
        )
    return result
