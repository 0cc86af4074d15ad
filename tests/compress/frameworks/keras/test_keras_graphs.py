"""Functional-API graphs (skip connections, concatenated branches, a U-Net, a Conv1D autoencoder),
the model's own inference as the reference, and the layers the frontend refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import report
from keras_check import check, ops, randomise, save

from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.ir import Add, Graph, Linear, golden
from mlinfn_compress.compress.passes.batchnorm import fold_batchnorm


def k() -> Any:
    import tf_keras

    return tf_keras


def test_skip_connection_with_add(tmp_path: Path) -> None:
    L = k().layers
    inp = L.Input((6, 3))
    x = L.Conv1D(3, 3, padding="same", activation="relu", name="conv1")(inp)
    x = L.Conv1D(3, 3, padding="same", name="conv2")(x)
    y = L.ReLU(name="relu")(L.Add(name="add")([x, inp]))
    c = check(randomise(k().Model(inp, y, name="res")), tmp_path)
    assert ops(c.graph) == ["conv1d", "relu", "conv1d", "add", "relu"]
    assert c.graph.node("add").inputs == ["conv2", "input"]


def test_maximum_and_minimum_of_branches(tmp_path: Path) -> None:
    L = k().layers
    inp = L.Input((6, 3))
    a = L.Conv1D(3, 3, padding="same", name="a")(inp)
    b = L.Conv1D(3, 1, name="b")(inp)
    n = L.Minimum(name="min")([L.Maximum(name="max")([a, b]), inp, b])
    y = L.Dense(2, name="head")(L.Flatten(name="flat")(n))
    c = check(randomise(k().Model(inp, y, name="maxmin")), tmp_path)
    assert ops(c.graph) == ["conv1d", "conv1d", "maximum", "minimum", "flatten", "dense"]
    assert c.graph.node("min").inputs == ["max", "input", "b"]


@pytest.mark.slow
def test_maximum_through_the_command_on_both_targets(tmp_path: Path) -> None:
    """A QKeras model with a Maximum: VHDL, the hls4ml project and the QKeras twin all bit-exact."""
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    L = k().layers
    q = lambda: quantized_bits(6, 1, alpha=1)  # noqa: E731
    inp = L.Input((8,))
    a = QActivation(quantized_relu(6, 2), name="a_relu")(QDense(6, kernel_quantizer=q(), bias_quantizer=q())(inp))
    b = QActivation(quantized_bits(8, 3), name="b_q")(QDense(6, kernel_quantizer=q(), bias_quantizer=q())(inp))
    y = QDense(3, kernel_quantizer=q(), bias_quantizer=q(), name="head")(L.Maximum(name="max")([a, b]))
    path = save(randomise(k().Model(inp, y, name="qmax")), tmp_path)
    out = tmp_path / "out"
    assert main([str(path), "--target", "both", "-o", str(out), "-q", "--simulate", "300"]) == 0
    r = report(out)
    v = r["verification"]
    assert v["mismatches"] == 0 and v["bit_exact"] is True
    assert "vhdl: twin" in v["against"] and "hls: golden" in v["against"]
    assert "maximum" in [row["op"] for row in r["layers"]]
    assert "vhdl: qkeras" in v["against"]  # the model is exactly quantised: its own inference is compared too


@pytest.mark.parametrize(("axis", "shape"), [(-1, (5, 7)), (1, (10, 4))])
def test_concatenate_two_branches(axis: int, shape: tuple[int, ...], tmp_path: Path) -> None:
    L = k().layers
    inp = L.Input((5, 2))
    a = L.Conv1D(4, 3, padding="same", activation="relu", name="a")(inp)
    b = L.Conv1D(3 if axis == -1 else 4, 1, name="b")(inp)
    y = L.Concatenate(axis=axis, name="cat")([a, b])
    c = check(randomise(k().Model(inp, y, name="branches")), tmp_path)
    assert c.graph.node("cat").inputs == ["a_relu", "b"] and c.graph.output.shape == shape


def test_qkeras_graph_with_branches_matches_qkeras(tmp_path: Path) -> None:
    from qkeras import QActivation, QConv2D, quantized_bits, quantized_relu

    L = k().layers

    def q() -> Any:
        return quantized_bits(6, 0, alpha=1)

    inp = L.Input((5, 5, 2))
    a = QConv2D(3, 3, padding="same", kernel_quantizer=q(), bias_quantizer=q(), name="a")(inp)
    a = QActivation(quantized_relu(6, 2), name="a_relu")(a)
    b = QConv2D(3, 1, kernel_quantizer=q(), bias_quantizer=q(), name="b")(inp)
    s = L.Add(name="add")([a, b])
    y = L.Concatenate(name="cat")([L.MaxPooling2D(name="pool")(s), L.AveragePooling2D(name="avg")(s)])
    c = check(randomise(k().Model(inp, y, name="qbranches")), tmp_path, exact=True)
    assert ops(c.graph) == ["conv2d", "relu", "conv2d", "add", "max_pool2d", "avg_pool2d", "concat"]


def unet(name: str = "unet") -> Any:
    """Two levels: conv, pool, conv, pool, conv, up-sample, concatenate, conv, up-sample, concatenate, conv."""
    L = k().layers
    inp = L.Input((8, 8, 1))
    e1 = L.Conv2D(4, 3, padding="same", activation="relu", name="enc1")(inp)
    e2 = L.Conv2D(4, 3, padding="same", activation="relu", name="enc2")(L.MaxPooling2D(name="pool1")(e1))
    mid = L.Conv2D(4, 3, padding="same", activation="relu", name="mid")(L.MaxPooling2D(name="pool2")(e2))
    d2 = L.Concatenate(name="cat2")([L.UpSampling2D(name="up2")(mid), e2])
    d2 = L.Conv2D(4, 3, padding="same", activation="relu", name="dec2")(d2)
    d1 = L.Concatenate(name="cat1")([L.UpSampling2D(name="up1")(d2), e1])
    out = L.Conv2D(1, 1, activation="sigmoid", name="mask")(d1)
    return randomise(k().Model(inp, out, name=name))


@pytest.mark.slow
def test_unet_end_to_end(tmp_path: Path) -> None:
    path = save(unet(), tmp_path)
    outdir = tmp_path / "out"
    assert main([str(path), "-o", str(outdir), "-q", "--simulate", "100"]) == 0
    r = report(outdir)
    assert r["verification"]["mismatches"] == 0 and r["verification"]["bit_exact"] is True
    assert r["model"]["input_shape"] == [8, 8, 1] and r["model"]["output_shape"] == [8, 8, 1]
    rows = {row["name"]: row for row in r["layers"]}
    assert rows["cat1"]["inputs"] == ["up1", "enc1_relu"] and rows["cat1"]["out_shape"] == [8, 8, 8]
    assert rows["mid"]["in_shape"] == [2, 2, 4] and rows["up2"]["out_shape"] == [4, 4, 4]
    assert "sigmoid" in r["hardware"]["outputs"]["note"]  # the per-pixel sigmoid is left to the reader
    # golden (what the hardware computed) against Keras, on the rows after the input format's corners
    g = Graph.from_json(json.loads((outdir / "design.json").read_text())["ir"])
    assert g.input_type is not None and g.output.result_type is not None
    x_int = np.load(outdir / "sim" / "inputs.npy")[8:]
    out = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    ref = load_model(path).reference(to_float(x_int, g.input_type.frac))
    assert np.max(np.abs(out - ref)) < 0.06 * np.max(np.abs(ref))  # 8-bit weights, 16-bit activations


@pytest.mark.slow
def test_conv1d_autoencoder_end_to_end(tmp_path: Path) -> None:
    L = k().layers
    inp = L.Input((16, 1))
    x = L.Conv1D(4, 5, padding="same", activation="relu", name="enc")(inp)
    x = L.MaxPooling1D(2, name="down")(x)
    x = L.Conv1D(2, 3, padding="same", activation="relu", name="code")(x)
    x = L.UpSampling1D(2, name="up")(x)
    out = L.Conv1D(1, 5, padding="same", name="dec")(x)
    path = save(randomise(k().Model(inp, out, name="ae")), tmp_path)
    outdir = tmp_path / "out"
    assert main([str(path), "-o", str(outdir), "-q", "--simulate", "100"]) == 0
    r = report(outdir)
    assert r["verification"]["mismatches"] == 0 and r["model"]["output_shape"] == [16, 1]
    assert [row["op"] for row in r["layers"]] == [
        "conv1d",
        "relu",
        "max_pool1d",
        "conv1d",
        "relu",
        "upsample",
        "conv1d",
    ]
    assert r["hardware"]["outputs"]["argmax"] is False


def test_keras3_functional_graph(tmp_path: Path) -> None:
    import keras

    L = keras.layers
    inp = keras.Input((6, 6, 2))
    a = L.Conv2D(3, 3, padding="same", name="a")(inp)
    a = L.BatchNormalization(name="bn")(a)
    b = L.Conv2D(3, 1, name="b")(inp)
    x = L.Concatenate(name="cat")([L.ReLU(name="relu")(a), b])
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, activation="softmax", name="out")(x)
    c = check(randomise(keras.Model(inp, out, name="k3graph")), tmp_path, suffix=".keras")
    assert ops(c.graph) == ["conv2d", "relu", "conv2d", "concat", "global_avg_pool2d", "flatten", "dense"]
    assert c.graph.output_activation == "softmax"


@pytest.mark.parametrize("final", ["fused", "layer", "dropout_after"])
def test_reference_is_the_model_before_its_final_softmax(final: str, tmp_path: Path) -> None:
    tfk = k()
    L = tfk.layers
    inp = L.Input((3, 4))
    x = L.Flatten(name="flat")(L.Conv1D(2, 2, name="conv")(inp))
    if final == "fused":
        out = L.Dense(3, activation="softmax", name="out")(x)
    else:
        out = L.Softmax(name="softmax")(L.Dense(3, name="out")(x))
        if final == "dropout_after":
            out = L.Dropout(0.3, name="drop")(out)
    m = randomise(tfk.Model(inp, out, name="ref"))
    loaded = load_model(save(m, tmp_path))
    assert loaded.graph.output_activation == "softmax" and loaded.graph.output.name == "out"
    x = np.random.default_rng(0).normal(size=(7, 3, 4))
    logits = tfk.Model(m.inputs, m.get_layer("out").output)(x.astype(np.float32)).numpy()
    if final == "fused":
        logits = np.log(logits)  # softmax then log: the logits up to a constant per row
        logits = logits - logits[:, :1]
    got = loaded.reference(x)
    assert got.shape == (7, 3)
    want = got - got[:, :1] if final == "fused" else got
    np.testing.assert_allclose(want, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(loaded.reference(x.reshape(7, -1)), got)  # flat rows too
    assert np.allclose(loaded.graph.run_float(x)["out"], got, atol=1e-5)


def bn_graph(rng: np.random.Generator, extra: list[Linear]) -> Graph:
    nodes = [
        Linear(name="fc", inputs=["input"], weight=rng.normal(size=(3, 2)), bias=rng.normal(size=2)),
        Linear(name="bn", inputs=["fc"], weight=np.diag([2.0, 0.5]), bias=np.array([1.0, -1.0]), label="batchnorm"),
        *extra,
    ]
    g = Graph("g", "keras", "x", (3,), nodes)
    g.infer_shapes()
    return g


def test_batchnorms_fold_one_after_the_other() -> None:
    rng = np.random.default_rng(0)
    g = bn_graph(
        rng, [Linear(name="bn2", inputs=["bn"], weight=np.diag([3.0, 1.0]), bias=np.zeros(2), label="batchnorm")]
    )
    x = rng.normal(size=(5, 3))
    before = g.run_float(x)["bn2"]
    assert fold_batchnorm(g) == ["bn", "bn2"]
    assert [n.name for n in g.nodes] == ["fc"] and g.output_name == "fc"
    np.testing.assert_allclose(g.run_float(x)["fc"], before)


def test_batchnorm_does_not_fold_into_fixed_weights_or_a_shared_tensor() -> None:
    rng = np.random.default_rng(1)
    g = bn_graph(rng, [])
    g.nodes[0].weight_type = FixedType(6, 1)  # QKeras's quantised weights: folding would move them off their grid
    assert fold_batchnorm(g) == []
    shared = bn_graph(rng, [Add(name="add", inputs=["bn", "fc"])])
    assert fold_batchnorm(shared) == [] and len(shared.nodes) == 3


REFUSED = [
    ("Conv1D(2, 3, dilation_rate=2, name='bad')", (8, 2), "has dilation_rate (2,); only 1 is supported"),
    ("Conv2DTranspose(2, 3, name='bad')", (4, 4, 2), "(Conv2DTranspose) is not supported; supported: Dense"),
    ("UpSampling2D(interpolation='bilinear', name='bad')", (3, 3, 2), "interpolates 'bilinear'; only nearest"),
    ("ReLU(threshold=0.5, name='bad')", (4,), "layer 'bad' (ReLU) has threshold 0.5; only 0 is supported"),
    ("Activation('elu', name='bad')", (4,), "has activation 'elu', which is not supported; supported activations"),
    ("Softmax(name='bad')", (4,), "applies a softmax inside the model; a softmax is supported only at the"),
    ("LSTM(3, name='bad')", (4, 2), "layer 'bad' (LSTM) is not supported"),
    ("BatchNormalization(axis=1, name='bad')", (4, 2), "normalises axis [1]; only the last (channel) axis"),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "shape", "message"), REFUSED)
def test_unsupported_layers_exit_2_naming_the_layer(
    layer: str, shape: tuple[int, ...], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tfk = k()
    L = tfk.layers
    inp = L.Input(shape)
    x = eval(f"L.{layer}", {"L": L})(inp)  # noqa: S307 - the test's own table
    out = L.Dense(2, name="out")(L.Flatten(name="flat")(x))
    path = save(tfk.Model(inp, out, name="refused"), tmp_path)
    outdir = tmp_path / "o"
    assert main([str(path), "-o", str(outdir), "-q"]) == 2
    err = capsys.readouterr().err
    assert "refused.h5: layer 'bad' (" in err and message in err, err
    assert not outdir.exists() and not list(tmp_path.glob(".o.*"))


def test_final_softmax_over_pixels_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tfk = k()
    L = tfk.layers
    inp = L.Input((4, 4, 2))
    out = L.Conv2D(3, 1, activation="softmax", name="seg")(inp)
    path = save(tfk.Model(inp, out, name="seg"), tmp_path)
    assert main([str(path), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "seg.h5: layer 'seg' (Conv2D) ends in a softmax over the last axis of a (4, 4, 3) tensor" in err


def test_models_with_two_inputs_or_nested_models_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tfk = k()
    L = tfk.layers
    a, b = L.Input((3,)), L.Input((3,))
    two = tfk.Model([a, b], L.Add()([L.Dense(2)(a), L.Dense(2)(b)]), name="two")
    assert main([str(save(two, tmp_path)), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert (
        "two.h5: the model has 2 inputs and 1 outputs; one input and one output are supported"
        in capsys.readouterr().err
    )
    inner = tfk.Sequential([L.Input((3,)), L.Dense(2)], name="inner")
    x = L.Input((3,))
    nested = tfk.Model(x, L.Dense(1)(inner(x)), name="nested")
    assert main([str(save(nested, tmp_path)), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "nested.h5: layer 'inner' (Sequential) is a model nested inside the model" in capsys.readouterr().err


def test_a_sequential_model_without_input_shape_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import keras

    path = tmp_path / "unbuilt.keras"
    keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)]).save(path)
    assert main([str(path), "-o", str(tmp_path / "o"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "unbuilt.keras: the model has no input shape (a Sequential model that was never built)" in err
