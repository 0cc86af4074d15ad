"""The streaming VHDL architecture: every op alone and in networks, bit for bit against the golden
model; the latency and interval the renderer states equal what the bench measures; the protocol
under back-pressure; the FIFO sizing; the --io choice; verify catching a corrupted design."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node, report
from stream_graphs import autoencoder_1d, conv, digits_cnn, pool, unet_graph

from mlinfn_compress.backends.vhdl import VhdlDesign, choose_io, render
from mlinfn_compress.backends.vhdl.architecture import PARALLEL_MAX_MULTIPLIERS, PARALLEL_MAX_VALUES
from mlinfn_compress.backends.vhdl.design import TensorNames
from mlinfn_compress.backends.vhdl.stream_plan import Fifo, Scan, plan
from mlinfn_compress.backends.vhdl.stream_timing import Deadlock, run, size_fifos
from mlinfn_compress.cli import build_parser, main
from mlinfn_compress.compress.fixed import FixedType, quantize
from mlinfn_compress.compress.flow.outdir import load_outdir
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.flow.run import verify_outdir
from mlinfn_compress.compress.flow.verification import verify
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
from mlinfn_compress.errors import ToolFailed, UserError
from mlinfn_compress.sim.cocotb_runner import run_protocol_tests
from mlinfn_compress.sim.ghdl import STD, analyse, run_tool, simulate_design


def _graph(name: str, shape: tuple[int, ...], nodes: list[Node], **kw: object) -> Graph:
    g = Graph(name, "keras", "hand-built", shape, nodes, **kw)  # type: ignore[arg-type]
    g.infer_shapes()
    return g


def _dense(name: str, src: str, rng: np.random.Generator, n_in: int, n_out: int) -> Linear:
    return Linear(name=name, inputs=[src], weight=rng.normal(0, 0.5, (n_in, n_out)), bias=rng.normal(0, 0.1, n_out))


def _pool(name: str, src: str, mode: str, k: tuple[int, ...], s: tuple[int, ...], pads: tuple, **kw: object) -> Pool:
    return Pool(name=name, inputs=[src], mode=mode, window=Window(k, s, pads), **kw)  # type: ignore[arg-type]


R = np.random.default_rng
SHAPE2 = (5, 6, 2)
OPS: dict[str, Callable[[], Graph]] = {
    "dense_flat": lambda: _graph("dense_flat", (12,), [_dense("fc", "input", R(1), 12, 5)]),
    "dense_per_pixel": lambda: _graph("dense_px", (4, 5, 3), [_dense("fc", "input", R(2), 3, 4)]),
    "conv2d_same": lambda: _graph("conv_same", SHAPE2, [conv("c", "input", R(3), 3, 2, 3)]),
    "conv2d_valid_stride2": lambda: _graph("conv_s2", (7, 6, 2), [conv("c", "input", R(4), 3, 2, 3, stride=2, pad=0)]),
    "conv2d_same_stride2": lambda: _graph("conv_same_s2", (6, 7, 2), [
        Linear(name="c", inputs=["input"], weight=R(5).normal(0, 0.3, (18, 3)), bias=np.zeros(3), label="conv2d",
               window=Window((3, 3), (2, 2), Window.same((3, 3), (2, 2), (6, 7))))]),
    "conv2d_uneven_window": lambda: _graph("conv_uneven", SHAPE2, [
        Linear(name="c", inputs=["input"], weight=R(6).normal(0, 0.3, (12, 2)), bias=R(6).normal(0, 0.1, 2),
               label="conv2d", window=Window((2, 3), (1, 2), ((1, 0), (0, 1))))]),
    "conv1d_same": lambda: _graph("conv1_same", (10, 3), [conv("c", "input", R(7), 3, 3, 2, dims=1)]),
    "conv1d_valid_stride2": lambda: _graph("conv1_s2", (11, 2), [conv("c", "input", R(8), 3, 2, 3, dims=1,
                                                                      stride=2, pad=0)]),
    "max_pool2d": lambda: _graph("maxpool", (6, 6, 2), [pool("p", "input", 2)]),
    "avg_pool2d_padded": lambda: _graph("avgpool_pad", (5, 5, 2), [_pool("p", "input", "avg", (3, 3), (2, 2),
                                                                         ((1, 1), (1, 1)))]),
    "avg_pool2d_count_pad": lambda: _graph("avgpool_cnt", (4, 5, 1), [_pool("p", "input", "avg", (3, 3), (1, 1),
                                                                            ((1, 1), (1, 1)), count_pad=True)]),
    "max_pool1d_padded": lambda: _graph("maxpool1", (9, 2), [_pool("p", "input", "max", (3,), (2,), ((1, 1),))]),
    "avg_pool1d": lambda: _graph("avgpool1", (8, 3), [pool("p", "input", 2, dims=1, mode="avg")]),
    "global_avg_pool2d": lambda: _graph("gap", (4, 3, 3), [
        _pool("p", "input", "avg", (4, 3), (1, 1), ((0, 0), (0, 0)), global_pool=True),
        Reshape(name="flat", inputs=["p"], target=(3,), label="flatten")]),
    "global_max_pool1d": lambda: _graph("gmp", (7, 2), [_pool("p", "input", "max", (7,), (1,), ((0, 0),),
                                                              global_pool=True)]),
    "relu": lambda: _graph("relu", (4, 5, 3), [Clip(name="r", inputs=["input"])]),
    "relu6": lambda: _graph("relu6", (4, 5, 3), [Clip(name="r", inputs=["input"], lo=0.0, hi=0.75, label="relu6")]),
    "hard_tanh": lambda: _graph("htanh", (4, 5, 3), [Clip(name="r", inputs=["input"], lo=-1.0, hi=1.0, label="t")]),
    "leaky_relu": lambda: _graph("leaky", (4, 5, 3), [LeakyRelu(name="r", inputs=["input"], alpha=0.125)]),
    "cast": lambda: _graph("cast", (4, 5, 3), [Cast(name="q", inputs=["input"],
                                                     result_type=FixedType(6, 2, True, "RND", "SAT"))]),
    "sigmoid_table": lambda: _graph("sigm", (4, 5, 3), [Table(name="s", inputs=["input"], function="sigmoid")]),
    "tanh_table": lambda: _graph("tanh", (6, 2), [Table(name="s", inputs=["input"], function="tanh")]),
    "add_residual": lambda: _graph("residual", SHAPE2, [conv("c", "input", R(9), 3, 2, 2),
                                                        Add(name="add", inputs=["c", "input"])]),
    "concat_two_types": lambda: _graph("cat2", SHAPE2, [Clip(name="r", inputs=["input"]),
                                                        Concat(name="cat", inputs=["r", "input"])]),
    "concat_same_tensor": lambda: _graph("cat_same", (4, 3), [Concat(name="cat", inputs=["input", "input"])]),
    "flatten": lambda: _graph("flatten", (3, 3, 2), [Reshape(name="f", inputs=["input"], target=(18,))]),
    "unflatten": lambda: _graph("unflat", (12,), [Reshape(name="f", inputs=["input"], target=(4, 3))]),
    "reshape_keeping_channels": lambda: _graph("reshape_wire", (4, 3, 2), [
        Reshape(name="f", inputs=["input"], target=(12, 2)), conv("c", "f", R(10), 3, 2, 2, dims=1)]),
    "reshape_regrouping": lambda: _graph("regroup", (4, 3, 2), [Reshape(name="f", inputs=["input"], target=(3, 8)),
                                                                Reshape(name="g", inputs=["f"], target=(8, 3))]),
    "zero_padding2d": lambda: _graph("pad2", (4, 5, 2), [Pad(name="p", inputs=["input"], pads=((1, 2), (0, 1)))]),
    "zero_padding1d": lambda: _graph("pad1", (6, 2), [Pad(name="p", inputs=["input"], pads=((2, 1),))]),
    "cropping2d": lambda: _graph("crop2", (6, 6, 2), [Crop(name="c", inputs=["input"], crops=((1, 0), (2, 1)))]),
    "cropping1d": lambda: _graph("crop1", (7, 2), [Crop(name="c", inputs=["input"], crops=((0, 2),))]),
    "upsampling2d": lambda: _graph("up2", (3, 4, 2), [Upsample(name="u", inputs=["input"], factors=(2, 3))]),
    "upsampling1d": lambda: _graph("up1", (5, 2), [Upsample(name="u", inputs=["input"], factors=(3,))]),
    "argmax_of_a_vector": lambda: _graph("am_vec", (8,), [_dense("fc", "input", R(11), 8, 6)],
                                         output_activation="softmax"),
    "argmax_of_an_image": lambda: _graph("am_img", (3, 4, 2), [conv("c", "input", R(12), 3, 2, 3)],
                                         output_activation="softmax"),
}  # fmt: skip


def quantised(g: Graph, seed: int = 0) -> Graph:
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(500, g.input_shape, seed))
    return g


def inputs(g: Graph, n: int, seed: int = 3) -> np.ndarray:
    assert g.input_type is not None
    return quantize(default_inputs(n, g.input_shape, seed) * 2, g.input_type).reshape(n, -1)


def check_stream(g: Graph, tmp: Path, n: int = 40) -> VhdlDesign:
    """Render the streaming design, simulate n images: outputs equal the golden model's, and the
    latency and interval the bench measures equal the ones the renderer states."""
    x = inputs(g, n)
    expected = golden.run(g, x)
    d = render(g, tmp / "vhdl", tmp / "sim", io="stream")
    assert d.architecture == "stream"
    sim = simulate_design(d, x, tmp / "work")
    assert sim.logits.tolist() == expected["logits"].tolist()
    if g.has_argmax:
        assert sim.argmax is not None and sim.argmax.tolist() == expected["argmax"].tolist()
    assert sim.timing == {"latency_cycles": d.latency, "initiation_interval": d.initiation_interval, "samples": n}
    assert n >= d.steady_from
    return d


@pytest.mark.slow
@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_alone(op: str, tmp_path: Path) -> None:
    g = quantised(OPS[op]())
    check_stream(g, tmp_path)


def test_a_padded_convolution_walks_its_padded_grid_once_per_image(tmp_path: Path) -> None:
    """Stride 1, "same" padding on 5x6: 7x8 steps an image, one per clock."""
    d = check_stream(quantised(OPS["conv2d_same"]()), tmp_path)
    assert d.initiation_interval == 7 * 8 and (d.in_words, d.n_in, d.out_words, d.n_out) == (30, 2, 30, 3)


@pytest.mark.slow
def test_streaming_conv2d_with_back_pressure(tmp_path: Path) -> None:
    """cocotb: random gaps in in_valid, out_ready low at random, a reset in mid-image."""
    g = quantised(_graph("bp_conv", (6, 5, 2), [conv("c", "input", R(20), 3, 2, 4), Clip(name="r", inputs=["c"])]))
    x = inputs(g, 8)
    expected = golden.run(g, x)["logits"]
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", io="stream")
    meta = (d.w_in, d.n_in, d.in_words, d.w_out, d.n_out, d.out_words, d.out_signed, d.latency,
            d.initiation_interval, d.steady_from)  # fmt: skip
    res = run_protocol_tests(d.files, d.top, x, expected, None, meta, tmp_path / "cocotb", "stream_protocol_test")
    log = (tmp_path / "cocotb" / "cocotb.log").read_text()
    assert (res.tests, res.failed) == (3, 0), log[-3000:]
    for test in ("back_to_back_latency_and_interval", "gaps_and_back_pressure", "reset_mid_image"):
        assert re.search(rf"{test}\s+PASS", log)


@pytest.mark.slow
def test_ignoring_back_pressure_is_caught(tmp_path: Path) -> None:
    """A stage that issues without credit overruns its buffer when out_ready is low: the
    bench with out_ready always high passes, the cocotb back-pressure test fails."""
    g = quantised(_graph("no_credit", (4, 4, 1), [conv("c", "input", R(21), 3, 1, 2)]))
    x = inputs(g, 6)
    expected = golden.run(g, x)["logits"]
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", io="stream")
    stage = tmp_path / "vhdl" / "no_credit_c.vhd"
    text = stage.read_text()
    assert "credit <= occ < D;" in text
    stage.write_text(text.replace("credit <= occ < D;", "credit <= true;"))
    assert simulate_design(d, x, tmp_path / "work").logits.tolist() == expected.tolist()
    meta = (d.w_in, d.n_in, d.in_words, d.w_out, d.n_out, d.out_words, d.out_signed, d.latency,
            d.initiation_interval, d.steady_from)  # fmt: skip
    with contextlib.suppress(ToolFailed):  # the overrun can stop GHDL on a bound check: the runner raises
        run_protocol_tests(d.files, d.top, x, expected, None, meta, tmp_path / "cocotb", "stream_protocol_test")
    log = (tmp_path / "cocotb" / "cocotb.log").read_text()
    assert re.search(r"back_to_back_latency_and_interval\s+PASS", log)
    assert re.search(r"gaps_and_back_pressure\s+FAIL", log)


@pytest.mark.slow
def test_unet_two_levels(tmp_path: Path) -> None:
    """conv, pool, conv, pool, conv, up-sample, concatenate (skip), conv, up-sample, concatenate (skip)."""
    g = quantised(unet_graph(R(30), size=8))
    d = check_stream(g, tmp_path, n=12)
    fifos = {f.name: f for f in (tmp_path / "vhdl").glob("unet_fifo_*.vhd")}
    assert fifos, "the skip connections need FIFOs"
    # the outer skip (r1, 8x8) must run further ahead than the inner one (r2, 4x4)
    top = (tmp_path / "vhdl" / "unet.vhd").read_text()
    sizes = {m.group(2): int(m.group(1)) for m in re.finditer(r"-- FIFO of (\d+) pixels of (\w+)", top)}
    assert sizes["r1"] > sizes["r2"] > 0
    assert d.initiation_interval == 10 * 10  # the first convolution's padded grid: full speed
    x = inputs(g, 4)
    expected = golden.run(g, x)["logits"]
    meta = (d.w_in, d.n_in, d.in_words, d.w_out, d.n_out, d.out_words, d.out_signed, d.latency,
            d.initiation_interval, d.steady_from)  # fmt: skip
    res = run_protocol_tests(d.files, d.top, x, expected, None, meta, tmp_path / "cocotb", "stream_protocol_test")
    assert (res.tests, res.failed) == (3, 0)


def test_skip_fifo_below_its_bound_deadlocks_in_the_model() -> None:
    """The FIFO on a U-Net's skip connection is sized from the graph: below that the branches
    deadlock (in the handshake model), at it they do not."""
    g = quantised(unet_graph(R(31), size=8))
    p = plan(g, TensorNames(g).short)
    for u in p.units:
        if isinstance(u, Scan):
            u.latency = 1
    outer = next(u for u in p.units if isinstance(u, Fifo) and u.tensor == "r1")
    assert outer.need > 8  # more than a row of the 8x8 skip tensor
    for u in p.units:
        if isinstance(u, Fifo):
            u.entries = max(u.need, 1)
    run(p, 64, 64, 3)  # no deadlock at the bound
    outer.entries = outer.need // 2
    with pytest.raises(Deadlock, match="the design stops after"):
        run(p, 64, 64, 3)


def test_fifos_are_sized_for_full_speed() -> None:
    """Beyond the deadlock bound, FIFOs get what they hold when unbounded: the interval is the
    slowest stage's grid (a long branch needs no FIFO: it is dropped)."""
    g = quantised(unet_graph(R(32), size=8))
    p = plan(g, TensorNames(g).short)
    for u in p.units:
        if isinstance(u, Scan):
            u.latency = 1
    joins_in = sum(isinstance(u, Fifo) for u in p.units)
    size_fifos(p, g)
    kept = [u for u in p.units if isinstance(u, Fifo)]
    assert joins_in == 4 and 2 <= len(kept) < 4
    assert all(u.entries >= u.need for u in kept)


