"""Every Keras layer alone: converted, VHDL == golden bit for bit, golden == Keras within quantisation error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from keras_check import check, ops, randomise

from mlinfn_compress.compress.ir import Linear, Pool

MODES = {"Max": "max", "Average": "avg"}


def k() -> Any:
    import tf_keras

    return tf_keras


def model(shape: tuple[int, ...], *layers: Any, name: str = "m") -> Any:
    tfk = k()
    x = inp = tfk.layers.Input(shape)
    for layer in layers:
        x = layer(x)
    return randomise(tfk.Model(inp, x, name=name))


def test_dense_on_a_sequence_applies_to_the_last_axis(tmp_path: Path) -> None:
    L = k().layers
    c = check(model((4, 3), L.Dense(5, name="fc"), L.Flatten(name="flat"), L.Dense(2, name="out")), tmp_path)
    assert ops(c.graph) == ["dense", "flatten", "dense"]
    assert [n.shape for n in c.graph.nodes] == [(4, 5), (20,), (2,)]


@pytest.mark.parametrize(
    ("padding", "strides", "bias"),
    [("valid", 1, True), ("same", 1, False), ("valid", 2, True), ("same", 2, True), ("causal", 1, True)],
)
def test_conv1d(padding: str, strides: int, bias: bool, tmp_path: Path) -> None:
    L = k().layers
    conv = L.Conv1D(3, 3, strides=strides, padding=padding, use_bias=bias, name="conv")
    c = check(model((9, 2), conv), tmp_path)
    node = c.graph.nodes[0]
    assert isinstance(node, Linear) and node.kind == "conv1d" and node.window is not None
    length = {"valid": (9 - 3) // strides + 1, "same": -(-9 // strides), "causal": 9}[padding]
    assert node.shape == (length, 3) and node.window.strides == (strides,)
    assert bias or not np.any(node.bias)


@pytest.mark.parametrize(
    ("padding", "strides", "kernel"),
    [("valid", 1, 3), ("same", 1, 3), ("valid", 2, 3), ("same", 2, (2, 3)), ("same", (1, 2), 3)],
)
def test_conv2d(padding: str, strides: Any, kernel: Any, tmp_path: Path) -> None:
    L = k().layers
    c = check(model((6, 7, 2), L.Conv2D(3, kernel, strides=strides, padding=padding, name="conv")), tmp_path)
    ks = (kernel, kernel) if isinstance(kernel, int) else kernel
    ss = (strides, strides) if isinstance(strides, int) else strides
    want = [-(-n // s) if padding == "same" else (n - kk) // s + 1 for n, kk, s in zip((6, 7), ks, ss, strict=True)]
    node = c.graph.nodes[0]
    assert node.kind == "conv2d" and node.shape == (*want, 3)


POOLS = [(1, 2, None, "valid"), (1, 3, 2, "same"), (2, 2, None, "valid"), (2, 3, 2, "same")]


@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize(("dims", "size", "strides", "padding"), POOLS)
def test_pooling(kind: str, dims: int, size: int, strides: Any, padding: str, tmp_path: Path) -> None:
    L = k().layers
    layer = getattr(L, f"{kind}Pooling{dims}D")(size, strides=strides, padding=padding, name="pool")
    shape = (7, 3) if dims == 1 else (5, 6, 2)
    c = check(model(shape, L.Dense(3, name="fc"), layer), tmp_path)
    pool = c.graph.nodes[-1]
    assert isinstance(pool, Pool) and not pool.count_pad and pool.kind == f"{MODES[kind]}_pool{dims}d"


@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize(("dims", "keepdims"), [(1, False), (2, False), (2, True)])
def test_global_pooling(kind: str, dims: int, keepdims: bool, tmp_path: Path) -> None:
    L = k().layers
    layer = getattr(L, f"Global{kind}Pooling{dims}D")(keepdims=keepdims, name="gp")
    shape = (6, 3) if dims == 1 else (4, 5, 3)
    c = check(model(shape, layer), tmp_path)
    assert c.graph.nodes[0].kind == f"global_{MODES[kind]}_pool{dims}d"
    assert c.graph.output.shape == ((1,) * dims + (3,) if keepdims else (3,))
    assert ops(c.graph)[1:] == ([] if keepdims else ["flatten"])


def test_batchnorm_folds_into_the_dense_before_it(tmp_path: Path) -> None:
    L = k().layers
    c = check(model((6,), L.Dense(4, name="fc"), L.BatchNormalization(name="bn"), L.ReLU(name="relu")), tmp_path)
    assert ops(c.graph) == ["dense", "relu"]
    assert "'bn' (a per-channel scale and shift) folded into the weights and bias" in c.graph.nodes[0].notes


def test_batchnorm_folds_into_a_convolution(tmp_path: Path) -> None:
    L = k().layers
    bn = L.BatchNormalization(name="bn", center=False)
    c = check(model((6, 6, 2), L.Conv2D(3, 3, padding="same", use_bias=False, name="conv"), bn), tmp_path)
    assert ops(c.graph) == ["conv2d"]


def test_batchnorm_after_an_activation_stands_alone(tmp_path: Path) -> None:
    L = k().layers
    layers = (L.Conv1D(3, 3, name="conv"), L.ReLU(name="relu"), L.BatchNormalization(name="bn", scale=False))
    c = check(model((8, 2), *layers), tmp_path)
    assert ops(c.graph) == ["conv1d", "relu", "batchnorm"]
    bn = c.graph.nodes[-1]
    assert isinstance(bn, Linear) and bn.window is None and bn.shape == (6, 3)
    assert np.count_nonzero(bn.weight_int) == 3  # a diagonal: one multiplier per channel


def test_batchnorm_whose_input_has_two_consumers_stands_alone(tmp_path: Path) -> None:
    tfk = k()
    L = tfk.layers
    inp = L.Input((5,))
    x = L.Dense(4, name="fc")(inp)
    y = L.Add(name="add")([L.BatchNormalization(name="bn")(x), x])
    c = check(randomise(tfk.Model(inp, y, name="two")), tmp_path)
    assert ops(c.graph) == ["dense", "batchnorm", "add"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "layer", "out"),
    [
        ((3, 4, 2), "Flatten()", (24,)),
        ((12,), "Reshape((3, 4))", (3, 4)),
        ((3, 4, 2), "Reshape((6, -1))", (6, 4)),
        ((5, 2), "ZeroPadding1D((1, 2))", (8, 2)),
        ((3, 4, 2), "ZeroPadding2D(((1, 0), (2, 1)))", (4, 7, 2)),
        ((6, 2), "Cropping1D((2, 1))", (3, 2)),
        ((5, 6, 2), "Cropping2D(((1, 2), (0, 3)))", (2, 3, 2)),
        ((4, 2), "UpSampling1D(3)", (12, 2)),
        ((3, 2, 2), "UpSampling2D((2, 3))", (6, 6, 2)),
    ],
)
def test_movement(shape: tuple[int, ...], layer: str, out: tuple[int, ...], tmp_path: Path) -> None:
    L = k().layers
    mover = eval(f"L.{layer}", {"L": L})  # noqa: S307 - the test's own table
    c = check(model(shape, L.Dense(shape[-1], name="fc"), mover), tmp_path)
    assert c.graph.output.shape == out


def test_dropout_and_noise_are_identities(tmp_path: Path) -> None:
    L = k().layers
    layers = (L.Dense(4, name="fc"), L.Dropout(0.5), L.GaussianNoise(0.1), L.ReLU(name="relu"), L.AlphaDropout(0.1))
    c = check(model((3,), *layers), tmp_path)
    assert ops(c.graph) == ["dense", "relu"]


def test_dense_used_twice_gets_two_nodes(tmp_path: Path) -> None:
    """A shared layer called on two tensors becomes two nodes with the same weights."""
    tfk = k()
    L = tfk.layers
    inp = L.Input((4,))
    shared = L.Dense(4, name="shared")
    y = L.Add(name="add")([shared(inp), shared(L.ReLU(name="relu")(inp))])
    c = check(randomise(tfk.Model(inp, y, name="twice")), tmp_path)
    assert [n.name for n in c.graph.nodes] == ["shared", "relu", "shared_2", "add"]
