"""The lookup-table softmax: golden model == hls4ml's softmax C simulation == the VHDL, tables as hls4ml's C++ fills
them, and ``--softmax table`` through the command, caught by ``verify`` when a table entry or a precision changes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import report, retype_hls

from mlinfn_compress.backends.hls import render_hls
from mlinfn_compress.backends.vhdl import render
from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import FixedType, quantize, to_float
from mlinfn_compress.compress.flow.inputs import corner_rows
from mlinfn_compress.compress.flow.report import layer_rows
from mlinfn_compress.compress.ir import Graph, IRError, Linear, Softmax, Table, golden
from mlinfn_compress.compress.ir.softmax import exp_table, inv_table
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.compress.passes.softmax_table import apply_softmax_table
from mlinfn_compress.errors import UserError
from mlinfn_compress.sim.ghdl import simulate
from mlinfn_compress.sim.hls_csim import precision_differences, run_csim

HLS_TEMPLATES = Path(__import__("hls4ml").__file__).parent / "templates" / "vivado"
F = FixedType

# (inp_norm_t, exp_table_t, exp size, inv_inp_t, inv_table_t, inv size): signed and unsigned index types, every
# rounding family, wrapping tables (1/0 = inf wraps to 0), saturating ones, tables as large as their index allows
TABLE_CASES = [
    (F(8, 3, True, "RND", "SAT"), F(12, 1, False, "RND", "SAT"), 64, F(7, 4, True, "TRN", "SAT"),
     F(10, 2, True, "RND_ZERO", "WRAP"), 32),
    (F(10, 4, False, "RND_CONV", "SAT"), F(16, 1, False, "RND_CONV", "SAT"), 1024, F(10, 4, False, "RND_CONV", "SAT"),
     F(16, 1, False, "RND_CONV", "SAT"), 1024),
    (F(12, 2, False, "TRN", "WRAP"), F(9, 0, False, "RND_INF", "WRAP"), 256, F(14, 6, False, "TRN_ZERO", "SAT"),
     F(18, 3, True, "RND_MIN_INF", "SAT_SYM"), 2048),
]  # fmt: skip


def _cpp_type(t: FixedType) -> str:
    return f"ap_{'' if t.signed else 'u'}fixed<{t.width},{t.integer},AP_{t.rounding},AP_{t.overflow}>"


@pytest.mark.slow
def test_tables_are_what_hls4mls_cpp_fills_them_with(tmp_path: Path) -> None:
    """hls4ml's own init_exp_table / init_invert_table, compiled with g++, against ours."""
    structs, calls = [], []
    for k, (norm, exp_t, n_exp, inv_inp, inv_t, n_inv) in enumerate(TABLE_CASES):
        structs.append(
            f"struct cfg{k} {{ static const unsigned exp_table_size = {n_exp}; "
            f"static const unsigned inv_table_size = {n_inv}; static constexpr float exp_scale = 1.0; "
            f"typedef {_cpp_type(exp_t)} exp_table_t; typedef {_cpp_type(inv_t)} inv_table_t; }};"
        )
        calls.append(
            f"{{ cfg{k}::exp_table_t e[{n_exp}]; cfg{k}::inv_table_t v[{n_inv}];\n"
            f"  nnet::init_exp_table<{_cpp_type(norm)}, cfg{k}>(e, true);\n"
            f"  nnet::init_invert_table<{_cpp_type(inv_inp)}, cfg{k}>(v);\n"
            f"  for (auto &a : e) std::cout << a.to_double() << ' '; std::cout << '\\n';\n"
            f"  for (auto &a : v) std::cout << a.to_double() << ' '; std::cout << '\\n'; }}"
        )
    src = tmp_path / "tables.cpp"
    src.write_text(
        '#include <iostream>\n#include "ap_fixed.h"\n#include "nnet_activation.h"\n'
        + "\n".join(structs)
        + "\nint main() {\n  std::cout.precision(20);\n"
        + "\n".join(calls)
        + "\n}\n"
    )
    exe = tmp_path / "tables"
    cmd = ["g++", "-O3", "-std=c++17", f"-I{HLS_TEMPLATES / 'ap_types'}", f"-I{HLS_TEMPLATES / 'nnet_utils'}"]
    subprocess.run([*cmd, str(src), "-o", str(exe)], check=True, capture_output=True)
    lines = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    for k, (norm, exp_t, n_exp, inv_inp, inv_t, n_inv) in enumerate(TABLE_CASES):
        cpp_exp = np.array([float(v) for v in lines[2 * k].split()])
        cpp_inv = np.array([float(v) for v in lines[2 * k + 1].split()])
        assert (to_float(exp_table(norm, n_exp, exp_t), exp_t.frac) == cpp_exp).all(), k
        assert (to_float(inv_table(inv_inp, n_inv, inv_t), inv_t.frac) == cpp_inv).all(), k
    assert inv_table(TABLE_CASES[0][3], 32, TABLE_CASES[0][4])[0] == 0  # 1/0 = inf, wrapped


