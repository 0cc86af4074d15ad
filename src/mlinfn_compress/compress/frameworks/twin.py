"""The framework twin: the compressed model as a framework model that matches the hardware.

``build_and_run_twin`` saves the twin of a quantised graph (a QKeras model for
Keras and QKeras sources, a Brevitas model for PyTorch and Brevitas ones) and
runs it.  ``plan`` holds what both twins compute for every node and the proof
that float64 computes it exactly; ``keras`` and ``torch`` build the models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError

DEVICES = ("auto", "cpu", "cuda")
KERAS_FILE = "model.h5"  # the QKeras twin in its folder


def _tf_device(device: str, convolutions: bool) -> str:
    """The TensorFlow device to run on, with TF32 off on GPUs (convolutions: the CPU, see ``twins.keras``)."""
    from mlinfn_compress.compress.frameworks.keras.tfkeras import tensorflow

    tf = tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda" and not gpus:
        raise UserError("--device cuda: TensorFlow sees no GPU on this machine; use --device auto or cpu")
    if gpus and device != "cpu" and not convolutions:
        tf.config.experimental.enable_tensor_float_32_execution(False)
        return "/GPU:0"
    return "/CPU:0"


def build_and_run_twin(
    graph: Graph, device: str, twin_dir: Path, x: np.ndarray, x_test: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Save the twin under ``twin_dir`` and run it on ``x`` (and ``x_test``): (N, *input_shape) or flat rows.

    Returns (report entry, outputs on x, outputs on x_test), outputs as flat
    float64 rows (N, output_size); outputs are None when float64 cannot
    compute the graph exactly (the entry's ``reason`` says where).
    """
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if graph.framework in ("torch", "brevitas"):
        return _torch_twin(graph, device, twin_dir, x, x_test)
    from mlinfn_compress.compress.frameworks.keras import twin as keras
    from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden

    try:
        with framework_warnings_hidden():
            path = keras.save_twin(graph, twin_dir / KERAS_FILE)
    except ValueError as e:
        return {"framework": "qkeras", "path": None, "reason": str(e)}, None, None
    tf_device, (out, test) = run_saved_twin(graph, twin_dir, device, [x, x_test])
    info = {
        "framework": "qkeras",
        "path": f"twin/{path.name}",
        "load_with": "mlinfn_compress.compress.frameworks.keras.twin.load_twin(path) for float64 (exact); "
        "qkeras.utils.load_qmodel(path) loads a twin of QKeras layers only in float32",
        "device": tf_device,
        "float": "float64",
        "reason": None,
    }
    return info, out, test


def run_saved_twin(
    graph: Graph, twin_dir: Path, device: str, inputs: list[np.ndarray | None]
) -> tuple[str, list[np.ndarray | None]]:
    """Load the twin saved under ``twin_dir`` and run it on each of ``inputs`` (None stays None).

    Returns the device it ran on and its outputs as flat float64 rows (N, output_size).
    """
    if device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if graph.framework in ("torch", "brevitas"):
        from mlinfn_compress.compress.frameworks.torch import twin as twin_torch

        torch_device = _torch_device(device)
        model = twin_torch.load_twin(twin_dir)
        return torch_device, [twin_torch.twin_logits(model, x, device=torch_device) if x is not None else None
                              for x in inputs]  # fmt: skip
    from mlinfn_compress.compress.frameworks.keras import twin as keras
    from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden

    tf_device = _tf_device(device, keras.has_convolutions(graph))
    import tensorflow as tf

    with tf.device(tf_device), framework_warnings_hidden():
        model = keras.load_twin(twin_dir / KERAS_FILE)
        return tf_device, [keras.twin_logits(model, x) if x is not None else None for x in inputs]


def _torch_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: PyTorch sees no GPU on this machine; use --device auto or cpu")
    return "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"


def _torch_twin(
    graph: Graph, device: str, twin_dir: Path, x: np.ndarray, x_test: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    from mlinfn_compress.compress.frameworks.torch import twin as twin_torch

    _torch_device(device)  # a GPU asked for and missing is refused before anything is written
    try:
        saved = twin_torch.save_twin(graph, twin_dir)
    except ValueError as e:
        return {"framework": "brevitas", "path": None, "reason": str(e)}, None, None
    torch_device, (out, test) = run_saved_twin(graph, twin_dir, device, [x, x_test])
    info = {
        "framework": "brevitas",
        "path": f"twin/{saved['state_dict']}",
        "model_class": f"twin/{saved['model_class']}",
        "model_args": "twin/twin.json",
        "load_with": "mlinfn_compress.compress.frameworks.torch.twin.load_twin(OUTDIR/twin)",
        "device": torch_device,
        "float": "float64, TF32 off",
        "reason": None,
    }
    return info, out, test
