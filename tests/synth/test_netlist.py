"""The netlist is the design: GHDL's synthesised Verilog, simulated in Icarus Verilog, equals golden.

GHDL 2.0 writes signed division, arithmetic shifts and wide constants into
Verilog with other meanings; the tests show that the raw netlist differs from
the golden model, that the repaired one equals it bit for bit, and that a
netlist changed on purpose is caught.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import make_graph, make_node

from mlinfn_compress.backends.vhdl import ArithOptions, VhdlDesign, render
from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import Clip, Graph, Linear, Pool, Reshape, Window, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.sim.iverilog import MIN_SAMPLES, check_netlist, netlist_vectors
from mlinfn_compress.synth import netlist as netlist_mod
from mlinfn_compress.synth.netlist import ghdl_netlist, repair

pytestmark = pytest.mark.skipif(
    shutil.which("ghdl") is None or shutil.which("iverilog") is None, reason="GHDL or Icarus Verilog not installed"
)


def pooled_conv() -> Graph:
    """conv 2x2 -> average pool 3x3 of signed values (divisions of negative sums by 4, 6 and 9 at the
    borders: signed division in GHDL's netlist) -> relu -> dense."""
    rng = np.random.default_rng(2)
    win = Window((3, 3), (2, 2), ((1, 1), (1, 1)))
    nodes = [
        Linear(name="conv", inputs=["input"], weight=rng.normal(0, 0.6, (8, 3)), bias=rng.normal(0, 0.2, 3),
               window=Window((2, 2), (1, 1), ((0, 0), (0, 0))), label="conv2d"),
        Pool(name="avg", inputs=["conv"], mode="avg", window=win),
        Clip(name="relu", inputs=["avg"]),
        Reshape(name="flat", inputs=["relu"], target=(27,), label="flatten"),
        Linear(name="dense", inputs=["flat"], weight=rng.normal(0, 0.4, (27, 4)), bias=rng.normal(0, 0.2, 4)),
    ]  # fmt: skip
    g = Graph("pooled", "keras", "hand-built", (6, 6, 2), nodes)
    g.infer_shapes()
    cfg = QuantConfig(6, 10, FixedType(8, 3, True, "RND_CONV", "SAT"))
    quantise(g, cfg, default_inputs(256, g.input_size, 0).reshape(256, *g.input_shape))
    return g


def wide_dense() -> Graph:
    """A dense layer whose sums need 45 bits (numeric_std arithmetic: wide and negative constants)."""
    rng = np.random.default_rng(3)
    w = rng.integers(-(2**15), 2**15, size=(6, 3))
    w[:, 1] = -(2**15)
    fc = make_node("fc", "dense", ["input"], 3, weight_type=FixedType(16, 2, True), bias_type=FixedType(44, 16, True),
                   accum_type=FixedType(45, 17, True), result_type=FixedType(16, 8, True, "RND_CONV", "SAT"),
                   weight_int=w, bias_int=np.array([2**38 + 12345, -(2**39) + 7, -5]))  # fmt: skip
    return make_graph("wide", "test", "hand-built", 6, [fc], input_type=FixedType(24, 12, True))


def design_and_vectors(g: Graph, tmp: Path) -> tuple[VhdlDesign, np.ndarray]:
    """The design in the naive arithmetic, whose VHDL uses the operators GHDL's Verilog gets wrong
    (signed division, arithmetic shifts, wide constants in products)."""
    d = render(g, tmp / "vhdl", tmp / "sim", ArithOptions(arith="naive"))
    assert g.input_type is not None
    return d, netlist_vectors(np.zeros((0, g.input_size), np.int64), g.input_type.min_int, g.input_type.max_int)


@pytest.mark.slow
@pytest.mark.parametrize(("build", "repairs"), [(pooled_conv, {"sdiv"}), (wide_dense, {"asr", "wide_constants"})])
def test_the_repaired_netlist_equals_golden_and_the_raw_one_does_not(
    build: object, repairs: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = build()  # type: ignore[operator]
    d, x = design_and_vectors(g, tmp_path)
    expected = golden.run(g, x)
    netlist, made = ghdl_netlist(d.files, d.top, tmp_path / "netlist.v")
    assert repairs <= {k for k, n in made.items() if n} and made["unrepaired"] == 0
    check = check_netlist(netlist, d, x, expected, tmp_path / "sim_ok")
    assert check["samples"] == MIN_SAMPLES and check["mismatches"] == 0 and check["bit_exact"]
    assert check["simulator"].startswith("Icarus Verilog")
    # GHDL's own Verilog, unrepaired: the same simulation finds it computing something else
    monkeypatch.setattr(netlist_mod, "repair", lambda text: (text, {}))
    raw, _ = ghdl_netlist(d.files, d.top, tmp_path / "raw.v")
    bad = check_netlist(raw, d, x, expected, tmp_path / "sim_raw")
    assert bad["mismatches"] > MIN_SAMPLES // 4 and not bad["bit_exact"] and bad["first_mismatch"] is not None


def test_a_changed_netlist_is_caught(tmp_path: Path) -> None:
    g = wide_dense()
    d, x = design_and_vectors(g, tmp_path)
    netlist, _ = ghdl_netlist(d.files, d.top, tmp_path / "netlist.v")
    text = netlist.read_text()
    # one product's constant weight, changed by one
    m = re.search(r"\* 40'b([01]{40}); // smul", text)
    assert m is not None
    bits = m.group(1)
    changed = f"{(int(bits, 2) + 1) % 2**40:040b}"
    netlist.write_text(text[: m.start(1)] + changed + text[m.end(1) :])
    check = check_netlist(netlist, d, x, golden.run(g, x), tmp_path / "sim")
    assert check["mismatches"] > 0 and not check["bit_exact"]
    assert check["against"] == "golden"
    assert check["first_mismatch"]["output_name"].startswith("out[")


def test_at_least_200_vectors() -> None:
    t = FixedType(8, 3, True)
    few = np.arange(30, dtype=np.int64).reshape(10, 3)
    x = netlist_vectors(few, t.min_int, t.max_int)
    assert x.shape == (MIN_SAMPLES, 3) and (x[:10] == few).all()
    assert x.min() >= t.min_int and x.max() <= t.max_int
    many = np.zeros((5000, 3), np.int64)
    assert len(netlist_vectors(many, t.min_int, t.max_int)) == 1000


def test_repair_rewrites_what_ghdl_writes_with_another_meaning() -> None:
    text = "\n".join(
        [
            "  assign n5_o = n3_o / 32'b00000000000000000000000000001000; // sdiv",
            "  assign n6_o = n3_o % n4_o; // srem",
            "  assign n7_o = $signed(s) >> 31'b0000000000000000000000000000011;",
            "  assign n8_o = u >> 31'b0000000000000000000000000000011;",
            '  assign n9_o = "111111111111111111111111111111111111111011" + s;',
            "  assign n10_o = s + 41'b00000000011111111111111111000000000000000;",
            "  assign n11_o = s + 41'b00000000001111111111111111000000000000000;",
            "  assign n12_o = n3_o * n4_o; // smul",
            "  assign n13_o = n3_o * 8'b00000101; // smul",
            '  /* f.vhd:3:4 "1010" */',
        ]
    )
    fixed, counts = repair(text)
    assert fixed.split("\n") == [
        "  assign n5_o = $signed(n3_o) / $signed(32'b00000000000000000000000000001000); // sdiv",
        "  assign n6_o = $signed(n3_o) % $signed(n4_o); // srem",
        "  assign n7_o = $signed(s) >>> 31'b0000000000000000000000000000011;",
        "  assign n8_o = u >> 31'b0000000000000000000000000000011;",
        "  assign n9_o = 42'b111111111111111111111111111111111111111011 + s;",
        "  assign n10_o = s + 41'b11111111111111111111111111000000000000000;",
        "  assign n11_o = s + 41'b00000000001111111111111111000000000000000;",
        "  assign n12_o = $signed(n3_o) * $signed(n4_o); // smul",
        "  assign n13_o = n3_o * 8'b00000101; // smul",
        '  /* f.vhd:3:4 "1010" */',
    ]
    assert counts == {"sdiv": 1, "srem": 1, "smod": 0, "asr": 1, "wide_constants": 1, "sign_extended": 1,
                      "signed_products": 1, "unrepaired": 0}  # fmt: skip
