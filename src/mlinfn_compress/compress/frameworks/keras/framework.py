"""Keras, QKeras and Keras 3 behind the ``Framework`` interface: tf_keras for training, QKeras for QAT and the twin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.frameworks.base import TWIN_DEVICES, Framework, LoadedModel, TwinRun
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError

TWIN_FILE = "model.h5"  # the QKeras twin in its folder


class KerasFramework(Framework):
    name = "keras"
    suffixes = (".h5", ".hdf5", ".keras", ".json")
    graph_frameworks = ("keras", "qkeras")
    pruning_method = "tensorflow-model-optimization prune_low_magnitude"
    package = "mlinfn_compress.compress.frameworks.keras"
    qat_framework = "qkeras"

    def check_arguments(
        self, path: Path, weights: Path | None, model_class: str | None, model_args: Any, input_shape: Any
    ) -> None:
        if model_class is not None or model_args:
            raise UserError(f"{path}: --model-class and --model-args apply only to PyTorch models (.pt, .pth, .pkl)")
        if input_shape is not None:
            raise UserError(f"{path}: --input-shape applies only to PyTorch models; a Keras model fixes its own")

    def load(
        self,
        path: Path,
        weights: Path | None,
        model_class: str | None,
        model_args: dict[str, Any] | None,
        input_shape: tuple[int, ...] | None,
    ) -> LoadedModel:
        from mlinfn_compress.compress.frameworks import keras

        return keras.load(path, weights)

    def reload(self, model: Any, loaded: LoadedModel, workdir: Path) -> LoadedModel:
        from mlinfn_compress.compress.frameworks import keras

        path = workdir / "compressed.h5"
        model.save(path, include_optimizer=False)
        return keras.load(path)

    def save_twin(self, graph: Graph, twin_dir: Path, device: str, x: np.ndarray, x_test: np.ndarray | None) -> TwinRun:
        from mlinfn_compress.compress.frameworks.keras import twin
        from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden

        try:
            with framework_warnings_hidden():
                path = twin.save_twin(graph, twin_dir / TWIN_FILE)
        except ValueError as e:
            return {"framework": "qkeras", "path": None, "reason": str(e)}, None, None
        tf_device, (out, test) = self.run_twin(graph, twin_dir, device, [x, x_test])
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

    def run_twin(
        self, graph: Graph, twin_dir: Path, device: str, inputs: list[np.ndarray | None]
    ) -> tuple[str, list[np.ndarray | None]]:
        from mlinfn_compress.compress.frameworks.keras import twin
        from mlinfn_compress.compress.frameworks.keras.tfkeras import framework_warnings_hidden, tensorflow

        tf = tensorflow()
        tf_device = _tf_device(tf, device, twin.has_convolutions(graph))
        with tf.device(tf_device), framework_warnings_hidden():
            model = twin.load_twin(twin_dir / TWIN_FILE)
            return tf_device, [twin.twin_logits(model, x) if x is not None else None for x in inputs]


def _tf_device(tf: Any, device: str, convolutions: bool) -> str:
    """The TensorFlow device to run on, with TF32 off on GPUs (convolutions: the CPU, see ``keras.twin``)."""
    if device not in TWIN_DEVICES:
        raise UserError(f"--device must be one of {', '.join(TWIN_DEVICES)}, got {device!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if device == "cuda" and not gpus:
        raise UserError("--device cuda: TensorFlow sees no GPU on this machine; use --device auto or cpu")
    if gpus and device != "cpu" and not convolutions:
        tf.config.experimental.enable_tensor_float_32_execution(False)
        return "/GPU:0"
    return "/CPU:0"
