"""End to end: the command on models the tests build, bad inputs, the mutation check."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import report

from mlinfn_compress.backends.vhdl.adders import csd_digits
from mlinfn_compress.cli import main


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*args, "-q"] if args and args[0] != "verify" else args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def float_run(float_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("float") / "out"
    assert main([str(float_mlp), "--target", "vhdl", "-o", str(outdir), "-q"]) == 0
    return outdir


@pytest.fixture(scope="module")
def qkeras_run(qkeras_mlp: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("qkeras") / "out"
    assert main([str(qkeras_mlp), "-o", str(outdir), "-q"]) == 0
    return outdir


@pytest.mark.slow
def test_float_mlp_verified_bit_exact(float_run: Path) -> None:
    r = report(float_run)
    v = r["verification"]
    assert v["samples"] == 1000 and v["mismatches"] == 0 and v["bit_exact"] is True
    assert v["first_mismatch"] is None
    assert v["against"] == ["golden", "golden (arg-max)", "twin"]
    assert v["protocol"] == {"tests": 2, "failed": 0, "samples": 200, "backend": "mcode"}
    assert r["tool"]["name"] == "mlinfn-compress" and r["target"] == "vhdl"
    assert r["model"]["framework"] == "keras"
    assert r["model"]["parameters"] == 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5
    assert [(row["name"], row["op"]) for row in r["layers"]] == [
        ("fc1", "dense"), ("fc1_relu", "relu"), ("fc2", "dense"), ("relu2", "relu"),
        ("fc3", "dense"), ("relu3", "relu"), ("output", "dense"),
    ]  # fmt: skip
    hw = r["hardware"]
    stages = [row["pipeline_stages"] for row in r["layers"]]
    # the layers, then the arg-max of five outputs: three registered levels of comparisons (5 -> 3 -> 2 -> 1)
    assert hw["latency_cycles"] == sum(stages) + 3 and hw["initiation_interval"] == 1 and hw["resources"] is None
    assert stages[1::2] == [0, 0, 0]  # each relu is computed in the core of the dense layer before it
    assert hw["arithmetic"] == "shift-add" and hw["clock_period_ns"] == 4.2 and hw["dsp"] is False
    assert hw["latency_ns"] == round(4.2 * hw["latency_cycles"], 3)
    assert hw["outputs"]["argmax"] is True and "softmax" in hw["outputs"]["note"]
    q = r["quantisation"]
    assert q["input_type"] == "fixed<16,6,RND_CONV,SAT>"
    assert 0 < q["float_model"]["max_abs_error"] < 1 and q["float_model"]["argmax_agreement"] > 0.9
    assert r["compression"]["sparsity"] > 0.6


def test_pruned_weights_generate_no_hardware(float_run: Path) -> None:
    """No multiplier at all, an input whose weights are all zero is never read, and the adders
    are fewer than the non-zero signed digits of the weights (plus one per bias)."""
    r = report(float_run)
    design = json.loads((float_run / "design.json").read_text())
    for row, node in zip(r["layers"], design["ir"]["nodes"], strict=True):
        if row["op"] != "dense":
            continue
        w = np.array(node["weight_int"]["ints"]).reshape(node["weight_int"]["shape"])
        assert row["multipliers"] == int(np.count_nonzero(w)) and row["dsp_products"] == 0
        text = (float_run / "vhdl" / f"jet_mlp_{row['name']}_core.vhd").read_text()
        read = {int(i) for i in re.findall(r"\bx\((\d+)\)", text)}
        assert read == {int(i) for i in np.flatnonzero(np.any(w != 0, axis=1))}
        digits = sum(len(csd_digits(int(v))) for v in w.ravel())
        assert 0 < row["adders"] <= digits + w.shape[1]
        assert all(m.group(1) == "2**" for m in re.finditer(r"\* ?(\S{3})", text))  # only shifts


@pytest.mark.slow
def test_qkeras_mlp_matches_qkeras_and_golden(qkeras_run: Path) -> None:
    r = report(qkeras_run)
    v = r["verification"]
    assert v["against"] == ["golden", "golden (arg-max)", "qkeras", "twin"]
    assert v["samples"] == 1000 and v["mismatches"] == 0 and v["bit_exact"] is True
    assert all(c["mismatches"] == 0 for c in v["comparisons"])
    types = {row["name"]: row for row in r["layers"]}
    assert types["fc1"]["weight_type"] == "fixed<6,1,RND_CONV,SAT>"
    assert types["relu1"]["result_type"] == "ufixed<6,0,RND_CONV,SAT>"
    assert r["quantisation"]["framework"]["compared_bit_for_bit"] is True
    assert r["quantisation"]["chosen_post_training"] == []


@pytest.mark.slow
@pytest.mark.parametrize("mutation", ["shift", "sign"])
def test_verify_catches_a_changed_shift_or_sign(
    mutation: str, qkeras_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outdir = tmp_path / "mutant"
    subprocess.run(["cp", "-r", str(qkeras_run), str(outdir)], check=True)
    code, out, _ = run(["verify", str(outdir), "-q"], capsys)
    assert code == 0 and "BIT-EXACT" in out
    layer = outdir / "vhdl" / "qkeras_mlp_fc2_core.vhd"
    text = layer.read_text()
    if mutation == "shift":  # the first adder operand shifted by one more bit
        m = re.search(r"n\d+ := x\(\d+\) \* 2\*\*(\d+)", text)
        assert m is not None
        text = text[: m.start(1)] + str(int(m.group(1)) + 1) + text[m.end(1) :]
    else:  # the first subtraction made an addition
        m = re.search(r"n\d+ := x\(\d+\)[^;]* (-) ", text)
        assert m is not None
        text = text[: m.start(1)] + "+" + text[m.end(1) :]
    layer.write_text(text)
    code, out, _ = run(["verify", str(outdir), "-q"], capsys)
    assert code == 1
    v = report(outdir)["verification"]
    assert v["mismatches"] > 0 and v["bit_exact"] is False
    assert v["first_mismatch"]["against"] == "golden"
    assert "MISMATCH" in out and "first mismatch: sample" in out


@pytest.mark.slow
def test_summary_and_default_outdir(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    model = small_mlp("tiny", 0.3)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run([str(model), "--simulate", "50"], capsys)
    assert code == 0
    assert (tmp_path / "tiny_out" / "report.json").exists()
    assert "verification: 50 samples against golden, twin: 0 mismatches" in out
    assert "report: tiny_out/report.json" in out
    # An existing non-empty output folder is not replaced without --force.
    code, _, err = run([str(model), "--simulate", "50"], capsys)
    assert code == 2 and "tiny_out: exists and is not empty; pass --force to replace it" in err
    code, _, _ = run([str(model), "--simulate", "50", "--force"], capsys)
    assert code == 0


@pytest.mark.slow
def test_calibration_sets_inputs_and_ranges(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: Any
) -> None:
    model = small_mlp("calib", 0.0)
    cal = tmp_path / "cal.npy"
    np.save(cal, np.random.default_rng(0).uniform(-3, 3, (300, 8)))
    code, _, _ = run([str(model), "--calibration", str(cal), "--bits", "10", "-o", str(tmp_path / "o")], capsys)
    assert code == 0
    r = report(tmp_path / "o")
    assert r["verification"]["samples"] == 1000
    assert "calibration file (300 rows)" in r["quantisation"]["verification_inputs"]
    assert r["quantisation"]["weight_bits"] == 10 and r["quantisation"]["act_bits"] == 10
    assert r["layers"][0]["weight_type"].startswith("fixed<10,")


def bad(args: list[str], outdir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code, _, err = run([*args, "-o", str(outdir)], capsys)
    assert code == 2
    assert not outdir.exists()
    assert not list(outdir.parent.glob(f".{outdir.name}*"))
    return err


def test_missing_model_file(tmp_path: Path, capsys: Any) -> None:
    err = bad([str(tmp_path / "nope.h5")], tmp_path / "o", capsys)
    assert f"{tmp_path / 'nope.h5'}: no such model file" in err


def test_truncated_hdf5(float_mlp: Path, tmp_path: Path, capsys: Any) -> None:
    broken = tmp_path / "broken.h5"
    broken.write_bytes(float_mlp.read_bytes()[:3000])
    err = bad([str(broken)], tmp_path / "o", capsys)
    assert f"{broken}: cannot read the model file" in err


def test_unsupported_layer(tmp_path: Path, capsys: Any) -> None:
    import tf_keras as k

    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3), k.layers.LayerNormalization(name="ln")])
    path = tmp_path / "ln.h5"
    model.save(path)
    err = bad([str(path)], tmp_path / "o", capsys)
    assert "ln.h5: layer 'ln' (LayerNormalization) is not supported; supported: Dense, Conv1D, Conv2D" in err


def test_unsupported_activation(tmp_path: Path, capsys: Any) -> None:
    import tf_keras as k

    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3, activation="elu", name="fc")])
    path = tmp_path / "elu.h5"
    model.save(path)
    err = bad([str(path)], tmp_path / "o", capsys)
    assert "elu.h5: layer 'fc' (Dense) has activation 'elu', which is not supported; supported activations: relu" in err


def test_calibration_of_wrong_width(float_mlp: Path, tmp_path: Path, capsys: Any) -> None:
    cal = tmp_path / "cal.npy"
    np.save(cal, np.zeros((10, 15)))
    err = bad([str(float_mlp), "--calibration", str(cal)], tmp_path / "o", capsys)
    assert f"{cal}: calibration data has shape (10, 15), but the model expects (samples, 16) features" in err


def test_unknown_hls_backend(float_mlp: Path, tmp_path: Path, capsys: Any) -> None:
    err = bad([str(float_mlp), "--target", "hls", "--hls-backend", "catapult"], tmp_path / "o", capsys)
    assert "--hls-backend: unknown HLS backend 'catapult'; use one of Vitis, Vivado, Quartus, oneAPI" in err


@pytest.mark.slow
def test_json_plus_weights(tmp_path: Path, capsys: Any) -> None:
    from conftest import build_qkeras

    model = build_qkeras(np.random.default_rng(5))
    (tmp_path / "arch.json").write_text(model.to_json())
    model.save_weights(tmp_path / "arch_weights.h5")
    code, _, _ = run([str(tmp_path / "arch.json"), "--simulate", "100", "-o", str(tmp_path / "o")], capsys)
    assert code == 0
    assert report(tmp_path / "o")["verification"]["against"] == ["golden", "golden (arg-max)", "qkeras", "twin"]
    err = bad([str(tmp_path / "arch.json"), "--weights", str(tmp_path / "none.h5")], tmp_path / "o2", capsys)
    assert "an architecture JSON needs its weights" in err


@pytest.mark.slow
def test_keras3_file(tmp_path: Path, capsys: Any) -> None:
    import keras

    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation="relu"), keras.layers.Dense(2), keras.layers.Softmax()]
    )
    path = tmp_path / "k3.keras"
    model.save(path)
    code, _, _ = run([str(path), "--simulate", "100", "-o", str(tmp_path / "o")], capsys)
    assert code == 0
    r = report(tmp_path / "o")
    assert r["verification"]["mismatches"] == 0 and r["hardware"]["outputs"]["argmax"] is True


@pytest.mark.slow
def test_qkeras_po2_quantisers_in_tf_keras_archive(tmp_path: Path, capsys: Any) -> None:
    """quantized_po2 and alpha="auto_po2" weights, a quantised activation inside QDense, a .keras file."""
    import tf_keras as k
    from qkeras import QActivation, QDense, quantized_bits, quantized_po2

    model = k.Sequential(
        [
            k.layers.Input((10,)),
            QDense(8, kernel_quantizer=quantized_po2(4), bias_quantizer=quantized_bits(8, 2, alpha=1), name="po2"),
            QActivation("quantized_relu(8,2)", name="relu"),
            QDense(
                4,
                kernel_quantizer=quantized_bits(6, 0, alpha="auto_po2"),
                bias_quantizer=quantized_bits(8, 2, alpha=1),
                activation="quantized_relu(8,3)",
                name="auto",
            ),
        ]
    )
    rng = np.random.default_rng(2)
    for layer in (model.get_layer("po2"), model.get_layer("auto")):
        w, b = layer.get_weights()
        layer.set_weights([rng.normal(0, 0.5, w.shape), rng.normal(0, 0.3, b.shape)])
    path = tmp_path / "po2.keras"
    model.save(path)
    code, _, _ = run([str(path), "--simulate", "300", "-o", str(tmp_path / "o")], capsys)
    assert code == 0
    r = report(tmp_path / "o")
    assert r["verification"]["against"] == ["golden", "qkeras", "twin"] and r["verification"]["mismatches"] == 0
    assert [row["result_type"] for row in r["layers"] if row["op"] == "relu"] == [
        "ufixed<8,2,RND_CONV,SAT>",
        "ufixed<8,3,RND_CONV,SAT>",
    ]


def test_help_is_instant_and_light() -> None:
    code = (
        "import sys\n"
        "from mlinfn_compress.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'tensorflow' not in sys.modules and 'torch' not in sys.modules, 'heavy import'\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "usage: mlinfn-compress" in out and "verify OUTDIR" in out


@pytest.mark.slow
def test_protocol_checker_can_fail(qkeras_run: Path, tmp_path: Path, capsys: Any) -> None:
    """Claim a latency one cycle longer than the design has: the cocotb tests must fail."""
    outdir = tmp_path / "wrong_latency"
    subprocess.run(["cp", "-r", str(qkeras_run), str(outdir)], check=True)
    design = json.loads((outdir / "design.json").read_text())
    design["vhdl"]["latency"] += 1
    (outdir / "design.json").write_text(json.dumps(design))
    code, out, _ = run(["verify", str(outdir), "-q"], capsys)
    assert code == 1
    v = report(outdir)["verification"]
    assert v["mismatches"] == 0 and v["protocol"]["failed"] == 2
    assert "PROTOCOL TESTS FAILED" in out


@pytest.mark.slow
def test_whole_design_synthesises(tmp_path: Path, capsys: Any) -> None:
    """ghdl --synth accepts every entity kind: dense, relu, arg-max, top level."""
    import tf_keras as k

    model = k.Sequential(
        [k.layers.Input((6,)), k.layers.Dense(5, activation="relu"), k.layers.Dense(3, activation="softmax")],
        name="synth_me",
    )
    model.save(tmp_path / "m.h5")
    code, _, _ = run([str(tmp_path / "m.h5"), "--simulate", "50", "-o", str(tmp_path / "o")], capsys)
    assert code == 0
    d = json.loads((tmp_path / "o" / "design.json").read_text())["vhdl"]
    files = [str(tmp_path / "o" / "vhdl" / f) for f in d["files"]]
    work = tmp_path / "work"
    work.mkdir()
    subprocess.run(["ghdl", "-a", "--std=08", f"--workdir={work}", *files], check=True)
    netlist = subprocess.run(
        ["ghdl", "--synth", "--std=08", f"--workdir={work}", "--out=verilog", d["top"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "module synth_me" in netlist and "out_argmax" in netlist


@pytest.mark.slow
def test_synth_estimates_resources_and_pruning_shows(
    small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: Any
) -> None:
    """--synth fills hardware.resources; a pruned model needs fewer of them."""
    res = {}
    for name, zeros in (("dense_syn", 0.0), ("pruned_syn", 0.8)):
        code, out, _ = run(
            [str(small_mlp(name, zeros)), "--synth", "--simulate", "50", "-o", str(tmp_path / name)], capsys
        )
        assert code == 0
        res[name] = report(tmp_path / name)["hardware"]["resources"]
        assert res[name]["LUT"] > 0 and "Yosys" in res[name]["tool"]
    assert (
        res["pruned_syn"]["LUT"] + 50 * res["pruned_syn"]["DSP"]
        < res["dense_syn"]["LUT"] + 50 * res["dense_syn"]["DSP"]
    )


def test_synth_needs_a_vhdl_design(float_mlp: Path, tmp_path: Path, capsys: Any) -> None:
    err = bad([str(float_mlp), "--target", "hls", "--synth"], tmp_path / "o", capsys)
    assert "--synth estimates the VHDL design's resources: use it with --target vhdl or both" in err
