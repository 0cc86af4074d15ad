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


def tf_keras() -> Any:
    """The tf_keras module, with TF_USE_LEGACY_KERAS set before TensorFlow starts."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tf_keras" not in sys.modules:
        with native_stderr_silenced():
            import tensorflow as tf
            import tf_keras as _tfk  # noqa: F401

        tf.get_logger().setLevel(logging.ERROR)
    import tf_keras as tfk

    return tfk


def qkeras_objects() -> dict[str, Any]:
    """Custom objects that tf_keras needs to load a QKeras model."""
    tf_keras()
    from qkeras.utils import _add_supported_quantized_objects

    objs: dict[str, Any] = {}
    _add_supported_quantized_objects(objs)
    return objs


@contextmanager
def framework_warnings_hidden() -> Iterator[None]:
    """Hide tf_keras's and QKeras's Python warnings (legacy HDF5, constraint serialisation)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


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
