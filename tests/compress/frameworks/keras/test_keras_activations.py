"""Activations and QKeras layers: clips, leaky relus, hard sigmoid / tanh, lookup tables, and the QKeras
quantisers, whose converted models equal QKeras's own inference bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from keras_check import check, ops, randomise

from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import Clip, LeakyRelu, Linear, Table


def k() -> Any:
    import tf_keras

    return tf_keras


def chain(shape: tuple[int, ...], *layers: Any, name: str = "m", api: Any = None) -> Any:
    api = api or k()
    x = inp = api.layers.Input(shape)
    for layer in layers:
        x = layer(x)
    return randomise(api.Model(inp, x, name=name), scale=0.8)


@pytest.mark.parametrize(
    ("layer", "want"),
    [
        ("Activation('relu')", ["relu"]),
        ("ReLU(max_value=6.0)", ["relu6"]),
        ("ReLU(max_value=2.5, negative_slope=0.125)", ["leaky_relu", "clipped_relu"]),
        ("LeakyReLU(0.3)", ["leaky_relu"]),
        ("Activation('hard_sigmoid')", ["hard_sigmoid"]),  # its scale and shift fold into the dense
        ("Activation('sigmoid')", ["sigmoid"]),
        ("Activation('tanh')", ["tanh"]),
    ],
)
def test_tf_keras_activation(layer: str, want: list[str], tmp_path: Path) -> None:
    L = k().layers
    act = eval(f"L.{layer}", {"L": L})  # noqa: S307 - the test's own table
    c = check(chain((3, 4), L.Dense(4, name="fc"), act, L.Flatten(name="flat"), L.Dense(2, name="out")), tmp_path)
    assert ops(c.graph) == ["dense", *want, "flatten", "dense"]


def test_tf_keras_hard_sigmoid_slope_is_one_fifth(tmp_path: Path) -> None:
    L = k().layers
    c = check(chain((5,), L.Activation("hard_sigmoid", name="hs"), L.Dense(3, name="fc")), tmp_path)
    assert ops(c.graph) == ["batchnorm", "hard_sigmoid", "dense"]
    scale = c.graph.node("hs_scale")
    assert isinstance(scale, Linear) and np.allclose(np.diag(scale.weight), np.float32(0.2))


@pytest.mark.parametrize(
    ("activation", "want"),
    [("hard_sigmoid", ["batchnorm", "hard_sigmoid"]), ("hard_tanh", ["hard_tanh"]), ("relu6", ["relu6"]),
     ("leaky_relu", ["leaky_relu"]), ("tanh", ["tanh"])],
)  # fmt: skip
def test_keras3_activation(activation: str, want: list[str], tmp_path: Path) -> None:
    import keras

    L = keras.layers
    m = chain((6,), L.Activation(activation, name="act"), L.Dense(2, name="out"), api=keras)
    c = check(m, tmp_path, suffix=".keras")
    assert ops(c.graph) == [*want, "dense"]
    if activation == "hard_sigmoid":  # Keras 3: relu6(x + 3) / 6
        assert np.allclose(np.diag(c.graph.node("act_scale").weight), 1 / 6)


def test_hard_sigmoid_after_a_dense_folds_its_scale(tmp_path: Path) -> None:
    """A float Dense with activation="hard_sigmoid": the slope and offset join the dense layer's weights."""
    L = k().layers
    c = check(chain((5,), L.Dense(3, activation="hard_sigmoid", name="fc")), tmp_path)
    assert ops(c.graph) == ["dense", "hard_sigmoid"]


def test_sigmoid_table_error_is_small(tmp_path: Path) -> None:
    L = k().layers
    layers = (L.Dense(4, name="fc"), L.Activation("sigmoid", name="sig"), L.Dense(2, name="out"))
    c = check(chain((4,), *layers), tmp_path, tolerance=0.01)
    t = c.graph.node("sig")
    assert isinstance(t, Table) and t.index_type is not None and len(t.table_int) == 2**t.index_type.width


# ---- QKeras: formats fixed by the model, compared with QKeras bit for bit ----


def q6() -> Any:
    from qkeras import quantized_bits

    return quantized_bits(6, 0, alpha=1)


@pytest.mark.parametrize(
    ("dims", "strides", "padding"), [(1, 1, "valid"), (1, 2, "same"), (2, 1, "same"), (2, 2, "valid")]
)
def test_qconv_matches_qkeras(dims: int, strides: int, padding: str, tmp_path: Path) -> None:
    from qkeras import QActivation, QConv1D, QConv2D, QDense, quantized_relu

    L = k().layers
    conv = (QConv1D if dims == 1 else QConv2D)(
        3, 3, strides=strides, padding=padding, kernel_quantizer=q6(), bias_quantizer=q6(), name="conv"
    )
    shape = (9, 2) if dims == 1 else (6, 6, 2)
    layers = (conv, QActivation(quantized_relu(6, 2), name="relu"), L.Flatten(name="flat"),
              QDense(2, kernel_quantizer=q6(), bias_quantizer=q6(), name="out"))  # fmt: skip
    c = check(chain(shape, *layers), tmp_path, exact=True)
    assert c.graph.framework == "qkeras" and ops(c.graph) == [f"conv{dims}d", "relu", "flatten", "dense"]
    conv_node = c.graph.nodes[0]
    assert isinstance(conv_node, Linear) and str(conv_node.weight_type) == "fixed<6,1,RND_CONV,SAT>"


