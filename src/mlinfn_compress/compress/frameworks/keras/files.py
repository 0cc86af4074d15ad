"""Reading a saved Keras model: legacy HDF5 (tf.keras / tf_keras), ``.keras`` archives
(Keras 3 or tf_keras), and architecture JSON + weights HDF5, QKeras layers included."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from mlinfn_compress.compress.frameworks.base import short_error
from mlinfn_compress.compress.frameworks.keras.tfkeras import keras3, qkeras_objects, tf_keras
from mlinfn_compress.errors import UserError


def _saved_keras_version(path: Path) -> str:
    """The Keras version recorded in a saved file ('' when unknown)."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as z:
                meta = json.loads(z.read("metadata.json"))
                return str(meta.get("keras_version", ""))
        import h5py

        with h5py.File(path, "r") as f:
            v = f.attrs.get("keras_version", b"")
            return v.decode() if isinstance(v, bytes) else str(v)
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read the model file ({e}); is it a complete Keras model?") from e


def load_keras_file(path: Path, weights: Path | None = None) -> Any:
    """Load a Keras model object from the supported file forms."""
    if path.suffix == ".json":
        if weights is None:
            for cand in (path.with_name(path.stem + "_weights.h5"), path.with_suffix(".h5")):
                if cand.exists():
                    weights = cand
                    break
        if weights is None or not weights.exists():
            raise UserError(
                f"{path}: an architecture JSON needs its weights; pass --weights FILE.h5 "
                f"(looked for {path.stem}_weights.h5 beside it)"
            )
        tfk = tf_keras()
        try:
            arch = _legacy_quantizers(json.loads(path.read_text()))
            model = tfk.models.model_from_json(json.dumps(arch), custom_objects=qkeras_objects())
            model.load_weights(str(weights))
        except Exception as e:  # noqa: BLE001 - any loader failure is a bad input
            raise UserError(f"{path} + {weights}: cannot load the model ({short_error(e)})") from e
        return model
    if path.suffix not in (".h5", ".hdf5", ".keras"):
        raise UserError(f"{path}: unknown model format; expected .h5, .keras or .json (+ weights)")
    version = _saved_keras_version(path)
    try:
        if version.startswith("3"):
            return keras3().saving.load_model(str(path), compile=False)
        tfk = tf_keras()
        return tfk.models.load_model(str(path), custom_objects=qkeras_objects(), compile=False)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UserError(f"{path}: cannot load the model ({short_error(e)})") from e


def _legacy_quantizers(obj: Any, nested: bool = False) -> Any:
    """Rewrite QKeras quantisers nested in layer configs into the form QKeras can read back.

    tf_keras's ``to_json`` writes them as ``{"module", "class_name", "config",
    "registered_name"}``, which QKeras layers cannot deserialise from JSON.
    """
    if isinstance(obj, list):
        return [_legacy_quantizers(v, True) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if nested and str(obj.get("module", "")).startswith("qkeras.quantizers") and "config" in obj:
        return {"class_name": obj["class_name"], "config": obj["config"], "__passive_serialization__": True}
    return {k: _legacy_quantizers(v, True) for k, v in obj.items()}
