"""--target bondmachine: the neuralbond model JSON, its values, its refusals, and the run around it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_graph, make_node, report

from mlinfn_compress.backends.neuralbond.export import check_export, export, layers_of
from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import Graph, LeakyRelu, Linear, Window
from mlinfn_compress.errors import UserError

IN_T = FixedType(8, 3, True, "RND_CONV", "SAT")
W_T = FixedType(4, 1, True)  # 3 fractional bits
B_T = FixedType(6, 2, True)  # 4 fractional bits


def mlp(softmax: bool = True) -> Graph:
    """A quantised 5-4-3 MLP: dense, relu, dense (and a softmax removed from the end)."""
    rng = np.random.default_rng(5)
    nonzero = [v for v in range(-8, 8) if v]
    w1 = rng.choice(nonzero, size=(5, 4))
    w1[0, :] = 0  # a zero row and scattered zeros: no weights in the export
    w1[2, 1] = 0
    w2 = rng.choice(nonzero, size=(4, 3))
    w2[3, 2] = 0
    fc1 = make_node("fc1", "dense", ["input"], 4, weight_type=W_T, bias_type=B_T, weight_int=w1,
                    bias_int=np.array([3, -5, 0, 31]), accum_type=FixedType(16, 8, True),
                    result_type=FixedType(8, 3, True, "RND", "SAT"))  # fmt: skip
    relu = make_node("relu1", "relu", ["fc1"], 4, result_type=FixedType(7, 3, False, "RND", "SAT"))
    fc2 = make_node("fc2", "dense", ["relu1"], 3, weight_type=W_T, bias_type=B_T, weight_int=w2,
                    bias_int=np.array([-32, 1, 7]), accum_type=FixedType(16, 8, True),
                    result_type=FixedType(10, 5, True, "RND", "SAT"))  # fmt: skip
    return make_graph("bm_mlp", "keras", "hand-built", 5, [fc1, relu, fc2], input_type=IN_T,
                      output_activation="softmax" if softmax else None)  # fmt: skip


def test_export_structure_counts_and_values(tmp_path: Path) -> None:
    g = mlp()
    info = export(g, tmp_path, "mlp.h5")
    model = json.loads((tmp_path / "modelBM.json").read_text())
    assert set(model) == {"Nodes", "Weights"}
    assert all(set(n) == {"Layer", "Pos", "Type", "Bias"} for n in model["Nodes"])
    assert all(set(w) == {"Layer", "PosCurrLayer", "PosPrevLayer", "Value"} for w in model["Weights"])
    by_layer: dict[int, list[str]] = {}
    for n in model["Nodes"]:
        by_layer.setdefault(n["Layer"], []).append(n["Type"])
    # inputs, the relu layer, the last dense layer, the softmax, the outputs
    assert by_layer == {0: ["input"] * 5, 1: ["relu"] * 4, 2: ["summation"] * 3, 3: ["softmax"] * 3, 4: ["output"] * 3}
    fc1, fc2 = g.nodes[0], g.nodes[2]
    nonzero = int(np.count_nonzero(fc1.weight_int)) + int(np.count_nonzero(fc2.weight_int))
    assert nonzero == 20 - 5 + 12 - 1
    assert len(model["Weights"]) == nonzero + 3 * 3 + 3 == info["weights"]
    assert info["nodes"] == 18 and info["layers"] == 2 and info["node_types"] == [
        "input", "output", "relu", "softmax", "summation"]  # fmt: skip
    # every value is the quantised one: integer x 2^-frac of its format
    for w in model["Weights"]:
        if w["Layer"] in (1, 2):
            node = (fc1, fc2)[w["Layer"] - 1]
            assert w["Value"] == int(node.weight_int[w["PosPrevLayer"], w["PosCurrLayer"]]) / 8
    assert {(w["Layer"], w["Value"]) for w in model["Weights"] if w["Layer"] > 2} == {(3, 1), (4, 1)}
    assert [n["Bias"] for n in model["Nodes"] if n["Layer"] == 1] == [3 / 16, -5 / 16, 0.0, 31 / 16]
    assert [n["Bias"] for n in model["Nodes"] if n["Layer"] == 2] == [-2.0, 1 / 16, 7 / 16]
    assert not any(w["Value"] == 0 for w in model["Weights"])
    formats = json.loads((tmp_path / "formats.json").read_text())
    assert formats["input_type"] == str(IN_T) and formats["float32_exact"] is True
    assert formats["layers"][0]["ir_nodes"] == ["fc1", "relu1"]
    assert (
        formats["layers"][0]["weight_type"] == str(W_T) and formats["layers"][1]["result_type"] == "fixed<10,5,RND,SAT>"
    )


def test_read_back_check_catches_a_changed_value(tmp_path: Path) -> None:
    g = mlp(softmax=False)
    export(g, tmp_path, "mlp.h5")
    model_file = tmp_path / "modelBM.json"
    model = json.loads(model_file.read_text())
    assert [n["Type"] for n in model["Nodes"] if n["Layer"] == 3] == ["output"] * 3  # no softmax layer
    assert check_export(g, tmp_path) == {"values": 20 + 4 + 12 + 3, "mismatches": 0, "first_mismatch": None}
    w = next(w for w in model["Weights"] if w["Layer"] == 2)
    w["Value"] += 0.125  # one step of the weight format
    model_file.write_text(json.dumps(model))
    check = check_export(g, tmp_path)
    assert check["mismatches"] == 1
    at = [w["PosPrevLayer"], w["PosCurrLayer"]]
    assert check["first_mismatch"] == {"where": f"layer 2 (fc2) weight {at}", "expected": w["Value"] - 0.125,
                                       "got": w["Value"]}  # fmt: skip


def test_what_the_format_cannot_describe_is_refused() -> None:
    g = mlp()
    g.nodes[1] = LeakyRelu(name="relu1", inputs=["fc1"], shape=(4,), alpha=0.25)
    with pytest.raises(UserError) as e:
        layers_of(g, "m.h5")
    assert str(e.value) == (
        "m.h5: layer 'relu1' (leaky_relu) cannot be exported to BondMachine: BondMachine's neuron library has no "
        "such neuron. BondMachine's model format describes dense layers with relu or linear activations and a "
        "final softmax; use --target vhdl or hls for this model"
    )
    conv = Linear(name="conv", inputs=["input"], weight=np.ones((6, 2)), bias=np.zeros(2),
                  window=Window((3,), (1,), ((0, 0),)), label="conv1d")  # fmt: skip
    g2 = Graph("c", "keras", "x", (5, 2), [conv])
    g2.infer_shapes()
    with pytest.raises(UserError, match="flat vector of features"):
        layers_of(g2, "c.h5")


def run(args: list[str], capsys: Any) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_target_bondmachine_run(small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: Any) -> None:
    model = small_mlp("bm_small", 0.3)
    out = tmp_path / "bm"
    code, stdout, _ = run([str(model), "--target", "bondmachine", "--simulate", "40", "-q", "-o", str(out)], capsys)
    assert code == 0
    assert "EXPORTED EXACTLY (not simulated)" in stdout and "latency set by the BondMachine build" in stdout
    r = report(out)
    assert r["target"] == "bondmachine" and r["hardware"]["initiation_interval"] is None
    assert r["bondmachine"]["path"] == "bondmachine/modelBM.json" and r["bondmachine"]["layers"] == 2
    assert r["verification"]["bondmachine"]["mismatches"] == 0 and r["verification"]["samples"] == 40
    assert r["verification"]["against"][0] == "the IR's quantised values (modelBM.json read back)"
    assert "twin" in " ".join(r["verification"]["against"])  # the golden model equals the framework twin
    readme = (out / "README.md").read_text()
    assert "neuralbond -net-file modelBM.json" in readme and "was not run" in readme
    assert (out / "report.html").exists() and not (out / "vhdl").exists()
    # verify re-reads the export, and a changed value fails it
    assert main(["verify", str(out), "-q"]) == 0
    model_file = out / "bondmachine" / "modelBM.json"
    m = json.loads(model_file.read_text())
    m["Weights"][0]["Value"] *= 2
    model_file.write_text(json.dumps(m))
    code, stdout, _ = run(["verify", str(out)], capsys)
    assert code == 1 and "MISMATCH" in stdout


def test_bondmachine_with_synth_is_refused(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: Any
) -> None:
    code, _, err = run([str(small_mlp("bm_syn", 0.0)), "--target", "bondmachine", "--synth", "-o", str(tmp_path / "o")],
                       capsys)  # fmt: skip
    assert code == 2 and "--synth estimates the VHDL design's resources: use it with --target vhdl or both" in err
    assert not (tmp_path / "o").exists()
