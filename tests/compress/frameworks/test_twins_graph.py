"""Both framework twins (QKeras and Brevitas) equal the golden model bit for bit on graphs of every IR operation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ir_graphs import C, H, W, every_op_graph

from mlinfn_compress.compress.fixed import FixedType, quantize, to_float
from mlinfn_compress.compress.flow.inputs import corner_rows
from mlinfn_compress.compress.ir import (
    Add,
    Cast,
    Clip,
    Concat,
    Crop,
    Graph,
    LeakyRelu,
    Linear,
    Maximum,
    Minimum,
    Node,
    Pad,
    Pool,
    Reshape,
    Table,
    Upsample,
    Window,
    golden,
)
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
pytest.importorskip("qkeras")

from mlinfn_compress.compress.frameworks.keras import twin as twin_keras  # noqa: E402
from mlinfn_compress.compress.frameworks.torch import twin as twin_torch  # noqa: E402

SAMPLES = 300


def quantised(name: str, shape: tuple[int, ...], nodes: list[Node], act_bits: int = 10, seed: int = 0) -> Graph:
    g = Graph(name, "keras", "hand-built", shape, nodes)
    g.infer_shapes()
    quantise(g, QuantConfig(weight_bits=6, act_bits=act_bits), default_inputs(2000, shape, seed))
    return g


def inputs(g: Graph, seed: int = 0, scale: float = 2.0) -> np.ndarray:
    """Integer rows: the corners of the input type, then wide normal values (some saturate)."""
    assert g.input_type is not None
    corners = corner_rows(g.input_size, g.input_type, seed)
    body = quantize(default_inputs(SAMPLES - len(corners), g.input_shape, seed + 1) * scale, g.input_type)
    return np.concatenate([corners, body.reshape(len(body), -1)])


def golden_values(g: Graph, x_int: np.ndarray) -> np.ndarray:
    assert g.output.result_type is not None
    return to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)


def run_keras(g: Graph) -> Callable[[np.ndarray], np.ndarray]:
    model = twin_keras.build_twin(g)
    return lambda x: twin_keras.twin_logits(model, x)


def run_torch(g: Graph, out_dir: Path) -> Callable[[np.ndarray], np.ndarray]:
    twin_torch.save_twin(g, out_dir)
    model = twin_torch.load_twin(out_dir)
    return lambda x: twin_torch.twin_logits(model, x)


def assert_twins_equal_golden(g: Graph, tmp_path: Path, seed: int = 0) -> np.ndarray:
    """Both twins on flat rows and on shaped inputs: exactly the golden model's values."""
    assert g.input_type is not None
    x_int = inputs(g, seed)
    want = golden_values(g, x_int)
    x = to_float(x_int, g.input_type.frac)
    assert len(np.unique(want)) > 20  # a real test: many distinct outputs
    for run in (run_keras(g), run_torch(g, tmp_path / "torch")):
        got = run(x)
        assert got.shape == want.shape == (SAMPLES, g.output_size)
        assert got.tolist() == want.tolist()
        assert run(x.reshape(len(x), *g.input_shape)[:20]).tolist() == want[:20].tolist()
    return want


def conv(
    name: str, src: str, rng: np.random.Generator, window: Window, c_in: int, c_out: int, bias: bool = True
) -> Linear:
    weight = rng.normal(0, 0.5, (window.taps * c_in, c_out))
    b = rng.normal(0, 0.2, c_out) if bias else np.zeros(c_out)
    return Linear(name=name, inputs=[src], weight=weight, bias=b, window=window, label=f"conv{window.dims}d")


def batchnorm(name: str, src: str, rng: np.random.Generator, channels: int) -> Linear:
    """A standalone batch norm: a diagonal matrix on the channels."""
    scale, shift = rng.uniform(0.5, 2.0, channels), rng.normal(0, 0.5, channels)
    return Linear(name=name, inputs=[src], weight=np.diag(scale), bias=shift, label="batchnorm")


def dense(name: str, src: str, rng: np.random.Generator, n_in: int, n_out: int, bias: bool = True) -> Linear:
    b = rng.normal(0, 0.2, n_out) if bias else np.zeros(n_out)
    return Linear(name=name, inputs=[src], weight=rng.normal(0, 0.5, (n_in, n_out)), bias=b)


