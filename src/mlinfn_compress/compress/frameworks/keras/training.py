"""Pruning and quantisation-aware fine-tuning of a tf_keras model on labelled data.

``prune_finetune`` prunes every Dense, Conv1D and Conv2D kernel with
tensorflow-model-optimization (``prune_low_magnitude``, polynomial decay to the
target sparsity over the first two thirds of training) and returns the
stripped float model with its keep-masks.  ``qat_finetune`` rebuilds the model
in QKeras (``keras_qat``: quantised weights and ReLUs, integer bits from the
weights' and activations' ranges), fine-tunes it with the masks re-applied
after every batch, and returns the QKeras model.  Both take Sequential and
functional models (branches, skip connections).

TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.frameworks.keras.qat import act_kind, layer_kind, quantised_copy
from mlinfn_compress.compress.frameworks.keras.reference import reference
from mlinfn_compress.compress.frameworks.keras.tfkeras import qkeras_objects, tf_keras
from mlinfn_compress.compress.frameworks.keras.walk import LayerCall, Walk
from mlinfn_compress.compress.passes.prune import check_target, prune_count

Progress = Callable[[str], None] | None
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


# ---- the model's graph ----


def _output_call(model: Any) -> tuple[Walk, LayerCall | None]:
    walk = Walk(model)
    return walk, walk.producer(walk.output_key) if walk.output else None


def _final_softmax(model: Any) -> tuple[LayerCall, bool] | None:
    """The call that applies the model's final softmax, and whether it is fused into a layer (None: none)."""
    _, call = _output_call(model)
    if call is None:
        return None
    if layer_kind(call.layer) == "softmax":
        return call, False
    if layer_kind(call.layer) == "weighted" and act_kind(call.layer.activation) == "softmax":
        return call, True
    return None


def _ends_in_softmax(model: Any) -> bool:
    return _final_softmax(model) is not None


def _weighted_layers(model: Any) -> list[Any]:
    """The dense and convolution layers, whose kernels pruning thins out."""
    return [layer for layer in model.layers if layer_kind(layer) == "weighted"]


def _copy(model: Any) -> Any:
    """A tf_keras copy of ``model`` (clone + weights)."""

    tfk = tf_keras()
    with tfk.utils.custom_object_scope(qkeras_objects()):
        clone = tfk.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def _compile(model: Any, data: Dataset, learning_rate: float, softmax: bool) -> None:
    tfk = tf_keras()
    if data.task == "classification":
        loss = tfk.losses.SparseCategoricalCrossentropy(from_logits=not softmax)
        metrics = ["accuracy"]
    else:
        loss, metrics = tfk.losses.MeanSquaredError(), ["mse"]
    model.compile(optimizer=tfk.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)


def _progress_callback(stage: str, epochs: int, data: Dataset, progress: Progress) -> Any:
    tfk = tf_keras()

    class _Lines(tfk.callbacks.Callback):  # type: ignore[misc, name-defined]  # tf_keras is untyped: its Callback is Any to mypy
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            if progress is None:
                return
            logs = logs or {}
            metric = logs.get(data.metric, float("nan"))
            progress(
                f"{stage} epoch {epoch + 1}/{epochs}: loss {logs.get('loss', float('nan')):.4f}, "
                f"{data.metric} {metric:.4f}"
            )

    return _Lines()


def _fit(model: Any, data: Dataset, epochs: int, callbacks: list[Any], batch_size: int) -> None:
    if data.task == "classification":
        y = data.y_train
    else:  # regression targets are flat rows: back to the model's output shape (a sequence, an image)
        y = data.y_train.astype(np.float32).reshape(len(data.y_train), *model.output_shape[1:])
    model.fit(data.x_train.astype(np.float32), y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks)


# ---- pruning ----


def layer_sparsities(kernels: dict[str, np.ndarray], sparsity: float, scope: str) -> dict[str, float]:
    """Per-layer target sparsity: the same for every layer, or from one global magnitude threshold.

    Every target is ``1 - keep/size`` for a whole number of kept weights, so
    tfmot (which keeps ``round(size * (1 - s))``) prunes at least the target.
    """
    check_target(sparsity, scope)
    if scope == "layer":
        return {n: prune_count(k.size, sparsity) / k.size for n, k in kernels.items()}
    flat = np.sort(np.concatenate([np.abs(k).ravel() for k in kernels.values()]))
    n_prune = math.ceil(sparsity * flat.size - 1e-9)
    if n_prune == 0:
        return {n: 0.0 for n in kernels}
    threshold = flat[n_prune - 1]
    out = {}
    for n, k in kernels.items():
        pruned = int(np.sum(np.abs(k) <= threshold))
        out[n] = 1.0 - max(1, k.size - pruned) / k.size
    return out