def test_conv1d_autoencoder(tmp_path: Path) -> None:
    """Conv1D, pooling, a strided conv, flatten into a dense bottleneck, back to a sequence, up-sampling."""
    g = quantised(autoencoder_1d(R(40)))
    d = check_stream(g, tmp_path, n=30)
    assert (d.in_words, d.out_words) == (16, 16)


def test_digits_cnn_with_argmax(tmp_path: Path) -> None:
    g = quantised(digits_cnn(R(41)))
    d = check_stream(g, tmp_path, n=60)
    assert d.argmax and d.out_words == 1 and d.n_out == 10


def test_every_unit_kind_synthesises(tmp_path: Path) -> None:
    """ghdl --synth accepts the streaming design: windows, pooling, up-sampling, padding, cropping,
    forks, join FIFOs, global pooling, a reshape that keeps the channels, flatten, dense, arg-max."""
    rng = R(50)
    nodes: list[Node] = [
        conv("c1", "input", rng, 3, 1, 2), Clip(name="r1", inputs=["c1"]),
        pool("p1", "r1", 2),
        Upsample(name="u1", inputs=["p1"], factors=(2, 2)),
        Concat(name="cat", inputs=["u1", "r1"]),
        Pad(name="pad", inputs=["cat"], pads=((1, 1), (0, 1))),
        Crop(name="crop", inputs=["pad"], crops=((1, 1), (1, 0))),
        Add(name="add", inputs=["crop", "cat"]),
        Reshape(name="seq", inputs=["add"], target=(16, 4)),
        _pool("gap", "seq", "avg", (16,), (1,), ((0, 0),), global_pool=True),
        Reshape(name="flat", inputs=["gap"], target=(4,), label="flatten"),
        _dense("fc", "flat", rng, 4, 3),
    ]  # fmt: skip
    g = quantised(_graph("every_unit", (4, 4, 1), nodes, output_activation="softmax"))
    d = check_stream(g, tmp_path, n=20)
    work = tmp_path / "synth"
    analyse(d.files, work)
    netlist = run_tool(["ghdl", "--synth", STD, f"--workdir={work}", "--out=verilog", d.top], work, "ghdl --synth")
    assert "module every_unit" in netlist and "in_ready" in netlist and "out_argmax" in netlist


