"""Keras / QKeras frontend: translate a saved model into the float IR.

Reads legacy HDF5 (tf.keras / tf_keras), ``.keras`` archives (Keras 3 or
tf_keras), and architecture JSON + weights HDF5; walks the model's layer
graph (Sequential or functional, with branches) into IR nodes.  QKeras
layers are read with their quantisers; the quantised weights are taken from
QKeras itself.
"""

from __future__ import annotations

from pathlib import Path

from ..base import LoadedModel
from .files import load_keras_file
from .reference import reference
from .translate import SUPPORTED, Translator


def load(path: Path, weights: Path | None = None) -> LoadedModel:
    model = load_keras_file(path, weights)
    tr = Translator(path, model)
    graph = tr.translate()
    exact = tr.exact and tr.quantised_by_model
    return LoadedModel(graph=graph, reference=reference(tr.walk, tr.stop), reference_exact=exact, model=model)


__all__ = ["SUPPORTED", "load", "load_keras_file"]
