"""Frontends: translate a saved model into the float IR."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from .base import LoadedModel

KERAS_SUFFIXES = (".h5", ".hdf5", ".keras", ".json")


def load_model(path: Path, weights: Path | None = None) -> LoadedModel:
    """Load a model file with the frontend its suffix names."""
    if not path.exists():
        raise UserError(f"{path}: no such model file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; give a model file (.h5, .keras or .json)")
    if path.suffix.lower() in KERAS_SUFFIXES:
        from . import keras

        return keras.load(path, weights)
    raise UserError(
        f"{path}: unsupported model format '{path.suffix}'; supported: Keras/QKeras "
        ".h5, .keras, or architecture .json with --weights"
    )


__all__ = ["LoadedModel", "load_model"]