def test_a_spatial_concatenation_is_refused(tmp_path: Path) -> None:
    g = quantised(_graph("cat_rows", (3, 4, 2), [Concat(name="rows", inputs=["input", "input"], axis=0)]))
    why = r"layer 'rows' \(concat\): concatenation along a spatial axis .* --io parallel"
    with pytest.raises(UserError, match=why):
        render(g, tmp_path / "vhdl", tmp_path / "sim", io="stream")


# ---- the --io choice ----


def test_io_default_rule() -> None:
    mlp = make_graph("mlp", "keras", "x", 16, [make_node("fc", "dense", ["input"], 8, weight=np.ones((16, 8)),
                                                         bias=np.zeros(8))])  # fmt: skip
    quantised(mlp)
    assert choose_io(mlp)[0] == "parallel" and "no tensor has spatial axes" in choose_io(mlp)[1]
    small = quantised(_graph("small", (8, 8, 1), [conv("c", "input", R(60), 3, 1, 4), pool("p", "c", 2)]))
    io, why = choose_io(small)  # 64 positions x 36 weights (less those quantised to zero)
    assert io == "parallel" and "within the limits" in why
    assert re.search(r"has 2,[0-9]{3} constant multiplications", why)
    cnn = quantised(digits_cnn(R(60)))  # 8x8x1 but 16 filters of 72 taps after the pooling: 23,040
    assert choose_io(cnn)[0] == "stream"
    big = quantised(unet_graph(R(61), size=32))
    io, why = choose_io(big)
    assert io == "stream" and f"{PARALLEL_MAX_MULTIPLIERS:,}" in why and "over the limits" in why
    signal = quantised(_graph("signal", (1024, 1), [conv("c", "input", R(62), 3, 1, 2, dims=1)]))
    assert choose_io(signal)[0] == "stream"  # 2,048 values out of the convolution