def w2(k: int, s: int, pads: tuple[tuple[int, int], ...] = ((0, 0), (0, 0))) -> Window:
    return Window((k, k), (s, s), pads)


def w1(k: int, s: int, pads: tuple[int, int] = (0, 0)) -> Window:
    return Window((k,), (s,), (pads,))


def whole(*spatial: int) -> Window:
    """A global pooling window."""
    return Window(spatial, (1,) * len(spatial), ((0, 0),) * len(spatial))


Case = tuple[tuple[int, ...], Callable[[np.random.Generator], list[Node]]]


def on_input(shape: tuple[int, ...], op: Callable[[], Node]) -> Case:
    return shape, lambda r: [op()]


def after_dense(op: Callable[[], Node]) -> Case:
    """``op`` reading ``d``, a dense layer's signed, varied outputs."""
    return (16,), lambda r: [dense("d", "input", r, 16, 8), op()]


def single_op_graphs() -> dict[str, Case]:
    """Every operation alone (after a dense layer or a convolution where it needs varied signed inputs)."""
    pad1 = ((1, 1), (1, 1))
    same = Window((3, 3), (2, 2), Window.same((3, 3), (2, 2), (7, 6)))
    asymmetric = Window((2, 3), (1, 2), ((1, 0), (0, 2)))
    wrap7 = FixedType(7, 3, True, "RND", "WRAP")
    return {
        "dense": ((16,), lambda r: [dense("op", "input", r, 16, 5)]),
        "dense_nd": ((5, 3), lambda r: [dense("op", "input", r, 3, 4)]),
        "batchnorm": ((4, 4, 3), lambda r: [batchnorm("op", "input", r, 3)]),
        "conv1d_same": ((12, 3), lambda r: [conv("op", "input", r, w1(3, 1, (1, 1)), 3, 4)]),
        "conv1d_stride2_valid": ((12, 3), lambda r: [conv("op", "input", r, w1(3, 2), 3, 4)]),
        "conv2d_same_stride2": ((7, 6, 2), lambda r: [conv("op", "input", r, same, 2, 3)]),
        "conv2d_asymmetric_no_bias": ((6, 6, 2), lambda r: [conv("op", "input", r, asymmetric, 2, 3, bias=False)]),
        "relu": after_dense(lambda: Clip(name="op", inputs=["d"])),
        "relu6": after_dense(lambda: Clip(name="op", inputs=["d"], hi=6.0, label="relu6")),
        "hard_tanh": after_dense(lambda: Clip(name="op", inputs=["d"], lo=-1.0, hi=1.0, label="hard_tanh")),
        "leaky_relu": after_dense(lambda: LeakyRelu(name="op", inputs=["d"], alpha=0.1)),
        "sigmoid": after_dense(lambda: Table(name="op", inputs=["d"], function="sigmoid")),
        "tanh": after_dense(lambda: Table(name="op", inputs=["d"], function="tanh")),
        "cast_wrap": on_input((16,), lambda: Cast(name="op", inputs=["input"], result_type=wrap7)),
        "max_pool2d": on_input((6, 6, 2), lambda: Pool(name="op", inputs=["input"], mode="max", window=w2(2, 2))),
        "max_pool2d_padded": on_input((6, 6, 2), lambda: Pool(name="op", inputs=["input"], window=w2(3, 2, pad1))),
        "max_pool1d": on_input((12, 3), lambda: Pool(name="op", inputs=["input"], mode="max", window=w1(3, 3))),
        "global_max_pool": on_input((5, 4, 3), lambda: Pool(name="op", inputs=["input"], window=whole(5, 4),
                                                              global_pool=True)),
        "avg_pool2d": on_input((6, 6, 2), lambda: Pool(name="op", inputs=["input"], mode="avg", window=w2(3, 2, pad1))),
        "avg_pool2d_count_pad": on_input((6, 6, 2), lambda: Pool(name="op", inputs=["input"], mode="avg",
                                                                   count_pad=True, window=w2(3, 2, pad1))),
        "avg_pool1d": on_input((12, 3), lambda: Pool(name="op", inputs=["input"], mode="avg", window=w1(2, 2))),
        "global_avg_pool": on_input((5, 3, 2), lambda: Pool(name="op", inputs=["input"], mode="avg",
                                                              window=whole(5, 3), global_pool=True)),
        "add": ((4, 4, 2), lambda r: [dense("a", "input", r, 2, 3), conv("b", "input", r, w2(3, 1, pad1), 2, 3),
                                      Add(name="op", inputs=["a", "b"])]),
        "add_three": ((8,), lambda r: [dense("a", "input", r, 8, 4), dense("b", "input", r, 8, 4),
                                       Clip(name="c", inputs=["a"]), Add(name="op", inputs=["a", "b", "c"])]),
        "maximum": ((4, 4, 2), lambda r: [dense("a", "input", r, 2, 3), conv("b", "input", r, w2(3, 1, pad1), 2, 3),
                                          Maximum(name="op", inputs=["a", "b"])]),
        "minimum_three": ((8,), lambda r: [dense("a", "input", r, 8, 4), dense("b", "input", r, 8, 4),
                                           Clip(name="c", inputs=["a"]), Minimum(name="op", inputs=["a", "b", "c"])]),
        "concat_channels": ((4, 4, 2), lambda r: [dense("a", "input", r, 2, 3), Clip(name="b", inputs=["input"]),
                                                  Concat(name="op", inputs=["a", "b"])]),
        "concat_axis0": ((3, 4, 2), lambda r: [dense("a", "input", r, 2, 2),
                                               Concat(name="op", inputs=["input", "a"], axis=0)]),
        "reshape": on_input((6, 6, 2), lambda: Reshape(name="op", inputs=["input"], target=(12, 6))),
        "pad": on_input((4, 5, 2), lambda: Pad(name="op", inputs=["input"], pads=((1, 2), (0, 1)))),
        "pad1d": on_input((6, 2), lambda: Pad(name="op", inputs=["input"], pads=((2, 1),))),
        "crop": on_input((6, 5, 2), lambda: Crop(name="op", inputs=["input"], crops=((1, 0), (2, 1)))),
        "crop1d": on_input((7, 2), lambda: Crop(name="op", inputs=["input"], crops=((0, 3),))),
        "upsample2d": on_input((3, 3, 2), lambda: Upsample(name="op", inputs=["input"], factors=(2, 3))),
        "upsample1d": on_input((5, 2), lambda: Upsample(name="op", inputs=["input"], factors=(3,))),
    }  # fmt: skip