def softmax_graph(name: str, shape: tuple[int, ...], n: int, seed: int) -> Graph:
    rng = np.random.default_rng(seed)
    dense = Linear(name="logits", inputs=["input"], weight=rng.normal(0, 1.5, (shape[-1], n)),
                   bias=rng.normal(0, 0.5, n))  # fmt: skip
    g = Graph(name, "keras", "hand-built", shape, [dense], output_activation="softmax")
    g.infer_shapes()
    return g


def odd_formats(g: Graph) -> None:
    """A softmax on a 2-D tensor with formats unlike the defaults: saturating sums, signed index types."""
    node = g.output
    assert isinstance(node, Softmax)
    node.inp_norm_type = F(9, 3, True, "RND", "SAT")
    node.exp_table_type = F(11, 1, False, "RND_INF", "SAT")
    node.accum_type = F(11, 2, False, "RND", "SAT")  # sums above 4 saturate, partial sums included
    node.inv_inp_type = F(8, 3, True, "TRN", "SAT")
    node.inv_table_type = F(12, 1, False, "RND_CONV", "SAT")
    node.result_type = F(9, 0, False, "RND_ZERO", "SAT")
    node.exp_table_size, node.inv_table_size = 256, 128
    node.compute_tables()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["defaults", "odd"])
def test_golden_equals_hls4mls_softmax_and_the_vhdl(case: str, tmp_path: Path) -> None:
    shape, n = ((6,), 10) if case == "defaults" else ((4, 3), 5)
    g = softmax_graph(case, shape, n, seed=4)
    cfg = QuantConfig(act_bits=14)
    quantise(g, cfg, default_inputs(2000, shape) * 2)
    node = apply_softmax_table(g, cfg)
    if case == "odd":
        odd_formats(g)
    assert g.input_type is not None and g.has_argmax and g.output is node
    x = np.concatenate([corner_rows(g.input_size, g.input_type, seed=1),
                        quantize(default_inputs(1500, shape, seed=2) * 3, g.input_type).reshape(1500, -1)])  # fmt: skip
    gold = golden.run(g, x)
    p = render_hls(g, tmp_path / "hls")
    assert [lay.class_name for lay in p.layers][-1] == "Softmax" and precision_differences(p) == []
    hls = run_csim(p, x).outputs
    d = render(g, tmp_path / "vhdl", tmp_path / "sim")
    vhdl = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp_path / "work")
    assert (hls == gold["logits"]).all(), f"{int((hls != gold['logits']).any(axis=1).sum())} rows differ"
    assert (vhdl.logits == gold["logits"]).all() and (vhdl.argmax == gold["argmax"]).all()
    assert len(np.unique(gold["logits"])) > 200
    if case == "odd":  # the saturating sum was reached, so the tree's order mattered
        total = golden.run_all(g, x)["logits"]
        assert (to_float(total, g.type_of("logits").frac) > 1.5).any()


def test_the_pass_wants_a_final_softmax_and_table_sizes_must_fit_their_index() -> None:
    g = softmax_graph("s", (4,), 3, seed=0)
    g.output_activation = "sigmoid"
    quantise(g, QuantConfig(), default_inputs(100, (4,)))
    with pytest.raises(UserError, match=r"--softmax table: the model 'hand-built' ends in a sigmoid, not a softmax"):
        apply_softmax_table(g, QuantConfig())
    g.output_activation = "softmax"
    node = apply_softmax_table(g, QuantConfig())
    assert g.output is node and node.exp_table_size == 1024 and node.inp_norm_type == F(10, 4, False, "RND_CONV", "SAT")
    node.inp_norm_type = F(8, 3, False)
    with pytest.raises(IRError, match=re.escape(
        "node 'softmax': the exp table's 1024 entries need 10 index bits, but its index type ufixed<8,3,TRN,WRAP> has 8"
    )):  # fmt: skip
        node.check()


