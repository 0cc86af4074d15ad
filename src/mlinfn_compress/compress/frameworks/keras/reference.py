"""The source model's own inference, as the pipeline compares it: before a final softmax or sigmoid."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlinfn_compress.compress.frameworks.keras.tfkeras import keras3, linear, tf_keras
from mlinfn_compress.compress.frameworks.keras.walk import LayerCall, Walk, tensor_key

BATCH = 4096


def _api(model: Any) -> Any:
    """The Keras package the model belongs to (Keras 3 or tf_keras)."""
    return keras3() if type(model).__module__.startswith("keras.") else tf_keras()


def reference(walk: Walk, stop: tuple[LayerCall, bool] | None) -> Callable[[np.ndarray], np.ndarray]:
    """``run(x)``: the model on float inputs (N, *input_shape) or flat rows, as flat float64 rows.

    ``stop`` is the call whose final activation is left out: the model runs up
    to that call's input, and a layer with a fused activation (a Dense with
    ``activation="softmax"``) then runs with its activation switched off.
    """
    target, fused = walk.output[0], None
    if stop is not None:
        call, is_fused = stop
        target = walk.tensors[call.inputs[0]]
        fused = call.layer if is_fused else None
    sub = None if tensor_key(target) == walk.input_key else _api(walk.model).Model(walk.input, target)
    shape = tuple(int(d) for d in tuple(walk.input[0].shape)[1:])

    def run(x: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        x = np.asarray(x, dtype=np.float32).reshape(len(x), *shape)
        outs = []
        for start in range(0, len(x), BATCH):
            t = tf.constant(x[start : start + BATCH])
            if sub is not None:
                t = sub(t, training=False)
            if fused is not None:
                saved = fused.activation
                fused.activation = linear
                try:
                    t = fused(t, training=False)
                finally:
                    fused.activation = saved
            outs.append(np.asarray(t, dtype=np.float64).reshape(len(t), -1))
        if not outs:
            return np.zeros((0, int(np.prod(tuple(walk.output[0].shape)[1:]))))
        return np.concatenate(outs, axis=0)

    return run