def test_io_option_documents_the_rule() -> None:
    help_text = " ".join(next(a for a in build_parser()._actions if a.dest == "io").help.split())
    assert f"{PARALLEL_MAX_MULTIPLIERS:,} constant multiplications" in help_text
    assert f"{PARALLEL_MAX_VALUES:,} values" in help_text


def test_render_refuses_an_unknown_architecture(tmp_path: Path) -> None:
    g = quantised(OPS["relu"]())
    with pytest.raises(UserError, match="--io must be one of parallel, stream, got 'systolic'"):
        render(g, tmp_path / "v", tmp_path / "s", io="systolic")


# ---- verify on a streaming design ----


def _outdir(g: Graph, x: np.ndarray, outdir: Path) -> None:
    """What a run writes for verify: the design, design.json, the verification inputs."""
    d = render(g, outdir / "vhdl", outdir / "sim", io="stream")
    np.save(outdir / "sim" / "inputs.npy", x)
    (outdir / "design.json").write_text(json.dumps({"ir": g.to_json(), "vhdl": d.to_json(), "hls": None}))


@pytest.mark.slow
def test_verify_catches_a_corrupted_streaming_design(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    g = quantised(unet_graph(R(70), size=8))
    outdir = tmp_path / "run"
    _outdir(g, inputs(g, 10), outdir)
    design = json.loads((outdir / "design.json").read_text())["vhdl"]
    assert design["architecture"] == "stream" and design["in_words"] == 64
    assert verify_outdir(outdir, quiet=True) == 0
    core = outdir / "vhdl" / "unet_c4_core.vhd"
    text = core.read_text()
    m = re.search(r"x\((\d+)\) \* (\d+)", text)
    assert m is not None
    core.write_text(text[: m.start(2)] + str(int(m.group(2)) + 1) + text[m.end(2) :])
    assert verify_outdir(outdir, quiet=True) == 1


@pytest.mark.slow
def test_verify_catches_a_wrong_stated_interval(tmp_path: Path) -> None:
    """design.json states one clock less per image than the design takes: the measured interval
    disagrees, and verification fails although every output is right."""
    g = quantised(OPS["conv2d_same"]())
    outdir = tmp_path / "run"
    x = inputs(g, 6)
    _outdir(g, x, outdir)
    desc = json.loads((outdir / "design.json").read_text())
    desc["vhdl"]["initiation_interval"] -= 1
    (outdir / "design.json").write_text(json.dumps(desc))
    graph, designs, _ = load_outdir(outdir)
    v = verify(graph, designs, x, {}, Progress(quiet=True))
    assert v.mismatches == 0 and v.timing is not None and not v.timing["agree"]
    assert v.timing["measured"]["initiation_interval"] == v.timing["stated"]["initiation_interval"] + 1
    assert not v.passed


# ---- the command ----


@pytest.mark.slow
def test_cli_io_stream_end_to_end(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--io stream on a Keras MLP: one word per sample, verified, timing stated and measured, and
    recorded in design.json so that verify re-simulates the same design."""
    outdir = tmp_path / "out"
    assert main([str(small_mlp("stream_mlp", 0.3)), "--io", "stream", "--simulate", "60", "-o", str(outdir), "-q"]) == 0
    r = report(outdir)
    hw, v = r["hardware"], r["verification"]
    assert hw["io"]["architecture"] == "stream" and hw["io"]["chosen_by"] == "--io"
    assert "the size rule gives parallel" in hw["io"]["reason"]
    assert v["bit_exact"] and v["protocol"] == {"tests": 3, "failed": 0, "samples": 60, "backend": "mcode"}
    assert v["timing"]["agree"] and v["timing"]["stated"]["latency_cycles"] == hw["latency_cycles"]
    assert json.loads((outdir / "design.json").read_text())["vhdl"]["architecture"] == "stream"
    out = capsys.readouterr().out
    assert "architecture: stream (--io: asked for" in out and "latency and interval measured as stated" in out
    assert main(["verify", str(outdir), "-q"]) == 0


def test_cli_io_default_and_refusals(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(small_mlp("io_mlp", 0.3))
    assert main([model, "--target", "hls", "--io", "stream", "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "--io chooses the VHDL design's architecture: use it with --target vhdl or both" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        main([model, "--io", "systolic"])
    assert "invalid choice: 'systolic'" in capsys.readouterr().err


@pytest.mark.parametrize(("io", "shape"), [("parallel", (6,)), ("stream", (6,)), ("stream", (3, 2))])
def test_the_arg_max_takes_the_first_of_equal_outputs(io: str, shape: tuple[int, ...], tmp_path: Path) -> None:
    """Outputs 1 and 3, and 0, 4 and 6, are always equal (equal weight columns and biases): the arg-max is
    the first of the largest, as numpy's is, in the registered tournament of the parallel design and in the
    streaming one (whose outputs come as one word, or as three words of seven in the (3, 2) case)."""
    rng = R(70)
    w = rng.normal(0, 0.5, (6, 7))
    w[:, 3], w[:, 4], w[:, 6] = w[:, 1], w[:, 0], w[:, 0]
    b = rng.normal(0, 0.1, 7)
    b[3], b[4], b[6] = b[1], b[0], b[0]
    nodes: list[Node] = [Linear(name="fc", inputs=["input"], weight=w, bias=b)]
    if shape != (6,):
        w2 = np.concatenate([w, w, w], axis=1)  # three words of seven: the image's arg-max across words
        nodes = [Reshape(name="flat", inputs=["input"], target=(6,), label="flatten"),
                 Linear(name="fc", inputs=["flat"], weight=w2, bias=np.concatenate([b, b, b])),
                 Reshape(name="words", inputs=["fc"], target=(3, 7))]  # fmt: skip
    g = quantised(_graph(f"ties_{io}_{len(shape)}", shape, nodes, output_activation="softmax"))
    x = inputs(g, 60)
    expected = golden.run(g, x)
    tied = expected["logits"].reshape(len(x), -1)
    assert (tied[:, 1] == tied[:, 3]).all() and (tied[:, 0] == tied[:, 4]).all()
    assert {0, 1} <= set(expected["argmax"].tolist())  # ties decided both ways: by their first index
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", io=io)
    if io == "parallel":  # seven values: three registered levels of comparisons (7 -> 4 -> 2 -> 1)
        assert "level 3: 2 -> 1" in (tmp_path / "vhdl" / f"{d.top}_argmax.vhd").read_text()
    sim = simulate_design(d, x, tmp_path / "work")
    assert sim.argmax is not None and sim.argmax.tolist() == expected["argmax"].tolist()