def prune_finetune(
    model: Any,
    data: Dataset,
    sparsity: float,
    scope: str,
    epochs: int,
    progress: Progress = None,
    *,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
) -> tuple[Any, dict[str, np.ndarray]]:
    """Prune every dense and convolution kernel by magnitude while fine-tuning; returns (stripped model, keep-masks).

    The sparsity ramps from 0 to the target (``PolynomialDecay``) over about
    two thirds of the training steps; the rest fine-tunes with fixed masks.
    ``scope`` "global" converts one magnitude threshold over all kernels into
    per-layer targets.  Masks are boolean, keyed by layer name (kernel != 0).
    """
    import tensorflow_model_optimization as tfmot

    tfk = tf_keras()
    base = _copy(model)
    kernels = {layer.name: layer.get_weights()[0] for layer in _weighted_layers(base)}
    targets = layer_sparsities(kernels, sparsity, scope)
    steps = math.ceil(len(data.x_train) / batch_size) * epochs
    end = max(1, (2 * steps) // 3)
    frequency = max(1, end // 10)
    end = max(frequency, (end // frequency) * frequency)  # the last update falls on end_step
    sparsity_api = tfmot.sparsity.keras

    def wrap(layer: Any) -> Any:
        if layer.name not in targets or targets[layer.name] <= 0:
            return layer
        schedule = sparsity_api.PolynomialDecay(0.0, targets[layer.name], 0, end, frequency=frequency)
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruned = tfk.models.clone_model(base, clone_function=wrap)
    _compile(pruned, data, learning_rate, _ends_in_softmax(base))
    callbacks = [sparsity_api.UpdatePruningStep(), _progress_callback("prune", epochs, data, progress)]
    _fit(pruned, data, epochs, callbacks, batch_size)
    stripped = _copy(sparsity_api.strip_pruning(pruned))  # a model of its own, sharing no layers
    masks = {layer.name: np.asarray(layer.get_weights()[0]) != 0 for layer in _weighted_layers(stripped)}
    return stripped, masks


# ---- quantisation-aware training ----


def _mask_callback(masks: dict[str, np.ndarray]) -> Any:
    tfk = tf_keras()

    class _KeepPruned(tfk.callbacks.Callback):  # type: ignore[misc, name-defined]  # tf_keras is untyped: its Callback is Any to mypy
        """Multiply kernels by their masks before training and after every batch."""

        def apply(self) -> None:
            for name, mask in masks.items():
                kernel = self.model.get_layer(name).kernel
                kernel.assign(kernel * mask.astype(kernel.dtype.as_numpy_dtype))

        def on_train_begin(self, logs: dict[str, float] | None = None) -> None:
            self.apply()

        def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
            self.apply()

    return _KeepPruned()


def qat_finetune(
    model: Any,
    data: Dataset,
    masks: dict[str, np.ndarray] | None,
    weight_bits: int,
    act_bits: int,
    epochs: int,
    progress: Progress = None,
    *,
    batch_size: int = BATCH_SIZE,
    learning_rate: float = LEARNING_RATE,
) -> Any:
    """Fine-tune ``model`` rebuilt in QKeras; pruned weights (mask 0) stay exactly zero."""
    qmodel = quantised_copy(model, data.x_train, weight_bits, act_bits)
    masks = masks or {}
    for name in masks:
        if qmodel.get_layer(name).kernel.shape != masks[name].shape:
            raise ValueError(f"mask for layer '{name}' has shape {masks[name].shape}, the kernel another")
    _compile(qmodel, data, learning_rate, _ends_in_softmax(qmodel))
    callbacks = [_mask_callback(masks), _progress_callback("qat", epochs, data, progress)]
    _fit(qmodel, data, epochs, callbacks, batch_size)
    return qmodel


# ---- evaluation ----


def logits(model: Any, x: np.ndarray) -> np.ndarray:
    """The model's outputs before a final softmax (float64 rows), as the Keras frontend reads them."""
    walk, _ = _output_call(model)
    return reference(walk, _final_softmax(model))(np.asarray(x))


def evaluate(model: Any, data: Dataset) -> float:
    """Test accuracy (arg-max of the pre-softmax outputs) or mean squared error."""
    return data.score(logits(model, data.x_test), data.y_test)
