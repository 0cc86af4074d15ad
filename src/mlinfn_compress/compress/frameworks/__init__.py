"""Frontends: translate a saved model into the float IR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import LoadedModel
from mlinfn_compress.errors import UserError

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras", ".json")
TORCH_SUFFIXES = (".pt", ".pth", ".pkl", ".ts", ".torchscript")


def load_model(
    path: Path,
    weights: Path | None = None,
    model_class: str | None = None,
    model_args: dict[str, Any] | None = None,
    input_shape: tuple[int, ...] | None = None,
) -> LoadedModel:
    """Load a model file with the frontend its suffix names.

    ``model_class`` ("file.py:ClassName") and ``model_args`` (its constructor's
    keyword arguments) build the model a PyTorch state_dict belongs to;
    ``input_shape`` is one sample as a PyTorch model takes it (channels first).
    """
    if not path.exists():
        raise UserError(f"{path}: no such model file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give a model file (.h5, .keras, .json, .pt, .pth, .pkl or .ts)")
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        if model_class is not None or model_args:
            raise UserError(f"{path}: --model-class and --model-args apply only to PyTorch models (.pt, .pth, .pkl)")
        if input_shape is not None:
            raise UserError(f"{path}: --input-shape applies only to PyTorch models; a Keras model fixes its own")
        from mlinfn_compress.compress.frameworks import keras

        return keras.load(path, weights)
    if suffix in TORCH_SUFFIXES:
        if weights is not None:
            raise UserError(
                f"{path}: --weights applies only to a Keras architecture .json; for a PyTorch state_dict "
                "pass --model-class FILE.py:ClassName"
            )
        from mlinfn_compress.compress.frameworks import torch

        return torch.load(path, model_class, model_args, input_shape)
    raise UserError(
        f"{path}: unsupported model format '{path.suffix}'; supported: Keras/QKeras .h5, .keras, or architecture "
        ".json with --weights; PyTorch/Brevitas .pt, .pth, .pkl (whole model, or state_dict with --model-class), "
        "TorchScript .ts"
    )


__all__ = ["LoadedModel", "load_model"]
