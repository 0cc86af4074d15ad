"""Pruning and quantisation-aware fine-tuning on real data (scikit-learn's digits, offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.frameworks.keras.training import evaluate, layer_sparsities, prune_finetune, qat_finetune
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise

SPARSITY = 0.7
PRUNE_EPOCHS = 8
QAT_EPOCHS = 8


def _seed(seed: int = 0) -> None:
    import tf_keras

    tf_keras.utils.set_random_seed(seed)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(x))
    n = int(0.75 * len(x))
    tr, te = order[:n], order[n:]
    return Dataset(x[tr] / 16.0, y[tr].astype(np.int64), x[te] / 16.0, y[te].astype(np.int64), "classification", 10)


@pytest.fixture(scope="module")
def float_model(digits: Dataset) -> tuple[Any, float]:
    import tf_keras as k

    _seed()
    model = k.Sequential(
        [
            k.layers.Input((64,)),
            k.layers.Dense(32, activation="relu", name="fc1"),
            k.layers.Dense(16, name="fc2"),
            k.layers.ReLU(name="relu2"),
            k.layers.Dense(10, name="out"),
            k.layers.Activation("softmax", name="softmax"),
        ],
        name="digits_mlp",
    )
    model.compile(optimizer=k.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(digits.x_train.astype(np.float32), digits.y_train, epochs=30, batch_size=32, verbose=0)
    accuracy = evaluate(model, digits)
    assert accuracy > 0.95
    return model, accuracy


@pytest.fixture(scope="module")
def pruned(digits: Dataset, float_model: tuple[Any, float]) -> tuple[Any, dict[str, np.ndarray], list[str]]:
    _seed()
    lines: list[str] = []
    model, masks = prune_finetune(float_model[0], digits, SPARSITY, "layer", PRUNE_EPOCHS, lines.append)
    return model, masks, lines


def kernels(model: Any) -> dict[str, np.ndarray]:
    return {layer.name: layer.get_weights()[0] for layer in model.layers if type(layer).__name__ == "Dense"}


def test_layer_sparsities_round_up_to_whole_weights() -> None:
    rng = np.random.default_rng(1)
    ks = {"a": rng.normal(size=(32, 16)), "b": rng.normal(size=(16, 10)) * 3}
    per_layer = layer_sparsities(ks, 0.7, "layer")
    assert per_layer == {"a": 1 - 153 / 512, "b": 1 - 48 / 160}  # 512 * 0.3 = 153.6 kept would be < 70%
    glob = layer_sparsities(ks, 0.7, "global")
    pruned = sum(round(glob[n] * k.size) for n, k in ks.items())
    assert pruned == 471 and glob  # ceil(0.7 * 672)["a"] > glob["b"]  # the larger weights of b survive
    with pytest.raises(ValueError, match="scope"):
        layer_sparsities(ks, 0.7, "channel")


@pytest.mark.slow
def test_prune_finetune_layer_scope(
    digits: Dataset, float_model: tuple[Any, float], pruned: tuple[Any, dict[str, np.ndarray], list[str]]
) -> None:
    model, masks, lines = pruned
    ks = kernels(model)
    assert set(ks) == set(masks) == {"fc1", "fc2", "out"}
    for name, k in ks.items():
        assert np.mean(k == 0) >= SPARSITY, name
        assert (masks[name] == (k != 0)).all()
    assert evaluate(model, digits) >= float_model[1] - 0.03
    assert len(lines) == PRUNE_EPOCHS
    assert lines[0].startswith(f"prune epoch 1/{PRUNE_EPOCHS}: loss ") and "accuracy 0." in lines[0]
    assert all(np.mean(k == 0) < 0.2 for k in kernels(float_model[0]).values())  # the input model is untouched
    assert [type(layer).__name__ for layer in model.layers] == ["Dense", "Dense", "ReLU", "Dense", "Activation"]


@pytest.mark.slow
def test_prune_finetune_global_scope(digits: Dataset, float_model: tuple[Any, float]) -> None:
    _seed()
    model, masks = prune_finetune(float_model[0], digits, SPARSITY, "global", PRUNE_EPOCHS, None)
    ks = kernels(model)
    zeros = sum(int(np.sum(k == 0)) for k in ks.values())
    assert zeros / sum(k.size for k in ks.values()) >= SPARSITY
    assert len({round(float(np.mean(k == 0)), 3) for k in ks.values()}) == 3  # layers pruned differently
    assert sum(int(np.sum(~m)) for m in masks.values()) == zeros
    assert evaluate(model, digits) >= float_model[1] - 0.03


@pytest.fixture(scope="module")
def qat(digits: Dataset, pruned: tuple[Any, dict[str, np.ndarray], list[str]]) -> tuple[Any, list[str]]:
    _seed()
    lines: list[str] = []
    model = qat_finetune(pruned[0], digits, pruned[1], 6, 6, QAT_EPOCHS, lines.append)
    return model, lines


@pytest.mark.slow
def test_qat_keeps_masks_and_accuracy(
    digits: Dataset,
    float_model: tuple[Any, float],
    pruned: tuple[Any, dict[str, np.ndarray], list[str]],
    qat: tuple[Any, list[str]],
) -> None:
    model, lines = qat
    masks = pruned[1]
    qdense = [layer for layer in model.layers if type(layer).__name__ == "QDense"]
    assert [layer.name for layer in qdense] == ["fc1", "fc2", "out"]
    for layer in qdense:
        q = layer.kernel_quantizer_internal(layer.kernel).numpy()
        assert (q[~masks[layer.name]] == 0).all(), layer.name
        assert str(layer.kernel_quantizer_internal).startswith("quantized_bits(6,")
    relus = [str(layer.quantizer) for layer in model.layers if type(layer).__name__ == "QActivation"]
    assert len(relus) == 2 and all(r.startswith("quantized_relu(6,") for r in relus)
    assert type(model.layers[-1]).__name__ == "Activation"
    assert evaluate(model, digits) >= float_model[1] - 0.03
    assert len(lines) == QAT_EPOCHS and lines[-1].startswith(f"qat epoch {QAT_EPOCHS}/{QAT_EPOCHS}: loss ")


def test_qat_model_verifies_bit_exact(digits: Dataset, qat: tuple[Any, list[str]], tmp_path: Path) -> None:
    from mlinfn_compress.compress.frameworks.keras.twin import build_twin, twin_logits

    path = tmp_path / "qat.h5"
    qat[0].save(path, include_optimizer=False)
    lm = load_model(path)
    g = lm.graph
    assert g.framework == "qkeras" and lm.reference_exact
    quantise(g, QuantConfig(weight_bits=6, act_bits=6), default_inputs(4096, g.input_size))
    assert g.input_type is not None and g.output.result_type is not None
    for x in (digits.x_test, default_inputs(1000, g.input_size, seed=5)):
        x_int = quantize(x, g.input_type)
        x_q = to_float(x_int, g.input_type.frac)
        gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
        assert (lm.reference(x_q) == gold).all()
        assert (twin_logits(build_twin(g), x_q) == gold).all()
    argmax = golden.run(g, quantize(digits.x_test, g.input_type))["argmax"]
    assert np.mean(argmax == digits.y_test) == pytest.approx(evaluate(qat[0], digits), abs=0.01)
    assert all(n.sparsity() >= SPARSITY for n in g.nodes if n.kind == "dense")


@pytest.mark.slow
def test_regression_runs_with_mse(digits: Dataset) -> None:
    import tf_keras as k

    data = Dataset(
        digits.x_train,
        digits.y_train.reshape(-1, 1) / 9.0,
        digits.x_test,
        digits.y_test.reshape(-1, 1) / 9.0,
        "regression",
        0,
    )
    _seed()
    model = k.Sequential([k.layers.Input((64,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(1)])
    lines: list[str] = []
    pruned, masks = prune_finetune(model, data, 0.5, "layer", 2, lines.append)
    assert "mse" in lines[-1] and all(np.mean(~m) >= 0.5 for m in masks.values())
    q = qat_finetune(pruned, data, masks, 8, 8, 2, None)
    assert 0.0 < evaluate(q, data) < 0.2


def test_regression_targets_take_the_output_shape() -> None:
    """Targets of an image-to-image model arrive as flat rows; QAT fits them in the model's (H, W, C) shape
    (the per-pixel error, not a broadcast of every pixel against every other)."""
    import tf_keras as k

    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (96, 6, 6, 1))
    y = (x > 0.5).astype(np.float64).reshape(96, -1)  # flat rows, as load_dataset gives them
    data = Dataset(x[:64], y[:64], x[64:], y[64:], "regression", 0)
    _seed()
    inp = k.layers.Input((6, 6, 1))
    out = k.layers.Conv2D(1, 1)(k.layers.Conv2D(2, 3, padding="same", activation="relu")(inp))
    q = qat_finetune(k.Model(inp, out), data, {}, 8, 8, 2, None)
    assert q.output_shape == (None, 6, 6, 1) and np.isfinite(evaluate(q, data))
