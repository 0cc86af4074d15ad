"""--arch bondmachine --reuse R: small cores with weight ROMs, joined by handshakes, equal to golden bit for bit.

Hand-built networks (odd sizes, pruned weights, relu, cast, lookup table and
leaky relu between the dense layers, an arg-max) go through the architecture
at several R and the whole verification: the textio bench against golden, the
latency and interval it measures against those the design states, and cocotb
with gaps in in_valid, out_ready low at random and a reset mid-stream.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import report, sparse_normal

from mlinfn_compress.backends.vhdl import VhdlDesign, render
from mlinfn_compress.backends.vhdl.bondmachine_plan import CORE_PIPELINE, assign, plan, timing
from mlinfn_compress.backends.vhdl.target import emitted
from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import FixedType, quantize
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.flow.verification import Verification, verify
from mlinfn_compress.compress.ir import (
    Add,
    Cast,
    Clip,
    Graph,
    LeakyRelu,
    Linear,
    Node,
    Pool,
    Reshape,
    Table,
    Window,
    golden,
)
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.errors import UserError
from mlinfn_compress.sim.iverilog import check_netlist, netlist_vectors
from mlinfn_compress.synth.netlist import ghdl_netlist

needs_ghdl = pytest.mark.skipif(shutil.which("ghdl") is None, reason="GHDL not installed")


def mixed_graph() -> Graph:
    """7 -> 9 (half the weights zero, neuron 3 none) -> relu -> 6 -> cast -> tanh table -> 5 -> leaky
    relu -> 3, softmax at the output (the hardware gives the logits and their arg-max)."""
    rng = np.random.default_rng(5)
    w1 = sparse_normal(rng, (7, 9), 0.6, 0.5)
    w1[:, 3] = 0.0
    nodes: list[Node] = [
        Linear(name="fc1", inputs=["input"], weight=w1, bias=rng.normal(0, 0.3, 9)),
        Clip(name="relu1", inputs=["fc1"]),
        Linear(name="fc2", inputs=["relu1"], weight=sparse_normal(rng, (9, 6), 0.6, 0.3), bias=rng.normal(0, 0.3, 6)),
        Cast(name="narrow", inputs=["fc2"], result_type=FixedType(9, 3, True, "RND", "SAT")),
        Table(name="tanh", inputs=["narrow"], function="tanh"),
        Linear(name="fc3", inputs=["tanh"], weight=sparse_normal(rng, (6, 5), 0.8, 0.2), bias=rng.normal(0, 0.3, 5)),
        LeakyRelu(name="leaky", inputs=["fc3"], alpha=0.25),
        Linear(name="out", inputs=["leaky"], weight=sparse_normal(rng, (5, 3), 0.8, 0.2), bias=rng.normal(0, 0.3, 3)),
    ]  # fmt: skip
    g = Graph("mixed_mlp", "keras", "hand-built", (7,), nodes, output_activation="softmax")
    g.infer_shapes()
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(2000, (7,), 0))
    return g


def dead_layer_graph() -> Graph:
    """5 -> 4 with every weight zero (its outputs are its biases through the relu) -> relu -> 3."""
    rng = np.random.default_rng(6)
    nodes: list[Node] = [
        Linear(name="dead", inputs=["input"], weight=np.zeros((5, 4)), bias=np.array([0.5, -0.25, 0.75, 0.125])),
        Clip(name="relu", inputs=["dead"]),
        Linear(name="fc", inputs=["relu"], weight=rng.normal(0, 0.5, (4, 3)), bias=rng.normal(0, 0.2, 3)),
    ]  # fmt: skip
    g = Graph("dead_layer", "keras", "hand-built", (5,), nodes)
    g.infer_shapes()
    quantise(g, QuantConfig(weight_bits=6, act_bits=10), default_inputs(500, (5,), 0))
    return g


def inputs(g: Graph, n: int, seed: int = 3) -> np.ndarray:
    assert g.input_type is not None
    return quantize(default_inputs(n, g.input_shape, seed=seed) * 2, g.input_type).reshape(n, -1)


def verified(g: Graph, reuse: int, tmp: Path, n: int = 250) -> tuple[VhdlDesign, Verification]:
    d = render(g, tmp / "vhdl", tmp / "sim", arch="bondmachine", reuse=reuse)
    x = inputs(g, n)
    return d, verify(g, [emitted(d)], x, {}, Progress(quiet=True))


# ---- the plan: cores, ROMs, timing ----


def test_neurons_are_shared_out_longest_first_at_most_r_to_a_core() -> None:
    counts = [5, 0, 1, 4, 4, 2, 3]  # neuron 1 has no non-zero weight
    cores = assign(counts, 2)
    assert len(cores) == 3 and all(len(c) <= 2 for c in cores)
    assert sorted(j for c in cores for j in c) == [0, 2, 3, 4, 5, 6]
    assert sorted(sum(counts[j] for j in c) for c in cores) == [6, 6, 7]
    assert assign(counts, 1) == [[0], [3], [4], [6], [5], [2]]
    assert assign([0, 0], 3) == []


def test_a_rom_holds_only_the_non_zero_weights_with_their_inputs() -> None:
    g = mixed_graph()
    for reuse in (1, 2, 4, 8, 100):
        layers = plan(g, reuse)
        assert [layer.linear.name for layer in layers] == ["fc1", "fc2", "fc3", "out"]
        assert [[op.name for op in layer.ops] for layer in layers] == [["relu1"], ["narrow", "tanh"], ["leaky"], []]
        for layer in layers:
            w = np.asarray(layer.linear.weight_int)
            active = [j for j in range(w.shape[1]) if np.any(w[:, j])]
            assert len(layer.cores) == -(-len(active) // reuse)
            served = sorted(j for c in layer.cores for j in c.neurons)
            assert served == active and set(layer.constants) == set(range(w.shape[1])) - set(active)
            for core in layer.cores:
                assert 0 < len(core.neurons) <= reuse and core.last.count(True) == len(core.neurons)
                k = 0
                for j in core.neurons:  # neuron after neuron, every non-zero weight once, none other
                    rows = np.flatnonzero(w[:, j]).tolist()
                    assert core.inputs[k : k + len(rows)] == rows
                    assert core.weights[k : k + len(rows)] == w[rows, j].tolist()
                    assert core.last[k + len(rows) - 1] and not any(core.last[k : k + len(rows) - 1])
                    k += len(rows)
                assert k == core.entries and 0 not in core.weights
            longest = max(c.entries for c in layer.cores)
            assert layer.steps == longest + CORE_PIPELINE + len(layer.ops)
    assert 3 in plan(g, 4)[0].constants  # the neuron with no weight


def test_the_timing_model_chains_the_layers() -> None:
    g = mixed_graph()
    layers = plan(g, 4)
    t = timing(layers)
    assert t.latency == sum(layer.period for layer in layers)
    assert t.initiation_interval == max(layer.period for layer in layers)


# ---- the design in GHDL and cocotb ----


@pytest.mark.slow
@needs_ghdl
@pytest.mark.parametrize("reuse", [1, 4, 8])
def test_bit_exact_with_stalls_at_several_r(reuse: int, tmp_path: Path) -> None:
    g = mixed_graph()
    d, v = verified(g, reuse, tmp_path)
    assert v.mismatches == 0 and all(c.bit_exact for c in v.comparisons)
    assert [c.against for c in v.comparisons] == ["golden", "golden (arg-max)"]
    assert v.protocol == {"tests": 3, "failed": 0, "samples": v.protocol["samples"], "backend": "mcode"}
    assert v.protocol["samples"] >= 3
    assert v.timing is not None and v.timing["agree"] and v.passed
    assert v.timing["measured"]["latency_cycles"] == d.latency
    assert v.timing["measured"]["initiation_interval"] == d.initiation_interval
    layers = plan(g, reuse)
    assert d.initiation_interval == max(layer.period for layer in layers)
    rows = {row["name"]: row for row in d.layers}
    assert rows["fc1"]["cores"] == -(-8 // reuse) and rows["fc1"]["constant_neurons"] == 1
    assert rows["tanh"]["fused_into"] == "fc2" and d.reuse == reuse and d.architecture == "bondmachine"
    cores = sorted(p.name for p in (tmp_path / "vhdl").glob("mixed_mlp_fc1_core*.vhd"))
    assert len(cores) == rows["fc1"]["cores"]


@needs_ghdl
def test_more_reuse_fewer_cores_longer_interval(tmp_path: Path) -> None:
    g = mixed_graph()
    one, eight = (render(g, tmp_path / f"r{r}", tmp_path / f"s{r}", arch="bondmachine", reuse=r) for r in (1, 8))
    assert sum(row.get("cores", 0) for row in one.layers) == 8 + 6 + 5 + 3
    assert sum(row.get("cores", 0) for row in eight.layers) == 4
    assert eight.initiation_interval > one.initiation_interval and eight.latency > one.latency


@pytest.mark.slow
@needs_ghdl
def test_a_layer_without_any_non_zero_weight(tmp_path: Path) -> None:
    g = dead_layer_graph()
    d, v = verified(g, 2, tmp_path, n=60)
    assert v.passed and v.mismatches == 0
    dead = next(row for row in d.layers if row["name"] == "dead")
    assert dead["cores"] == 0 and dead["constant_neurons"] == 4 and dead["latency"] == 2
    assert not list((tmp_path / "vhdl").glob("dead_layer_dead_core*.vhd"))
    x = inputs(g, 60)
    assert len(np.unique(golden.flat(g.run_int(x)["relu"]), axis=0)) == 1  # the same whatever the input


@pytest.mark.slow
@needs_ghdl
def test_a_changed_rom_entry_is_caught(tmp_path: Path) -> None:
    g = mixed_graph()
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", arch="bondmachine", reuse=4)
    core = tmp_path / "vhdl" / "mixed_mlp_fc1_core0.vhd"
    text = core.read_text()
    m = re.search(r"constant WGT  : wgt_rom_t := \(\s*(-?\d+)", text)
    assert m is not None
    w = int(m.group(1))
    core.write_text(text[: m.start(1)] + str(w + 1 if w < 0 else w - 1) + text[m.end(1) :])
    v = verify(g, [emitted(d)], inputs(g, 200), {}, Progress(quiet=True))
    assert v.mismatches > 0 and not v.passed


@pytest.mark.slow
@needs_ghdl
@pytest.mark.parametrize("reuse", [1, 3])  # at R = 1 every core has one neuron: no null ranges, no zero-width ports
def test_ghdl_synth_accepts_the_design_and_its_netlist_equals_golden(reuse: int, tmp_path: Path) -> None:
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog not installed")
    g = mixed_graph()
    d = render(g, tmp_path / "vhdl", tmp_path / "sim", arch="bondmachine", reuse=reuse)
    netlist, repairs = ghdl_netlist(d.files, d.top, tmp_path / "netlist.v")
    text = netlist.read_text()
    assert f"module {d.top}" in text and "module mixed_mlp_fc1_core0" in text
    assert not re.search(r"\b0'b", text)  # no zero-width constant (yosys refuses them)
    assert repairs["signed_products"] >= 1 and repairs["unrepaired"] == 0  # each core's one multiplier
    assert g.input_type is not None
    x = netlist_vectors(inputs(g, 50), g.input_type.min_int, g.input_type.max_int)
    check = check_netlist(netlist, d, x, golden.run(g, x), tmp_path / "sim_netlist")
    assert check["bit_exact"] and check["samples"] == 200 and check["undefined_outputs"] == 0


# ---- what the architecture refuses ----


def conv_graph() -> Graph:
    rng = np.random.default_rng(0)
    nodes: list[Node] = [
        Linear(name="conv", inputs=["input"], weight=rng.normal(0, 0.5, (6, 2)), bias=np.zeros(2),
               window=Window((3,), (1,), ((0, 0),)), label="conv1d"),
        Reshape(name="flat", inputs=["conv"], target=(8,), label="flatten"),
        Linear(name="fc", inputs=["flat"], weight=rng.normal(0, 0.5, (8, 2)), bias=np.zeros(2)),
    ]  # fmt: skip
    g = Graph("conv", "keras", "conv.h5", (6, 2), nodes)
    g.infer_shapes()
    return g


def branch_graph() -> Graph:
    rng = np.random.default_rng(0)
    nodes: list[Node] = [
        Linear(name="a", inputs=["input"], weight=rng.normal(0, 0.5, (4, 4)), bias=np.zeros(4)),
        Linear(name="b", inputs=["input"], weight=rng.normal(0, 0.5, (4, 4)), bias=np.zeros(4)),
        Add(name="sum", inputs=["a", "b"]),
    ]  # fmt: skip
    g = Graph("branch", "keras", "branch.h5", (4,), nodes)
    g.infer_shapes()
    return g


def leading_relu_graph() -> Graph:
    nodes: list[Node] = [
        Clip(name="pre", inputs=["input"]),
        Linear(name="fc", inputs=["pre"], weight=np.ones((4, 2)), bias=np.zeros(2)),
    ]
    g = Graph("lead", "keras", "lead.h5", (4,), nodes)
    g.infer_shapes()
    return g


def pooled_graph() -> Graph:
    nodes: list[Node] = [
        Linear(name="fc", inputs=["input"], weight=np.ones((4, 4)), bias=np.zeros(4)),
        Reshape(name="seq", inputs=["fc"], target=(4, 1), label="reshape"),
        Pool(name="pool", inputs=["seq"], mode="max", window=Window((2,), (2,), ((0, 0),))),
    ]
    g = Graph("pooled", "keras", "pooled.h5", (4,), nodes)
    g.infer_shapes()
    return g


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (conv_graph, r"^conv\.h5: the input has shape \(6, 2\); --arch bondmachine takes a flat vector"),
        (branch_graph, r"^branch\.h5: layer 'b' \(dense\) does not read the previous layer alone"),
        (leading_relu_graph, r"^lead\.h5: layer 'pre' \(relu\) comes before the first dense layer"),
        (pooled_graph, r"^pooled\.h5: layer 'seq' \(reshape\) has no bondmachine core"),
    ],
)
def test_what_it_does_not_take_is_refused_naming_the_layer(build: object, message: str, tmp_path: Path) -> None:
    g = build()  # type: ignore[operator]
    with pytest.raises(UserError, match=message) as e:
        render(g, tmp_path / "vhdl", tmp_path / "sim", arch="bondmachine", reuse=2)
    assert "use --arch dataflow" in str(e.value) and e.value.exit_code == 2
    assert not (tmp_path / "vhdl").exists()


# ---- the command line ----


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "bondmachine", "--reuse", "0"], "argument --reuse: must be an integer >= 1, got 0"),
        (["--arch", "bondmachine", "--reuse", "two"], "argument --reuse: must be an integer >= 1, got 'two'"),
        (["--reuse", "4"], "--reuse sets how many neurons a bondmachine core serves: use it with --arch bondmachine"),
        (["--arch", "bondmachine", "--io", "parallel"], "--io parallel does not apply to it"),
        (["--arch", "bondmachine", "--dsp"], "a bondmachine core is a multiply-accumulate unit"),
        (["--arch", "bondmachine", "--target", "hls"], "--arch chooses the VHDL design's architecture"),
        (["--arch", "systolic"], "argument --arch: invalid choice: 'systolic'"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        code = main([str(model), *args, "-o", str(tmp_path / "out")])
        raise SystemExit(code)
    assert e.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_model_it_does_not_take_exits_2_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tf_keras as k

    model = k.Sequential([k.layers.Input((6, 2)), k.layers.Conv1D(2, 3), k.layers.Flatten(), k.layers.Dense(2)])
    path = tmp_path / "conv.h5"
    model.save(path, include_optimizer=False)
    assert main([str(path), "--arch", "bondmachine", "-q", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--arch bondmachine takes a flat vector" in err and "use --arch dataflow" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@needs_ghdl
def test_the_command_reports_r_latency_and_interval_and_verify_catches_a_changed_rom(
    qkeras_mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bm"
    assert (
        main([str(qkeras_mlp), "--arch", "bondmachine", "--reuse", "8", "--simulate", "400", "-q", "-o", str(out)]) == 0
    )
    stdout = capsys.readouterr().out
    r = report(out)
    hw = r["hardware"]
    assert hw["io"]["architecture"] == "bondmachine" and hw["io"]["chosen_by"] == "--arch"
    assert (hw["reuse"], hw["cores"], hw["arithmetic"]) == (8, 8 + 4 + 4 + 1, "multiply-accumulate")
    assert hw["latency_cycles"] > hw["initiation_interval"] > 8 and hw["latency_ns"] is None
    ver = r["verification"]
    assert ver["bit_exact"] and ver["against"] == ["golden", "golden (arg-max)", "qkeras", "twin"]
    assert ver["timing"]["agree"] and ver["protocol"]["failed"] == 0 and ver["protocol"]["tests"] == 3
    rows = {row["name"]: row for row in r["layers"]}
    assert rows["fc1"]["cores"] == 8 and rows["relu1"]["computed_in"] == "fc1"
    assert sum(rows["fc2"]["rom_entries"]) == rows["fc2"]["multipliers"]  # one entry per non-zero weight
    assert "17 multiply-accumulate cores, up to 8 neuron(s) each" in stdout and "-> BIT-EXACT" in stdout
    design = json.loads((out / "design.json").read_text())["vhdl"]
    assert design["architecture"] == "bondmachine" and design["reuse"] == 8
    assert "bondmachine, 17 cores, up to 8 neuron(s) each" in (out / "report.html").read_text()
    # verify re-simulates the design as written: the same, then with one weight of one ROM changed
    assert main(["verify", str(out), "-q"]) == 0
    core = out / "vhdl" / "qkeras_mlp_fc1_core2.vhd"
    text = core.read_text()
    m = re.search(r"constant WGT  : wgt_rom_t := \(\s*(-?\d+)", text)
    assert m is not None
    core.write_text(text[: m.start(1)] + str(-int(m.group(1))) + text[m.end(1) :])
    assert main(["verify", str(out), "-q"]) == 1
    assert "-> MISMATCH" in capsys.readouterr().out
    assert report(out)["verification"]["mismatches"] > 0


# ---- the Python API: the same options as keywords ----


def test_the_api_takes_arch_and_reuse_as_keywords_checked_like_the_command(tmp_path: Path) -> None:
    from mlinfn_compress.api import compress, run_options

    model = tmp_path / "m.h5"
    model.write_bytes(b"")
    opts = run_options(model, tmp_path / "o", arch="bondmachine", reuse=4)
    assert (opts.arch, opts.reuse) == ("bondmachine", 4)
    assert (run_options(model).arch, run_options(model).reuse) == ("dataflow", None)
    with pytest.raises(UserError, match=r"^--reuse must be an integer >= 1, got 0$"):
        compress(model, tmp_path / "o", arch="bondmachine", reuse=0)
    with pytest.raises(UserError, match=r"^--arch must be one of dataflow, bondmachine, got 'systolic'$"):
        compress(model, tmp_path / "o", arch="systolic")
    with pytest.raises(UserError, match=r"^--reuse sets how many neurons a bondmachine core serves"):
        compress(model, tmp_path / "o", reuse=2)
    assert not (tmp_path / "o").exists()
