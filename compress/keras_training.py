"""Pruning and quantisation-aware fine-tuning of a tf_keras model on labelled data.

``prune_finetune`` prunes with tensorflow-model-optimization
(``prune_low_magnitude``, polynomial decay to the target sparsity over the
first two thirds of training) and returns the stripped float model with its
keep-masks.  ``qat_finetune`` rebuilds the model in QKeras (quantised weights
and ReLUs, integer bits from the weights' and activations' ranges), fine-tunes
it with the masks re-applied after every batch, and returns the QKeras model.

TensorFlow is imported only inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .data import Dataset
from .fixed import integer_bits_for
from .prune import check_target, prune_count
from .tfkeras import act_name, linear, qkeras_objects, tf_keras

Progress = Callable[[str], None] | None
DENSE = ("Dense", "QDense")
PASS_THROUGH = ("Dropout", "AlphaDropout", "GaussianDropout", "GaussianNoise")
BATCH_SIZE = 32
LEARNING_RATE = 1e-3


# ---- the model as a chain of layers ----


def _act_name(act: Any) -> str:
    """The activation's name, a quantised relu counting as relu."""
    return "relu" if type(act).__name__ == "quantized_relu" else act_name(act)


def _layers(model: Any) -> list[Any]:
    """The model's layers after the input, checked to form a single chain."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    for prev, layer in zip(layers, layers[1:], strict=False):
        inbound = [n.inbound_layers for n in layer._inbound_nodes]
        flat = [x for group in inbound for x in (group if isinstance(group, list) else [group])]
        if flat and prev not in flat:
            raise ValueError(f"layer '{layer.name}': only a chain of layers can be fine-tuned")
    return layers


def _kind(layer: Any) -> str:
    """'dense', 'relu', 'softmax', 'identity' or 'other' (what the layer does)."""
    cls = type(layer).__name__
    if cls in DENSE:
        return "dense"
    if cls in PASS_THROUGH:
        return "identity"
    if cls == "Softmax":
        return "softmax"
    if cls == "ReLU":
        cfg = layer.get_config()
        plain = cfg.get("max_value") is None and not cfg.get("negative_slope") and not cfg.get("threshold")
        return "relu" if plain else "other"
    if cls == "Activation":
        name = _act_name(layer.activation)
        return {"relu": "relu", "softmax": "softmax", "linear": "identity"}.get(name, "other")
    if cls == "QActivation" and type(layer.quantizer).__name__ == "quantized_relu":
        return "relu"
    return "other"


def _ends_in_softmax(model: Any) -> bool:
    last = model.layers[-1]
    if _kind(last) == "softmax":
        return True
    return type(last).__name__ in DENSE and _act_name(last.activation) == "softmax"


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

    class _Lines(tfk.callbacks.Callback):  # type: ignore[misc, name-defined]
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
    y = data.y_train if data.task == "classification" else data.y_train.astype(np.float32)
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
    """Prune every Dense kernel by magnitude while fine-tuning; returns (stripped model, keep-masks).

    The sparsity ramps from 0 to the target (``PolynomialDecay``) over about
    two thirds of the training steps; the rest fine-tunes with fixed masks.
    ``scope`` "global" converts one magnitude threshold over all kernels into
    per-layer targets.  Masks are boolean, keyed by layer name (kernel != 0).
    """
    import tensorflow_model_optimization as tfmot

    tfk = tf_keras()
    base = _copy(model)
    kernels = {layer.name: layer.get_weights()[0] for layer in _layers(base) if _kind(layer) == "dense"}
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
    masks = {
        layer.name: np.asarray(layer.get_weights()[0]) != 0 for layer in _layers(stripped) if _kind(layer) == "dense"
    }
    return stripped, masks


# ---- quantisation-aware training ----


def _layer_outputs(layers: list[Any], x: np.ndarray) -> list[np.ndarray]:
    import tensorflow as tf

    outs, t = [], tf.constant(x.astype(np.float32))
    for layer in layers:
        t = layer(t, training=False)
        outs.append(np.asarray(t, dtype=np.float64))
    return outs


def _weight_quantizer(values: np.ndarray, bits: int) -> Any:
    """quantized_bits(bits, I-1, alpha=1) with I from the values' range (QKeras needs I-1 >= 0)."""
    from qkeras import quantized_bits

    i = integer_bits_for(float(np.max(np.abs(values))) if values.size else 0.0, signed=True)
    return quantized_bits(bits, max(0, i - 1), alpha=1)