SINGLE = single_op_graphs()


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SINGLE))
def test_every_op_alone(case: str, tmp_path: Path) -> None:
    shape, build = SINGLE[case]
    g = quantised(case, shape, build(np.random.default_rng(sum(map(ord, case)))))
    assert_twins_equal_golden(g, tmp_path)


def unet_graph(rng: np.random.Generator) -> Graph:
    """Two levels: convolution, pooling, convolution, up-sampling, the skip concatenated, a batch norm, a
    segmentation map through a sigmoid table."""
    s1 = ((1, 1), (1, 1))
    nodes = [
        conv("enc1", "input", rng, w2(3, 1, s1), 1, 4), Clip(name="enc1_relu", inputs=["enc1"]),
        Pool(name="down", inputs=["enc1_relu"], mode="max", window=w2(2, 2)),
        conv("enc2", "down", rng, w2(3, 1, s1), 4, 6), Clip(name="enc2_relu", inputs=["enc2"], hi=6.0, label="relu6"),
        Upsample(name="up", inputs=["enc2_relu"], factors=(2, 2)),
        Concat(name="skip", inputs=["up", "enc1_relu"]),
        conv("dec", "skip", rng, w2(3, 1, s1), 10, 4), LeakyRelu(name="dec_act", inputs=["dec"], alpha=0.125),
        batchnorm("bn", "dec_act", rng, 4),
        conv("head", "bn", rng, w2(1, 1), 4, 1), Table(name="mask", inputs=["head"], function="sigmoid"),
    ]  # fmt: skip
    g = Graph("unet", "keras", "hand-built", (8, 8, 1), nodes)
    g.infer_shapes()
    return g


