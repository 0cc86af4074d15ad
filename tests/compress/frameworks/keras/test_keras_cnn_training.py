"""Pruning and quantisation-aware training of convolutional and functional Keras models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from keras_check import NARROW_INPUT, randomise

from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.frameworks.keras.qat import quantised_copy
from mlinfn_compress.compress.frameworks.keras.training import logits, prune_finetune, qat_finetune
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, quantise


def k() -> Any:
    import tf_keras

    return tf_keras


def cnn() -> Any:
    """A functional CNN with a batch norm, a skip connection and a fused softmax."""
    L = k().layers
    inp = L.Input((6, 6, 2))
    x = L.Conv2D(4, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = L.ReLU(name="relu1")(L.BatchNormalization(name="bn1")(x))
    y = L.Conv2D(4, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.MaxPooling2D(name="pool")(L.Add(name="add")([x, y]))
    x = L.Conv1D(3, 2, name="conv3")(L.Reshape((9, 4), name="rows")(x))
    out = L.Dense(3, activation="softmax", name="out")(L.Flatten(name="flat")(x))
    return randomise(k().Model(inp, out, name="cnn"))


@pytest.fixture(scope="module")
def data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 6, 6, 2))
    y = (x[:, :3].sum(axis=(1, 2, 3)) > 0).astype(np.int64) + (x[:, 3:, :, 0].sum(axis=(1, 2)) > 0)
    return Dataset(x[:64], y[:64], x[64:], y[64:], "classification", 3)


@pytest.fixture(scope="module")
def pruned(data: Dataset) -> tuple[Any, dict[str, np.ndarray]]:
    k().utils.set_random_seed(0)
    return prune_finetune(cnn(), data, 0.6, "layer", 3)


@pytest.mark.slow
def test_pruning_thins_every_convolution_and_dense_kernel(pruned: tuple[Any, dict[str, np.ndarray]]) -> None:
    model, masks = pruned
    assert set(masks) == {"conv1", "conv2", "conv3", "out"}
    for name, mask in masks.items():
        kernel = model.get_layer(name).get_weights()[0]
        assert np.mean(kernel == 0) >= 0.6 and (mask == (kernel != 0)).all(), name
    assert [layer.name for layer in model.layers[1:]] == [layer.name for layer in cnn().layers[1:]]


def test_qat_copy_folds_the_batch_norm_and_quantises_every_relu(
    pruned: tuple[Any, dict[str, np.ndarray]], data: Dataset
) -> None:
    q = quantised_copy(pruned[0], data.x_train, 8, 8)
    kinds = {layer.name: type(layer).__name__ for layer in q.layers}
    assert "bn1" not in kinds and kinds["conv1"] == "QConv2D" and kinds["conv3"] == "QConv1D"
    assert kinds["out"] == "QDense" and kinds["out_softmax"] == "Activation"
    relus = [str(layer.quantizer) for layer in q.layers if type(layer).__name__ == "QActivation"]
    assert len(relus) == 2 and all(r.startswith("quantized_relu(8,") for r in relus)
    assert q.get_layer("conv1").use_bias  # the batch norm's shift became its bias
    agree = np.argmax(logits(q, data.x_test), 1) == np.argmax(logits(pruned[0], data.x_test), 1)
    assert np.mean(agree) > 0.8  # 8-bit weights: close to the float model


def test_qat_model_keeps_masks_and_equals_qkeras_bit_for_bit(
    pruned: tuple[Any, dict[str, np.ndarray]], data: Dataset, tmp_path: Path
) -> None:
    k().utils.set_random_seed(0)
    model, masks = pruned
    q = qat_finetune(model, data, masks, 6, 6, 2)
    for name, mask in masks.items():
        layer = q.get_layer(name)
        assert (layer.kernel_quantizer_internal(layer.kernel).numpy()[~mask] == 0).all(), name
    path = tmp_path / "qat.h5"
    q.save(path, include_optimizer=False)
    lm = load_model(path)
    g = lm.graph
    assert lm.reference_exact and g.framework == "qkeras"
    assert [n.kind for n in g.nodes] == ["conv2d", "relu", "conv2d", "relu", "add", "max_pool2d", "reshape",
                                         "conv1d", "flatten", "dense"]  # fmt: skip
    assert quantise(g, QuantConfig(input_type=NARROW_INPUT), data.x_train) == []
    x_int = quantize(data.x_test, NARROW_INPUT)
    assert g.output.result_type is not None
    out = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    assert (lm.reference(to_float(x_int, NARROW_INPUT.frac)) == out).all()


def test_a_layer_that_cannot_be_quantised_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    L = k().layers
    inp = L.Input((5, 2))
    out = L.Dense(2, name="out")(L.Flatten()(L.Conv1D(3, 2, activation="tanh", name="conv")(inp)))
    path = tmp_path / "tanh.h5"
    k().Model(inp, out).save(path)
    rng = np.random.default_rng(0)
    data = tmp_path / "d.npz"
    np.savez(data, x_train=rng.normal(size=(20, 5, 2)), y_train=rng.integers(0, 2, 20),
             x_test=rng.normal(size=(8, 10)), y_test=rng.integers(0, 2, 8))  # fmt: skip
    assert main([str(path), "--data", str(data), "--qat", "--epochs", "1", "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "tanh.h5: cannot fine-tune the model: layer 'conv': activation 'tanh' cannot be quantised; use relu" in err