def test_every_table_reports_its_largest_error() -> None:
    g = Graph("t", "keras", "hand-built", (4,), [Table(name="tanh", inputs=["input"], function="tanh")])
    g.infer_shapes()
    quantise(g, QuantConfig(input_type=F(12, 4, True, "RND_CONV", "SAT")), default_inputs(100, (4,)))
    (row,) = layer_rows(g)
    err = row["table_error"]
    assert err["over"] == "every value of fixed<12,4,RND_CONV,SAT>" and 0 < err["max_abs_error"] < 0.01
    node = g.nodes[0]
    assert isinstance(node, Table) and node.result_type is not None and g.input_type is not None
    x = np.arange(-(2**11), 2**11)
    y = to_float(node.forward_int([x[None, :]], [g.input_type])[0], node.result_type.frac)
    assert err["max_abs_error"] == float(np.max(np.abs(y - np.tanh(x / 2**8))))


@pytest.fixture(scope="module")
def table_run(qkeras_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("softmax") / "out"
    args = [str(qkeras_mlp), "--target", "both", "--softmax", "table", "-o", str(outdir), "-q", "--simulate", "300"]
    assert main(args) == 0
    return outdir


@pytest.mark.slow
def test_softmax_table_through_the_command(table_run: Path) -> None:
    r = report(table_run)
    v, out = r["verification"], r["hardware"]["outputs"]
    assert v["against"] == [
        "vhdl: golden", "vhdl: golden (arg-max)", "hls: golden", "hls vs vhdl",
        "golden logits before the table softmax vs qkeras", "golden logits before the table softmax vs twin",
    ]  # fmt: skip
    assert v["mismatches"] == 0 and v["hls"]["precision_differences"] == [] and v["protocol"]["failed"] == 0
    assert out["argmax"] is True and out["logits"] == "ufixed<16,1,RND_CONV,SAT>"
    assert "probabilities of the lookup-table softmax 'softmax'" in out["note"]
    assert 0 < out["softmax"]["max_abs_error_vs_float"] < 0.02 and out["softmax"]["samples"] == 300
    last = r["layers"][-1]
    assert last["op"] == "softmax" and last["inputs"] == ["output"] and "exp_table" in last["other_types"]
    readme = (table_run / "hls" / "README.md").read_text()
    assert "| Softmax | `softmax` |" in readme and "outputs (probabilities: the lookup-table softmax)" in readme


def _copy(run: Path, tmp_path: Path) -> Path:
    outdir = tmp_path / "mutant"
    shutil.copytree(run, outdir)
    return outdir


@pytest.mark.slow
def test_verify_catches_a_changed_exp_table_entry_in_the_vhdl(table_run: Path, tmp_path: Path, capsys: Any) -> None:
    outdir = _copy(table_run, tmp_path)
    (vhd,) = (outdir / "vhdl").glob("*_softmax.vhd")
    text = vhd.read_text()
    table = re.search(r"constant EXP_TABLE : table_t\(0 to \d+\) := \(\n\s*(\d+), (\d+)", text)
    assert table is not None
    # exp(-d) for the second-smallest difference: reached whenever two logits are close
    changed = text[: table.start(2)] + str(int(table.group(2)) - 1) + text[table.end(2) :]
    vhd.write_text(changed)
    assert main(["verify", str(outdir), "-q"]) == 1
    v = report(outdir)["verification"]
    assert v["first_mismatch"]["against"] == "vhdl: golden" and "MISMATCH" in capsys.readouterr().out


@pytest.mark.slow
def test_verify_catches_a_changed_softmax_precision_in_the_hls_project(table_run: Path, tmp_path: Path) -> None:
    outdir = _copy(table_run, tmp_path)
    retype_hls(outdir, "softmax_inv_table_t", "ap_ufixed<10,1,AP_RND_CONV,AP_SAT,0>")
    assert main(["verify", str(outdir), "-q"]) == 1
    v = report(outdir)["verification"]
    (difference,) = v["hls"]["precision_differences"]
    assert difference == (
        "layer 'softmax' (IR node 'softmax') inv_table: written ufixed<10,1,RND_CONV,SAT>, IR ufixed<16,1,RND_CONV,SAT>"
    )
    assert next(c for c in v["comparisons"] if c["against"] == "hls: golden")["mismatches"] > 0


def test_softmax_table_needs_a_model_that_ends_in_a_softmax(small_mlp: Any, tmp_path: Path, capsys: Any) -> None:
    model = small_mlp("no_softmax", 0.0)
    assert main([str(model), "--softmax", "table", "-o", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"--softmax table: the model {model} does not end in a softmax; leave --softmax out" in err
    assert not (tmp_path / "out").exists()
