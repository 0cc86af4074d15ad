"""The framework twin: the compressed model as a framework model that matches the hardware.

``build_and_run_twin`` saves the twin of a quantised graph with the framework
the model came from (a QKeras model for Keras and QKeras sources, a Brevitas
model for PyTorch and Brevitas ones) and runs it; ``run_saved_twin`` runs a
saved one again.  ``twin_plan`` holds what both twins compute for every node
and the proof that float64 computes it exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.frameworks import framework_of
from mlinfn_compress.compress.frameworks.base import TWIN_DEVICES
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError


def _check(device: str) -> None:
    if device not in TWIN_DEVICES:
        raise UserError(f"--device must be one of {', '.join(TWIN_DEVICES)}, got {device!r}")


def build_and_run_twin(
    graph: Graph, device: str, twin_dir: Path, x: np.ndarray, x_test: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Save the twin under ``twin_dir`` and run it on ``x`` (and ``x_test``): (N, *input_shape) or flat rows.

    Returns (report entry, outputs on x, outputs on x_test), outputs as flat
    float64 rows (N, output_size); outputs are None when float64 cannot
    compute the graph exactly (the entry's ``reason`` says where).
    """
    _check(device)
    return framework_of(graph).save_twin(graph, twin_dir, device, x, x_test)


def run_saved_twin(
    graph: Graph, twin_dir: Path, device: str, inputs: list[np.ndarray | None]
) -> tuple[str, list[np.ndarray | None]]:
    """Load the twin saved under ``twin_dir`` and run it on each of ``inputs`` (None stays None).

    Returns the device it ran on and its outputs as flat float64 rows (N, output_size).
    """
    _check(device)
    return framework_of(graph).run_twin(graph, twin_dir, device, inputs)