def _relu_quantizer(max_value: float, bits: int) -> Any:
    from qkeras import quantized_relu

    return quantized_relu(bits, max(0, integer_bits_for(max_value, signed=False)))


def quantised_copy(model: Any, x: np.ndarray, weight_bits: int, act_bits: int) -> Any:
    """The model rebuilt in QKeras with its weights: quantised kernels, biases and ReLUs.

    Integer bits come from each layer's weights and from the ReLU outputs on ``x``.
    The last Dense's output stays unquantised; a final softmax stays a softmax.
    """
    from qkeras import QActivation, QDense

    tfk = tf_keras()
    layers = _layers(model)
    outs = _layer_outputs(layers, x)
    new: list[Any] = [tfk.layers.Input(tuple(model.inputs[0].shape[1:]), name="input")]
    weights: dict[str, list[np.ndarray]] = {}
    for layer, out in zip(layers, outs, strict=True):
        kind = _kind(layer)
        top = float(np.max(out)) if out.size else 0.0
        if kind == "dense":
            act = _act_name(layer.activation)
            w = layer.get_weights()
            kernel = np.asarray(w[0])
            bias = np.asarray(w[1]) if layer.use_bias else np.zeros(kernel.shape[1])
            new.append(
                QDense(
                    kernel.shape[1],
                    kernel_quantizer=_weight_quantizer(kernel, weight_bits),
                    bias_quantizer=_weight_quantizer(bias, weight_bits),
                    use_bias=bool(layer.use_bias),
                    name=layer.name,
                )
            )
            weights[layer.name] = [kernel, bias] if layer.use_bias else [kernel]
            if act == "relu":
                new.append(QActivation(_relu_quantizer(top, act_bits), name=f"{layer.name}_relu"))
            elif act == "softmax":
                new.append(tfk.layers.Activation("softmax", name=f"{layer.name}_softmax"))
            elif act != "linear":
                raise ValueError(f"layer '{layer.name}': activation '{act}' cannot be quantised; use relu")
        elif kind == "relu":
            new.append(QActivation(_relu_quantizer(top, act_bits), name=layer.name))
        elif kind == "softmax":
            new.append(tfk.layers.Activation("softmax", name=layer.name))
        elif kind == "identity":
            new.append(type(layer).from_config(layer.get_config()))
        elif type(layer).__name__ == "QActivation":
            q = layer.quantizer
            new.append(QActivation(type(q).from_config(q.get_config()), name=layer.name))
        else:
            raise ValueError(f"layer '{layer.name}' ({type(layer).__name__}) cannot be quantisation-aware trained")
    qmodel = tfk.Sequential(new, name=model.name)
    for name, w in weights.items():
        qmodel.get_layer(name).set_weights(w)
    return qmodel


def _mask_callback(masks: dict[str, np.ndarray]) -> Any:
    tfk = tf_keras()

    class _KeepPruned(tfk.callbacks.Callback):  # type: ignore[misc, name-defined]
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


def logits(model: Any, x: np.ndarray, batch: int = 4096) -> np.ndarray:
    """The model's outputs before a final softmax (float64), run eagerly with the softmax switched off."""
    import tensorflow as tf

    last = model.layers[-1]
    strip = type(last).__name__ == "Activation" and _kind(last) == "softmax"
    strip = strip or (type(last).__name__ in DENSE and _act_name(last.activation) == "softmax")
    saved = last.activation if strip else None
    outs = []
    try:
        if strip:
            last.activation = linear
        for start in range(0, len(x), batch):
            t = tf.constant(np.asarray(x[start : start + batch], dtype=np.float32))
            outs.append(np.asarray(model(t, training=False), dtype=np.float64))
    finally:
        if strip:
            last.activation = saved
    return np.concatenate(outs, axis=0)


def evaluate(model: Any, data: Dataset) -> float:
    """Test accuracy (arg-max of the pre-softmax outputs) or mean squared error."""
    return data.score(logits(model, data.x_test), data.y_test)
