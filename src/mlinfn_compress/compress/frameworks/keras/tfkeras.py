"""Starting tf_keras (Keras 2 objects, as QKeras and tfmot need) and small shared helpers."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Hide what TensorFlow's C++ side prints while it starts (it ignores the log level then)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


LEGACY_KERAS_HELP = (
    "TensorFlow was imported with Keras 3 as tf.keras, but QKeras and tensorflow-model-optimization need "
    "tf_keras: set TF_USE_LEGACY_KERAS=1 before TensorFlow is first imported (importing mlinfn_compress "
    "first does it); Keras 3 models still load, through `import keras`"
)


def tensorflow() -> Any:
    """TensorFlow, started so that ``tf.keras`` is tf_keras; every import of TensorFlow goes through here.

    TensorFlow decides at its first import what ``tensorflow.keras`` is; QKeras
    imports ``tensorflow.keras`` and breaks on Keras 3.  Importing Keras 3
    (``import keras``) also imports TensorFlow, so it must come after this.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    first = "tensorflow" not in sys.modules
    if first:
        with native_stderr_silenced():
            import tensorflow as tf
    import tensorflow as tf

    if first:
        tf.get_logger().setLevel(logging.ERROR)
    if not getattr(tf, "_tf_uses_legacy_keras", True):
        from mlinfn_compress.errors import UserError

        raise UserError(LEGACY_KERAS_HELP)
    return tf


def tf_keras() -> Any:
    """The tf_keras module (Keras 2 objects, as QKeras and tfmot need), TensorFlow started without its chatter.

    Public as ``mlinfn_compress.tf_keras()``: a notebook that calls it before
    importing TensorFlow gets ``tf.keras`` as tf_keras and a quiet start.
    """
    tensorflow()
    if "tf_keras" not in sys.modules:
        with native_stderr_silenced():
            import tf_keras as _tfk  # noqa: F401
    import tf_keras as tfk

    return tfk


def keras3() -> Any:
    """The Keras 3 package, imported after TensorFlow has been started for tf_keras."""
    tensorflow()
    with native_stderr_silenced():
        import keras

    return keras


def qkeras_objects() -> dict[str, Any]:
    """Custom objects that tf_keras needs to load a QKeras model."""
    tf_keras()
    from qkeras.utils import _add_supported_quantized_objects

    objs: dict[str, Any] = {}
    _add_supported_quantized_objects(objs)
    return objs


@contextmanager
def framework_warnings_hidden() -> Iterator[None]:
    """Hide tf_keras's and QKeras's Python warnings (legacy HDF5, constraint serialisation) and TensorFlow's
    logged ones (saving a model that was never compiled says its metrics are not built)."""
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def act_name(act: Any) -> str:
    """The name of a Keras activation (function, string or None)."""
    if act is None:
        return "linear"
    if isinstance(act, str):
        return act
    return str(getattr(act, "__name__", type(act).__name__))


def linear(x: Any) -> Any:
    """The identity activation, swapped in to read a model's outputs before its softmax."""
    return x
