"""The QKeras framework twin equals the golden model bit for bit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import FixedType, quantize, to_float
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.frameworks.keras.twin import (
    build_twin,
    float64_backend,
    load_twin,
    save_twin,
    twin_logits,
)
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise


def quantised_graph(path: Path, weight_bits: int, act_bits: int) -> Graph:
    g = load_model(path).graph
    quantise(g, QuantConfig(weight_bits=weight_bits, act_bits=act_bits), default_inputs(4096, g.input_size))
    return g


def golden_and_inputs(g: Graph, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    assert g.input_type is not None and g.output.result_type is not None
    x_int = quantize(default_inputs(n, g.input_size, seed=5), g.input_type)
    gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    return to_float(x_int, g.input_type.frac), gold


def layer_kinds(model: Any) -> list[str]:
    return [f"{type(layer).__name__}:{getattr(layer, 'quantizer', '')}" for layer in model.layers]


@pytest.mark.parametrize(("weight_bits", "act_bits"), [(8, 16), (6, 6), (16, 24)])
def test_twin_of_float_model_is_bit_exact(float_mlp: Path, weight_bits: int, act_bits: int) -> None:
    g = quantised_graph(float_mlp, weight_bits, act_bits)
    x, gold = golden_and_inputs(g)
    twin = build_twin(g)
    out = twin_logits(twin, x)
    assert out.shape == gold.shape == (2000, 5)
    assert (out == gold).all()
    assert len(np.unique(out)) > min(100, 2 ** (act_bits - 2))  # a real test: many distinct logits
    assert type(twin.layers[-1]).__name__ == "Activation" and twin.layers[-1].get_config()["activation"] == "softmax"
    kinds = layer_kinds(twin)
    assert kinds[1] == "QActivation:quantized_bits(16,5,0,alpha=1)"  # fixed<16,6> input
    if act_bits == 24:  # accumulators over 24 bits: the relus must not compute in float32
        assert not any("quantized_relu" in k for k in kinds)


def test_twin_of_qkeras_model_is_bit_exact_and_matches_qkeras(qkeras_mlp: Path) -> None:
    lm = load_model(qkeras_mlp)
    g = lm.graph
    quantise(g, QuantConfig(weight_bits=8, act_bits=16), default_inputs(4096, g.input_size))
    x, gold = golden_and_inputs(g)
    twin = build_twin(g)
    out = twin_logits(twin, x)
    assert (out == gold).all()
    assert (lm.reference(x) == out).all()  # the user's own QKeras model agrees
    assert layer_kinds(twin).count("QActivation:quantized_relu(6,0)") == 3


def test_saved_twin_reloads_with_same_outputs(float_mlp: Path, tmp_path: Path) -> None:
    g = quantised_graph(float_mlp, 16, 24)
    x, gold = golden_and_inputs(g, 500)
    path = save_twin(g, tmp_path / "twin")
    assert path.suffix == ".h5" and path.exists()
    again = load_twin(path)
    assert (twin_logits(again, x) == gold).all()
    assert again.layers[-1].dtype == "float64"


def test_saved_twin_is_an_ordinary_qkeras_model(float_mlp: Path, tmp_path: Path) -> None:
    """Loaded in float32 (no float64 backend), it is the tool's input again; exact where float32 is."""
    g = quantised_graph(float_mlp, 6, 6)
    x, gold = golden_and_inputs(g, 500)
    path = save_twin(g, tmp_path / "twin6.h5")
    lm = load_model(path)
    assert lm.graph.framework == "qkeras"
    assert [n.kind for n in lm.graph.nodes] == [
        "cast",
        "dense",
        "relu",
        "dense",
        "relu",
        "dense",
        "relu",
        "dense",
        "cast",
    ]
    assert (lm.reference(x) == gold).all()


