"""Every IR op through hls4ml's C simulation, alone and in combination, bit for bit against the golden model.

Each op reads the graph's input directly (its own branch) and is observed
exactly: every branch is flattened and all are concatenated into one output
in a type that holds them all, so that one g++ build checks many ops at once
and a mismatch still names its op.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from ir_graphs import C, H, W, every_op_graph

from mlinfn_compress.backends.hls import HlsProject, layer_specs, model_precisions, render_hls
from mlinfn_compress.backends.vhdl import render
from mlinfn_compress.compress.fixed import FixedType, quantize
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
from mlinfn_compress.sim.ghdl import simulate
from mlinfn_compress.sim.hls_csim import parse_cpp_type, precision_differences, run_csim, written_precisions


def win(kernel: tuple[int, ...], strides: tuple[int, ...], pads: tuple[tuple[int, int], ...]) -> Window:
    return Window(kernel, strides, pads)


def branches_2d(rng: np.random.Generator) -> list[Node]:
    """Every op on a (6, 6, 2) input: convolutions, pooling, movement, element-wise ops, merges."""

    def conv(name: str, w: Window, n: int, label: str = "conv2d") -> Linear:
        k = math.prod(w.kernel) * C
        return Linear(name=name, inputs=["input"], weight=rng.normal(0, 0.5, (k, n)), bias=rng.normal(0, 0.2, n),
                      window=w, label=label)  # fmt: skip

    same3 = win((3, 3), (1, 1), ((1, 1), (1, 1)))
    return [
        conv("conv_same", same3, C),
        conv("conv_stride2", win((3, 3), (2, 2), ((0, 1), (0, 1))), 3),
        conv("conv_rect", win((2, 3), (1, 2), ((1, 0), (1, 1))), 2),
        Linear(name="dense_nd", inputs=["input"], weight=rng.normal(0, 0.5, (C, 4)), bias=rng.normal(0, 0.2, 4)),
        Linear(
            name="bn", inputs=["input"], weight=np.diag([0.75, -1.5]), bias=np.array([0.25, -0.5]), label="batchnorm"
        ),  # fmt: skip
        Linear(name="bn_identity", inputs=["input"], weight=np.eye(C), bias=np.zeros(C), label="batchnorm"),
        Pool(name="max", inputs=["input"], mode="max", window=win((2, 2), (2, 2), ((0, 0), (0, 0)))),
        Pool(name="max_pad", inputs=["input"], mode="max", window=win((3, 3), (2, 2), ((1, 1), (1, 1)))),
        Pool(name="avg_pad", inputs=["input"], mode="avg", window=win((3, 3), (2, 2), ((1, 1), (1, 1)))),
        Pool(name="avg_count", inputs=["input"], mode="avg", window=same3, count_pad=True),
        Pool(
            name="global_avg",
            inputs=["input"],
            mode="avg",
            window=win((H, W), (H, W), ((0, 0), (0, 0))),
            global_pool=True,
        ),  # fmt: skip
        Pool(
            name="global_max",
            inputs=["input"],
            mode="max",
            window=win((H, W), (H, W), ((0, 0), (0, 0))),
            global_pool=True,
        ),  # fmt: skip
        Pad(name="pad", inputs=["input"], pads=((1, 0), (2, 1))),
        Crop(name="crop", inputs=["input"], crops=((1, 2), (0, 1))),
        Upsample(name="up", inputs=["input"], factors=(2, 3)),
        Clip(name="relu", inputs=["input"]),
        Clip(name="relu6", inputs=["input"], lo=0.0, hi=6.0, label="relu6"),
        Clip(name="relu1", inputs=["input"], lo=0.0, hi=1.0, label="relu1"),
        Clip(name="hard_tanh", inputs=["input"], lo=-1.0, hi=1.0, label="hard_tanh"),
        Clip(name="clip", inputs=["input"], lo=-0.75, hi=1.5, label="clip"),
        Clip(name="clip_hi", inputs=["input"], lo=None, hi=0.5, label="clip"),
        Clip(name="clip_lo", inputs=["input"], lo=-2.0, hi=None, label="clip"),
        LeakyRelu(name="leaky", inputs=["input"], alpha=0.25),
        LeakyRelu(name="leaky_q", inputs=["input"], alpha=0.1),
        Cast(name="cast", inputs=["input"], result_type=FixedType(8, 3, True, "RND", "SAT")),
        Table(name="sigmoid", inputs=["input"], function="sigmoid"),
        Table(name="tanh", inputs=["input"], function="tanh"),
        Add(name="add3", inputs=["input", "relu", "bn"]),
        Concat(name="cat3", inputs=["input", "relu", "conv_same"], axis=-1),
        Concat(name="cat_h", inputs=["input", "relu"], axis=0),
        Concat(name="cat_w", inputs=["input", "relu"], axis=1),
        Reshape(name="reshape", inputs=["input"], target=(12, 6)),
    ]


def branches_1d(rng: np.random.Generator) -> list[Node]:
    """The 1-D and vector forms on a (12, 3) input."""
    c = 3

    def conv(name: str, w: Window, n: int) -> Linear:
        return Linear(name=name, inputs=["input"], weight=rng.normal(0, 0.5, (w.kernel[0] * c, n)),
                      bias=rng.normal(0, 0.2, n), window=w, label="conv1d")  # fmt: skip

    return [
        conv("conv_same", win((3,), (1,), ((1, 1),)), 2),
        conv("conv_stride2", win((4,), (2,), ((1, 2),)), 3),
        Linear(name="dense_nd", inputs=["input"], weight=rng.normal(0, 0.5, (c, 2)), bias=rng.normal(0, 0.2, 2)),
        Linear(
            name="bn",
            inputs=["input"],
            weight=np.diag([0.5, 1.25, -0.75]),
            bias=np.array([0.0, 0.5, -0.25]),
            label="batchnorm",
        ),  # fmt: skip
        Pool(name="max", inputs=["input"], mode="max", window=win((2,), (2,), ((0, 0),))),
        Pool(name="avg_pad", inputs=["input"], mode="avg", window=win((3,), (2,), ((1, 1),))),
        Pool(name="avg_count", inputs=["input"], mode="avg", window=win((3,), (1,), ((1, 1),)), count_pad=True),
        Pool(name="global_avg", inputs=["input"], mode="avg", window=win((12,), (12,), ((0, 0),)), global_pool=True),
        Pool(name="global_max", inputs=["input"], mode="max", window=win((12,), (12,), ((0, 0),)), global_pool=True),
        Pad(name="pad", inputs=["input"], pads=((2, 1),)),
        Crop(name="crop", inputs=["input"], crops=((1, 3),)),
        Upsample(name="up", inputs=["input"], factors=(2,)),
        Concat(name="cat_l", inputs=["input", "max", "pad"], axis=0),
        Reshape(name="vector", inputs=["input"], target=(36,), label="flatten"),
        Linear(name="dense", inputs=["vector"], weight=rng.normal(0, 0.3, (36, 5)), bias=rng.normal(0, 0.2, 5)),
        Linear(
            name="bn_vector",
            inputs=["dense"],
            weight=np.diag(rng.normal(1, 0.5, 5)),
            bias=rng.normal(0, 1, 5),
            label="batchnorm",
        ),  # fmt: skip
        Table(name="tanh_vector", inputs=["dense"], function="tanh"),
        Add(name="add_vector", inputs=["dense", "bn_vector"]),
    ]


def observed(name: str, shape: tuple[int, ...], branches: list[Node]) -> tuple[Graph, dict[str, slice]]:
    """The branches, each flattened, concatenated into one output; and which output columns are whose."""
    g = Graph(name, "keras", "hand-built", shape, list(branches))
    g.infer_shapes()
    used = {s for n in branches for s in n.inputs}
    leaves = [n for n in branches if n.name not in used or n.name in ("relu", "bn", "conv_same", "dense", "max")]
    columns, start, flats = {}, 0, []
    for n in leaves:
        flats.append(Reshape(name=f"{n.name}_flat", inputs=[n.name], target=(n.size,), label="flatten"))
        columns[n.name] = slice(start, start + n.size)
        start += n.size
    g.nodes += [*flats, Concat(name="out", inputs=[f.name for f in flats])]
    g.output_name = "out"
    g.infer_shapes()
    return g, columns


@dataclass
class Built:
    graph: Graph
    project: HlsProject
    x: np.ndarray
    gold: np.ndarray
    columns: dict[str, slice]


def build(g: Graph, columns: dict[str, slice], outdir: Path, backend: str = "Vitis", scale: float = 3.0) -> Built:
    """Quantise (6-bit weights, 10-bit activations), render, and take inputs that reach every clip bound."""
    shape = g.input_shape
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, shape, seed=1) * scale)
    assert g.input_type is not None
    body = quantize(default_inputs(600, shape, seed=2) * scale, g.input_type).reshape(600, -1)
    x = np.concatenate([corner_rows(g.input_size, g.input_type, seed=3), body])
    project = render_hls(g, outdir, backend)
    return Built(g, project, x, golden.run(g, x)["logits"], columns)


@pytest.fixture(scope="module")
def built_2d(tmp_path_factory: pytest.TempPathFactory) -> Built:
    g, columns = observed("ops2d", (H, W, C), branches_2d(np.random.default_rng(0)))
    return build(g, columns, tmp_path_factory.mktemp("ops2d") / "hls")


@pytest.fixture(scope="module")
def built_1d(tmp_path_factory: pytest.TempPathFactory) -> Built:
    g, columns = observed("ops1d", (12, 3), branches_1d(np.random.default_rng(1)))
    return build(g, columns, tmp_path_factory.mktemp("ops1d") / "hls")


def assert_bit_exact(b: Built) -> None:
    got = run_csim(b.project, b.x).outputs
    assert got.shape == b.gold.shape
    wrong = {name: int((got[:, cols] != b.gold[:, cols]).any(axis=1).sum()) for name, cols in b.columns.items()}
    assert not any(wrong.values()), f"rows that differ, by op: { {k: v for k, v in wrong.items() if v} }"
    for name, cols in b.columns.items():  # every op is exercised: its outputs vary across the samples
        assert len(np.unique(b.gold[:, cols])) > 2, name


def assert_precisions_are_the_irs(b: Built) -> None:
    p = b.project
    specs = {s.name: s for s in layer_specs(b.graph)}
    in_model = model_precisions(p.hls_model)
    for lay in p.layers:
        assert in_model[lay.name] == specs[lay.name].precisions, lay.name
    assert precision_differences(p) == []
    assert set(written_precisions(p)) == {lay.name for lay in p.layers}
    # every fixed-point type the project declares is one the IR gave it: no hls4ml default is left anywhere
    declared = {parse_cpp_type(t) for t, _ in re.findall(r"typedef\s+([^;]+?)\s+(\w+)\s*;", _defines(p))}
    assert declared - {None} <= {t for lay in p.layers for t in lay.precisions.values()}


def _defines(p: HlsProject) -> str:
    return (p.outdir / "firmware" / "defines.h").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["built_2d", "built_1d"])
def test_every_op_alone_is_bit_exact(which: str, request: pytest.FixtureRequest) -> None:
    b = request.getfixturevalue(which)
    assert_bit_exact(b)
    assert_precisions_are_the_irs(b)


def test_each_op_has_the_hls4ml_layer_meant_for_it(built_2d: Built, built_1d: Built) -> None:
    def classes(b: Built) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for lay in b.project.layers:
            out.setdefault(lay.ir_node, []).append(lay.class_name)
        return out

    two, one = classes(built_2d), classes(built_1d)
    assert two["conv_same"] == ["Conv2D"] and two["dense_nd"] == ["PointwiseConv2D"] and one["conv_same"] == ["Conv1D"]
    assert two["bn"] == ["BatchNormalization"] and two["bn_identity"] == ["Activation"]
    assert two["max"] == ["Pooling2D"] and two["global_avg"] == ["GlobalPooling2D"] and one["max"] == ["Pooling1D"]
    assert two["up"] == ["Resize"] and one["up"] == ["Resize"] and two["pad"] == ["ZeroPadding2D"]
    assert two["crop"] == ["Cropping2D"] and one["crop"] == ["Cropping1D"]
    assert two["relu6"] == ["Activation"] and two["hard_tanh"] == ["HardActivation"]
    # a general clip is hi - relu((hi - lo) - relu(x - lo)): three exact batch norms and two relus
    assert two["clip"] == ["BatchNormalization", "Activation", "BatchNormalization", "Activation", "BatchNormalization"]
    assert two["sigmoid"] == ["Activation", "UnaryLUT"] and two["leaky"] == ["ParametrizedActivation"]
    assert two["add3"] == ["Merge", "Merge"] and two["cat3"] == ["Concatenate", "Concatenate"]
    assert one["dense"] == ["Dense"] and one["bn_vector"] == ["BatchNormalization"]
    assert two["reshape"] == ["Reshape"]  # kept, aliasing its input: io_parallel moves no data for it


def test_the_lookup_table_is_ordered_by_the_raw_bits_of_its_index(built_2d: Built) -> None:
    node = built_2d.graph.node("tanh")
    assert isinstance(node, Table) and node.index_type is not None and node.table_int is not None
    lut = next(lay for lay in built_2d.project.layers if lay.class_name == "UnaryLUT" and lay.ir_node == "tanh")
    text = (built_2d.project.outdir / "firmware" / "weights" / f"table{lut.index}.txt").read_text()
    written = np.array([float(v) for v in text.replace(",", " ").split()])
    raw_zero = written[0] * 2**node.result_type.frac  # raw pattern 0 is the value 0: the middle of the IR's table
    assert raw_zero == node.table_int[-node.index_type.min_int] and len(written) == len(node.table_int)


@pytest.mark.slow
def test_combined_graph_equals_golden_and_the_vhdl(tmp_path: Path) -> None:
    g = every_op_graph(np.random.default_rng(0))
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, (H, W, C), 0))
    assert g.input_type is not None
    x = quantize(default_inputs(400, (H, W, C), seed=3) * 2, g.input_type).reshape(400, -1)
    gold = golden.run(g, x)["logits"]
    p = render_hls(g, tmp_path / "hls", "Vivado")
    hls = run_csim(p, x).outputs
    d = render(g, tmp_path / "vhdl", tmp_path / "sim")
    vhdl = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp_path / "work").logits
    assert (hls == gold).all() and (hls == vhdl).all()
    assert precision_differences(p) == [] and len(np.unique(gold)) > 100


@pytest.mark.slow
def test_a_final_reshape_and_identity_casts_are_removed_by_hls4ml(tmp_path: Path) -> None:
    nodes = [
        Pool(name="pool", inputs=["input"], mode="max", window=win((2, 2), (2, 2), ((0, 0), (0, 0)))),
        Cast(name="same", inputs=["pool"], result_type=FixedType(16, 6, True, "RND_CONV", "SAT")),
        Reshape(name="flat", inputs=["same"], target=(8,), label="flatten"),
    ]
    g = Graph("tail", "keras", "hand-built", (4, 4, 2), nodes)
    g.infer_shapes()
    b = build(g, {"flat": slice(0, 8)}, tmp_path / "hls")
    assert sorted(b.project.eliminated) == ["flat", "same"]
    assert [lay.ir_node for lay in b.project.layers] == ["input", "pool"]
    assert_bit_exact(b)


@pytest.mark.slow
def test_quartus_computes_what_it_supports_and_refuses_the_rest(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    keep = ("conv_same", "dense_nd", "bn", "max", "max_pad", "global_max", "pad", "up", "relu", "relu6", "clip",
            "leaky", "cast", "add3", "cat3")  # fmt: skip
    g, columns = observed("quartus", (H, W, C), [n for n in branches_2d(rng) if n.name in keep])
    b = build(g, columns, tmp_path / "hls", "Quartus")
    assert_bit_exact(b)
    assert precision_differences(b.project) == []
    for node, message in [
        (Pool(name="avg", inputs=["input"], mode="avg", window=win((2, 2), (2, 2), ((0, 0), (0, 0)))),
         "its average pooling adds in the input's type and ignores accum_t"),
        (Table(name="tanh", inputs=["input"], function="tanh"), "its library has no unary_lut (lookup tables)"),
        (Crop(name="crop", inputs=["input"], crops=((1, 0), (0, 1))), "writes no code for Cropping2D"),
    ]:  # fmt: skip
        g = Graph("refused", "keras", "hand-built", (H, W, C), [node])
        g.infer_shapes()
        quantise(g, QuantConfig(), default_inputs(100, (H, W, C)))
        with pytest.raises(ValueError, match=re.escape(message)) as e:
            render_hls(g, tmp_path / node.name, "Quartus")
        assert f"node '{node.name}'" in str(e.value)


def test_a_saturating_accumulator_that_could_overflow_is_refused(tmp_path: Path) -> None:
    g = Graph("sat", "keras", "hand-built", (4, 4, 1), [Pool(name="p", inputs=["input"], mode="avg",
              window=win((2, 2), (2, 2), ((0, 0), (0, 0))))])  # fmt: skip
    g.infer_shapes()
    quantise(g, QuantConfig(), default_inputs(100, (4, 4, 1)))
    node = g.nodes[0]
    assert isinstance(node, Pool) and node.accum_type is not None
    node.accum_type = FixedType(node.accum_type.width - 2, node.accum_type.integer - 2, True, "TRN", "SAT")
    with pytest.raises(
        ValueError, match=r"node 'p': partial sums may overflow fixed<\d+,\d+,TRN,SAT>, which saturates"
    ):
        render_hls(g, tmp_path / "hls")
    assert not (tmp_path / "hls").exists() or not any((tmp_path / "hls").iterdir())
    shutil.rmtree(tmp_path / "hls", ignore_errors=True)


@pytest.mark.slow
def test_a_changed_lookup_table_entry_is_caught(tmp_path: Path) -> None:
    g = Graph("lut", "keras", "hand-built", (8,), [Table(name="tanh", inputs=["input"], function="tanh")])
    g.infer_shapes()
    b = build(g, {"tanh": slice(0, 8)}, tmp_path / "hls", scale=0.5)
    lut = next(lay for lay in b.project.layers if lay.class_name == "UnaryLUT")
    txt = b.project.outdir / "firmware" / "weights" / f"table{lut.index}.txt"
    values = txt.read_text().split(", ")
    values[1] = str(float(values[1]) + 2.0**-8)  # raw index 1: the smallest positive input, which the inputs reach
    txt.write_text(", ".join(values))
    assert precision_differences(b.project) == [
        f"table{lut.index}.h: the values synthesis reads differ from table{lut.index}.txt, which C simulation reads"
    ]
    got = run_csim(b.project, b.x).outputs
    assert 0 < int((got != b.gold).any(axis=1).sum()) < len(b.x)
