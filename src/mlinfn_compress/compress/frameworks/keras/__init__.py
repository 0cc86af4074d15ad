"""Keras / QKeras frontend: translate a saved model into the float IR.

Reads legacy HDF5 (tf.keras / tf_keras), ``.keras`` archives (Keras 3 or
tf_keras), and architecture JSON + weights HDF5; walks the model's layer
graph (Sequential or functional, with branches) into IR nodes.  QKeras
layers are read with their quantisers; the quantised weights are taken from
QKeras itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import LoadedModel, check_finite
from mlinfn_compress.compress.frameworks.keras.files import load_keras_file
from mlinfn_compress.compress.frameworks.keras.reference import reference
from mlinfn_compress.compress.frameworks.keras.translate import SUPPORTED, Translator


def load(path: Path, weights: Path | None = None) -> LoadedModel:
    model = load_keras_file(path, weights)
    check_finite(path.name, parameters(model))
    tr = Translator(path, model)
    graph = tr.translate()
    exact = tr.exact and tr.quantised_by_model
    return LoadedModel(graph=graph, reference=reference(tr.walk, tr.stop), reference_exact=exact, model=model)


def parameters(model: Any) -> Iterator[tuple[str, str, str, Any]]:
    """(layer, class, parameter, values) of every weight of the model, nested models' layers included."""
    for layer in model.layers:
        if hasattr(layer, "layers"):
            yield from parameters(layer)
            continue
        for w in layer.weights:
            name = str(getattr(w, "path", None) or w.name).split("/")[-1].split(":")[0]
            yield layer.name, type(layer).__name__, name, w.numpy()


__all__ = ["SUPPORTED", "load", "load_keras_file"]