def test_twin_of_small_weights_and_activations(tmp_path: Path) -> None:
    """Negative integer bits (which QKeras cannot take) for weights and an unsigned activation."""
    import tf_keras as k

    rng = np.random.default_rng(2)
    model = k.Sequential([k.layers.Input((16,)), k.layers.Dense(8, activation="relu"), k.layers.Dense(3)])
    for layer, scale in zip(model.layers, (0.01, 5.0), strict=True):
        w, b = layer.get_weights()
        layer.set_weights([rng.normal(0, scale, w.shape), rng.normal(0, 0.001, b.shape)])
    path = tmp_path / "small.h5"
    model.save(path, include_optimizer=False)
    g = quantised_graph(path, 8, 10)
    assert g.nodes[0].weight_type is not None and g.nodes[0].weight_type.integer < 0
    assert g.nodes[1].result_type is not None and g.nodes[1].result_type.integer < 0
    x, gold = golden_and_inputs(g)
    twin = build_twin(g)
    assert any(type(layer).__name__ == "ReLU" for layer in twin.layers)  # the clip at the unsigned maximum
    assert (twin_logits(twin, x) == gold).all()


def test_types_qkeras_cannot_express_get_the_twins_own_quantiser(float_mlp: Path) -> None:
    """Floor rounding, wrap-around and a negative integer part: ``FixedQuant`` layers, still bit-exact."""
    g = quantised_graph(float_mlp, 8, 16)
    relu = next(n for n in g.nodes if n.kind == "relu")
    assert relu.result_type is not None
    relu.result_type = relu.result_type.with_modes("TRN", "SAT")
    g.input_type = FixedType(16, 6, True, "RND_CONV", "WRAP")
    g.output.result_type = FixedType(8, -1, True, "RND_CONV", "SAT")
    x_int = quantize(default_inputs(2000, g.input_size, seed=5), g.input_type)
    gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    twin = build_twin(g)
    own = [layer.name for layer in twin.layers if type(layer).__name__ == "FixedQuant"]
    assert own == ["input_q", f"{relu.name}_q", f"{g.output.name}_q"]
    assert (twin_logits(twin, to_float(x_int, g.input_type.frac)) == gold).all()
    assert len(np.unique(gold)) > 50 and (gold == -0.25).any()  # saturated at the bottom of fixed<8,-1>
    wrapped = FixedType(16, 6, True, "RND_CONV", "WRAP")  # an input beyond the range wraps around
    assert (
        twin_logits(twin, np.full((1, g.input_size), 32.0)).tolist()
        == twin_logits(twin, to_float(np.full((1, g.input_size), wrapped.min_int), wrapped.frac)).tolist()
    )


def test_accumulator_too_wide_for_float64_is_refused(float_mlp: Path) -> None:
    g = load_model(float_mlp).graph
    g.nodes[0].weight_type = FixedType(40, 2, True, "RND_CONV", "SAT")  # kept by quantise
    quantise(g, QuantConfig(weight_bits=24, act_bits=24), default_inputs(4096, g.input_size))
    with pytest.raises(ValueError, match=r"node '.*' \(dense\): accumulator fixed<.*> is too wide for exact float64"):
        build_twin(g)


def test_quantized_bits_in_float64_rounds_half_even_and_saturates() -> None:
    """What the twin rests on: QKeras's quantiser equals fixed.quantize exactly in float64."""
    import tensorflow as tf

    from mlinfn_compress.compress.frameworks.keras.twin import bits_quantizer

    rng = np.random.default_rng(0)
    for t in (FixedType(16, 6, True, "RND_CONV", "SAT"), FixedType(30, 20, False, "RND_CONV", "SAT")):
        grid = rng.integers(-(2**33), 2**33, 20000)  # many exact ties and values far out of range
        x = np.concatenate([to_float(grid, t.frac + 1), rng.normal(0, 2.0 ** (t.integer + 1), 20000)])
        want = to_float(quantize(x, t), t.frac)
        with float64_backend():
            got = bits_quantizer(t)(tf.constant(x, tf.float64)).numpy()
        assert got.dtype == np.float64 and (got == want).all()
