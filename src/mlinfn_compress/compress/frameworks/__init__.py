"""Frameworks: Keras (with QKeras) and PyTorch (with Brevitas), each behind the same ``Framework`` interface.

``FRAMEWORKS`` lists them; ``framework_for_file`` picks one by a model file's
suffix and ``framework_of`` by the framework a translated graph came from;
``load_model`` translates a saved model into the float IR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import Framework, LoadedModel
from mlinfn_compress.compress.frameworks.keras.framework import KerasFramework
from mlinfn_compress.compress.frameworks.torch.framework import TorchFramework
from mlinfn_compress.compress.ir import Graph
from mlinfn_compress.errors import UserError

FRAMEWORKS: tuple[Framework, ...] = (KerasFramework(), TorchFramework())


def framework_for_file(path: Path) -> Framework:
    """The framework that reads a model file, by its suffix (UserError naming the formats for any other)."""
    suffix = path.suffix.lower()
    for framework in FRAMEWORKS:
        if suffix in framework.suffixes:
            return framework
    raise UserError(
        f"{path}: unsupported model format '{path.suffix}'; supported: Keras/QKeras .h5, .keras, or architecture "
        ".json with --weights; PyTorch/Brevitas .pt, .pth, .pkl (whole model, or state_dict with --model-class), "
        "TorchScript .ts"
    )


def framework_of(graph: Graph) -> Framework:
    """The framework a translated graph came from."""
    return next(f for f in FRAMEWORKS if graph.framework in f.graph_frameworks)


def load_model(
    path: Path,
    weights: Path | None = None,
    model_class: str | None = None,
    model_args: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> LoadedModel:
    """Load a model file with the framework its suffix names.

    ``model_class`` ("file.py:ClassName") and ``model_args`` (its constructor's
    keyword arguments) build the model a PyTorch state_dict belongs to;
    ``input_shape`` is one sample as a PyTorch model takes it (channels first).
    """
    if not path.exists():
        raise UserError(f"{path}: no such model file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give a model file (.h5, .keras, .json, .pt, .pth, .pkl or .ts)")
    framework = framework_for_file(path)
    framework.check_arguments(path, weights, model_class, model_args, input_shape)
    return framework.load(path, weights, model_class, model_args, input_shape)


__all__ = ["FRAMEWORKS", "Framework", "LoadedModel", "framework_for_file", "framework_of", "load_model"]