def autoencoder_1d(rng: np.random.Generator) -> Graph:
    nodes = [
        conv("enc", "input", rng, w1(3, 1, (1, 1)), 2, 4), LeakyRelu(name="enc_act", inputs=["enc"], alpha=0.3),
        Pool(name="down", inputs=["enc_act"], mode="avg", window=w1(3, 2, (1, 1))),
        conv("mid", "down", rng, w1(3, 1, (1, 1)), 4, 3), Table(name="mid_act", inputs=["mid"], function="tanh"),
        Upsample(name="up", inputs=["mid_act"], factors=(2,)), Pad(name="pad", inputs=["up"], pads=((1, 0),)),
        Crop(name="crop", inputs=["pad"], crops=((0, 1),)), conv("out", "crop", rng, w1(1, 1), 3, 2),
    ]  # fmt: skip
    g = Graph("autoencoder", "keras", "hand-built", (16, 2), nodes)
    g.infer_shapes()
    return g


@pytest.mark.parametrize("seed", [0, 1])
def test_every_op_graph(seed: int, tmp_path: Path) -> None:
    """The dataflow test's graph: convolutions, pooling, a concatenated and an added branch, tables, a dense head."""
    g = every_op_graph(np.random.default_rng(seed))
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, (H, W, C), seed))
    assert_twins_equal_golden(g, tmp_path, seed)


@pytest.mark.parametrize("build", [unet_graph, autoencoder_1d])
def test_unet_and_autoencoder(build: Callable[[np.random.Generator], Graph], tmp_path: Path) -> None:
    g = build(np.random.default_rng(3))
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, g.input_shape, 3))
    assert len(g.output.shape) > 1  # a map, flattened channels-last
    assert_twins_equal_golden(g, tmp_path)


MODES = [("TRN", "WRAP"), ("RND", "SAT_ZERO"), ("RND_INF", "SAT_SYM"), ("TRN_ZERO", "SAT"), ("RND_MIN_INF", "WRAP"),
         ("RND_ZERO", "SAT_SYM")]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("rounding", "overflow"), MODES)
def test_every_rounding_and_overflow_mode(rounding: str, overflow: str, tmp_path: Path) -> None:
    """Every tensor re-quantised with modes no framework quantiser has: the twins' own quantisers."""
    g = every_op_graph(np.random.default_rng(2))
    quantise(g, QuantConfig(weight_bits=6, act_bits=7), default_inputs(2000, (H, W, C), 2))
    for n in g.nodes:
        assert n.result_type is not None
        n.result_type = n.result_type.with_modes(rounding, overflow)
    x_int = inputs(g)
    rnd_conv = g.node("dense").result_type.with_modes("RND_CONV", "SAT")  # type: ignore[union-attr]
    want = assert_twins_equal_golden(g, tmp_path)
    g.node("dense").result_type = rnd_conv  # the modes decide the outputs
    assert golden_values(g, x_int).tolist() != want.tolist()
    g.node("dense").result_type = rnd_conv.with_modes(rounding, overflow)
    assert "FixedQuant" in {type(layer).__name__ for layer in twin_keras.build_twin(g).layers}  # QKeras: RND_CONV
    layers, _ = twin_torch.twin_layers(g)
    brevitas = rounding in ("TRN", "TRN_ZERO") and overflow in ("SAT", "SAT_SYM")
    assert ("fixed" in {layer["op"] for layer in layers}) != brevitas


def test_saved_twins_load_back_and_a_changed_weight_is_caught(tmp_path: Path) -> None:
    g = unet_graph(np.random.default_rng(4))
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, g.input_shape, 4))
    assert g.input_type is not None
    x_int = inputs(g)
    want = golden_values(g, x_int)
    x = to_float(x_int, g.input_type.frac)
    path = twin_keras.save_twin(g, tmp_path / "keras" / "model.h5")
    model = twin_keras.load_twin(path)
    assert twin_keras.twin_logits(model, x).tolist() == want.tolist()
    layer = model.get_layer("dec")
    kernel, bias = layer.get_weights()
    kernel[1, 1, 0, 0] += 2.0 ** -g.node("dec").weight_type.frac  # type: ignore[union-attr]  # one step
    layer.set_weights([kernel, bias])
    assert twin_keras.twin_logits(model, x).tolist() != want.tolist()

    info = twin_torch.save_twin(g, tmp_path / "torch")
    assert {p.name for p in (tmp_path / "torch").iterdir()} >= {"model.pt", "model.py", "twin.json"}
    again = twin_torch.load_twin(tmp_path / "torch")
    assert twin_torch.twin_logits(again, x).tolist() == want.tolist()
    state = torch.load(tmp_path / "torch" / info["state_dict"], weights_only=True)
    state["dec.weight"][0, 0, 1, 1] += 2.0 ** -g.node("dec").weight_type.frac  # type: ignore[union-attr]
    again.load_state_dict(state)
    assert twin_torch.twin_logits(again, x).tolist() != want.tolist()