def quantised_activation(act: Any, tmp_path: Path, narrow: bool = False, exact: bool = True) -> Any:
    """QDense -> (a narrow quantized_bits) -> QActivation(act) -> QDense, checked against QKeras."""
    from qkeras import QActivation, QDense, quantized_bits

    layers = [QDense(6, kernel_quantizer=q6(), bias_quantizer=q6(), name="fc")]
    if narrow:
        layers.append(QActivation(quantized_bits(9, 3, alpha=1), name="narrow"))
    layers += [QActivation(act, name="act"), QDense(2, kernel_quantizer=q6(), bias_quantizer=q6(), name="out")]
    return check(chain((5,), *layers), tmp_path, exact=exact, n=300)


def test_quantized_relu_with_negative_slope(tmp_path: Path) -> None:
    from qkeras import quantized_relu

    c = quantised_activation(quantized_relu(5, 1, negative_slope=0.25), tmp_path)
    assert ops(c.graph) == ["dense", "clip", "leaky_relu", "dense"]
    leaky = c.graph.node("act")
    assert isinstance(leaky, LeakyRelu) and leaky.result_type == FixedType(5, 2, True, "RND_CONV", "SAT")
    assert c.graph.node("act_floor").lo == -2.0  # QKeras stops the negative side at -0.25 * 2**1


@pytest.mark.parametrize("symmetric", [False, True])
def test_quantized_tanh_is_a_hard_tanh(symmetric: bool, tmp_path: Path) -> None:
    from qkeras import quantized_tanh

    c = quantised_activation(quantized_tanh(5, symmetric=symmetric), tmp_path)
    node = c.graph.node("act")
    assert isinstance(node, Clip) and node.kind == "hard_tanh" and (node.lo, node.hi) == (-1.0, 1.0)
    assert str(node.result_type) == f"fixed<5,1,RND_CONV,{'SAT_SYM' if symmetric else 'SAT'}>"


def test_quantized_sigmoid_is_a_hard_sigmoid(tmp_path: Path) -> None:
    from qkeras import quantized_sigmoid

    c = quantised_activation(quantized_sigmoid(6), tmp_path)
    assert ops(c.graph) == ["dense", "batchnorm", "hard_sigmoid", "dense"]
    assert str(c.graph.node("act").result_type) == "ufixed<6,0,RND_CONV,SAT>"


@pytest.mark.parametrize("function", ["tanh", "sigmoid"])
def test_real_tanh_and_sigmoid_tables_are_exact_on_a_narrow_input(function: str, tmp_path: Path) -> None:
    from qkeras import quantized_sigmoid, quantized_tanh

    act = quantized_tanh(6, use_real_tanh=True) if function == "tanh" else quantized_sigmoid(7, use_real_sigmoid=True)
    c = quantised_activation(act, tmp_path, narrow=True)
    table = c.graph.node("act")
    assert isinstance(table, Table) and table.function == function
    assert table.index_type == c.graph.node("narrow").result_type  # one entry per input value


def test_real_tanh_on_a_wide_input_says_it_is_not_exact(tmp_path: Path) -> None:
    from qkeras import quantized_tanh

    c = quantised_activation(quantized_tanh(6, use_real_tanh=True), tmp_path, exact=False)
    assert c.chosen == ["act"]
    assert any("so it is not exact against the model's own function" in note for note in c.graph.node("act").notes)


def test_quantized_bits_activation_is_a_cast(tmp_path: Path) -> None:
    from qkeras import quantized_bits

    c = quantised_activation(quantized_bits(7, 2, alpha=1, symmetric=True), tmp_path)
    assert ops(c.graph) == ["dense", "cast", "dense"]
    assert str(c.graph.node("act").result_type) == "fixed<7,3,RND_CONV,SAT_SYM>"


def test_qbatchnormalization_uses_its_quantisers(tmp_path: Path) -> None:
    from qkeras import QActivation, QBatchNormalization, QDense, quantized_relu

    layers = (QDense(4, kernel_quantizer=q6(), bias_quantizer=q6(), name="fc"),
              QBatchNormalization(name="bn"), QActivation(quantized_relu(8, 3), name="relu"))  # fmt: skip
    c = check(chain((5,), *layers), tmp_path, tolerance=0.02)
    assert ops(c.graph) == ["dense", "batchnorm", "relu"]  # QDense's weights are QKeras's: no folding
    assert c.chosen == ["bn"] and "QKeras computes them in float" in " ".join(c.graph.node("bn").notes)
