"""The hls4ml project as a target: written from the IR with every precision, checked by its C simulation."""

from __future__ import annotations

import importlib.metadata
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlinfn_compress.backends.base import Emitted, Simulated, Target
from mlinfn_compress.backends.hls.project import HlsProject, backend_name
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError

if TYPE_CHECKING:
    from mlinfn_compress.compress.flow.options import RunOptions


class HlsTarget(Target):
    """An hls4ml project of the quantised graph for ``backend`` (Vitis, Vivado, Quartus or oneAPI)."""

    key = "hls"
    what = "HLS"
    softmax_note = (
        "the model ends in a softmax: the HLS design emits the logits (before the softmax; hls4ml's softmax "
        "is a lookup-table approximation)"
    )

    def __init__(self, backend: str = "Vitis") -> None:
        self.backend = backend

    @classmethod
    def check_options(cls, opts: RunOptions) -> None:
        try:
            opts.hls_backend = backend_name(opts.hls_backend)
        except ValueError as e:
            raise UserError(f"--hls-backend: {e}") from e

    @classmethod
    def tools(cls) -> list[str]:
        return ["g++"]

    def emit(self, graph: Graph, outdir: Path, x_int: np.ndarray, progress: Progress) -> HlsProject:
        from mlinfn_compress.backends.hls.writer import render_hls

        with progress.step("emit_hls", f"writing the hls4ml project ({self.backend})"):
            try:
                return render_hls(graph, outdir / "hls", self.backend, tb_inputs=x_int)
            except ValueError as e:
                raise UserError(f"{graph.source_path}: cannot write the HLS project: {e}") from e

    def describe(self, design: HlsProject) -> dict[str, Any]:
        return {"path": "hls"}

    @classmethod
    def load(cls, entry: dict[str, Any], outdir: Path) -> Emitted:
        from mlinfn_compress.backends.hls.project import load_project

        try:
            project = load_project(outdir / entry["path"])
        except (OSError, ValueError) as e:
            raise UserError(f"{outdir}: cannot read the HLS project ({e})") from e
        return Emitted(cls(project.backend), project)

    def simulate(
        self,
        design: HlsProject,
        graph: Graph,
        x_int: np.ndarray,
        test_int: np.ndarray | None,
        work: Path,
        progress: Progress,
        keep_logs: Path | None,
    ) -> Simulated:
        """Compile the project as it is on disk with g++ and run its C simulation."""
        from mlinfn_compress.sim.hls_csim import compile_project, precision_differences, predict_ints

        with progress.step("hls_compile", "compiling the HLS C-simulation with g++"):
            lib = compile_project(design)
        with progress.step("hls_csim", f"running the C-simulation on {len(x_int)} samples"):
            t0 = time.perf_counter()
            out = predict_ints(lib, x_int)
            seconds = time.perf_counter() - t0
            test = predict_ints(lib, test_int) if test_int is not None else None
        version = importlib.metadata.version("hls4ml")
        info = {
            "hls4ml": version,
            "backend": design.backend,
            "project": design.project_name,
            "compile_seconds": round(lib.compile_seconds, 3),
            "precision_differences": precision_differences(design),
        }
        simulator = f"hls4ml {version} C-simulation ({design.backend} project, g++)"
        return Simulated(simulator=simulator, outputs=out, seconds=seconds, test_outputs=test, hls=info)

    def outputs(self, design: HlsProject, x_int: np.ndarray, work: Path) -> np.ndarray:
        from mlinfn_compress.sim.hls_csim import run_csim

        return run_csim(design, x_int).outputs

    def report(self, design: HlsProject) -> dict[str, Any]:
        return {"hls": {"path": "hls/", "backend": design.backend, "project": design.project_name}}