def test_the_torch_twin_keeps_channels_last_and_softmax_last(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    g = quantised("cnn", (6, 6, 2), [conv("c", "input", rng, w2(3, 2), 2, 3), Clip(name="r", inputs=["c"]),
                                     Reshape(name="f", inputs=["r"], target=(12,), label="flatten"),
                                     dense("d", "f", rng, 12, 4)])  # fmt: skip
    g.output_activation = "softmax"
    x = to_float(inputs(g), g.input_type.frac)  # type: ignore[union-attr]
    twin_torch.save_twin(g, tmp_path)
    model = twin_torch.load_twin(tmp_path)
    assert [s["op"] for s in model.steps] == ["quant", "conv", "quant_relu", "reshape", "linear", "quant", "softmax"]
    probs = model(torch.from_numpy(x[:5]))
    assert torch.allclose(probs.sum(dim=1), torch.ones(5, dtype=torch.float64))
    assert twin_torch.twin_logits(model, x).tolist() == golden_values(g, inputs(g)).tolist()
    keras_model = twin_keras.build_twin(g)
    assert keras_model.layers[-1].name == "softmax"
    assert twin_keras.twin_logits(keras_model, x).tolist() == golden_values(g, inputs(g)).tolist()


def test_what_float64_cannot_compute_is_refused_with_the_node_named() -> None:
    rng = np.random.default_rng(6)
    g = quantised("wide", (8,), [dense("d", "input", rng, 8, 4), LeakyRelu(name="leaky", inputs=["d"], alpha=0.1)])
    leaky = g.node("leaky")
    assert isinstance(leaky, LeakyRelu)
    leaky.alpha_type, leaky.alpha_int = FixedType(50, 0, True), 3 << 46
    message = r"node 'leaky' \(leaky_relu\): alpha times the input spans \d+ bits; float64 inference cannot be exact"
    with pytest.raises(ValueError, match=message):
        twin_keras.build_twin(g)
    with pytest.raises(ValueError, match=message):
        twin_torch.twin_layers(g)
    leaky.alpha_type, leaky.alpha_int = FixedType(30, 1, True), (1 << 28) + 1  # exact in float64, not in float32
    with pytest.raises(ValueError, match=r"node 'leaky' \(leaky_relu\): alpha .* float32"):
        twin_keras.build_twin(g)
    twin_torch.twin_layers(g)  # torch keeps alpha in float64


@pytest.mark.parametrize("result", [FixedType(8, 8, True, "RND", "SAT"), FixedType(12, 11, True, "TRN", "SAT")])
def test_average_truncates_toward_zero_on_the_accumulator_grid(result: FixedType, tmp_path: Path) -> None:
    """Sums 2, -2, 5 of three integers: 1, -1, 3 half-units (not -2 as a floor would give)."""
    g = Graph("avg", "keras", "hand-built", (3, 1), [Pool(name="p", inputs=["input"], mode="avg", window=w1(3, 3))])
    g.infer_shapes()
    g.input_type = FixedType(8, 8, True, "RND_CONV", "SAT")
    node = g.node("p")
    assert isinstance(node, Pool)
    node.accum_type, node.result_type = FixedType(12, 11, True), result  # one fractional bit
    x_int = np.concatenate(
        [[[1, 1, 0], [-1, -1, 0], [2, 2, 1]], np.random.default_rng(0).integers(-128, 128, (297, 3))]
    )
    want = golden_values(g, x_int)
    assert want[:3].ravel().tolist() == ([1, 0, 2] if result.rounding == "RND" else [0.5, -0.5, 1.5])
    x = to_float(x_int, 0)
    assert twin_keras.twin_logits(twin_keras.build_twin(g), x).tolist() == want.tolist()
    assert run_torch(g, tmp_path)(x).tolist() == want.tolist()
