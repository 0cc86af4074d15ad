"""Differential checking: every implementation of a quantised graph against the golden model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from mlinfn_compress.compress.fixed import to_float
from mlinfn_compress.compress.ir import INPUT, Graph, golden


def _on_grid(values: np.ndarray, graph: Graph) -> np.ndarray:
    """Float outputs as integers of the output type (a value off the grid stays a float and differs)."""
    out_t = graph.output.result_type
    assert out_t is not None
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), out_t.frac)
    return np.where(scaled == np.round(scaled), scaled, np.nan)


BACKENDS = ("vhdl", "vhdl_stream", "hls", "qkeras_twin", "brevitas_twin")


def check_backends(
    graph: Graph, x_int: np.ndarray, workdir: Path, backends: tuple[str, ...] = BACKENDS
) -> dict[str, int]:
    """Rows (of ``x_int``, flat integer inputs) where each implementation differs from the golden model."""
    expected = golden.run(graph, x_int)["logits"]
    result: dict[str, int] = {}
    for backend in backends:
        out = workdir / backend
        shutil.rmtree(out, ignore_errors=True)
        if backend in ("vhdl", "vhdl_stream"):
            from mlinfn_compress.backends.vhdl import render
            from mlinfn_compress.sim.ghdl import simulate_design

            io = "stream" if backend == "vhdl_stream" else "parallel"
            d = render(graph, out / "vhdl", out / "sim", io=io)
            got = simulate_design(d, x_int, out / "work").logits
        elif backend == "hls":
            from mlinfn_compress.backends.hls import render_hls
            from mlinfn_compress.sim.hls_csim import run_csim

            got = run_csim(render_hls(graph, out, "Vitis", tb_inputs=x_int[:10]), x_int).outputs
        elif backend == "qkeras_twin":
            from mlinfn_compress.compress.frameworks.keras import twin as keras

            with keras.float64_backend():
                model = keras.build_twin(graph)
            got = _on_grid(keras.twin_logits(model, to_float(x_int, graph.type_of(INPUT).frac)), graph)
        elif backend == "brevitas_twin":
            from mlinfn_compress.compress.frameworks.torch import twin as torch

            torch.save_twin(graph, out)
            model = torch.load_twin(out)
            got = _on_grid(torch.twin_logits(model, to_float(x_int, graph.type_of(INPUT).frac)), graph)
        else:
            raise ValueError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        result[backend] = (
            int((np.asarray(got) != expected).any(axis=1).sum()) if len(got) == len(expected) else len(x_int)
        )
    return result
