"""The compression options end to end: digits tutorial, one-shot pruning, bad inputs."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import import_example, report

from mlinfn_compress.cli import main


@pytest.mark.slow
def test_keras_digits_tutorial_prunes_quantises_and_verifies(tmp_path: Path) -> None:
    digits_keras = import_example("digits_keras")
    r = digits_keras.run(tmp_path / "design", epochs=12)
    acc = r["accuracy"]
    assert acc["metric"] == "accuracy" and acc["samples"] == 450
    assert acc["compressed"] >= acc["float"] - 0.02
    assert acc["hardware"] == acc["compressed"] == acc["framework_twin"]
    v = r["verification"]
    assert v["mismatches"] == 0 and v["bit_exact"] is True
    assert v["against"] == ["golden", "golden (arg-max)", "qkeras", "twin", "golden (test set)"]
    dense = [row for row in r["layers"] if row["op"] == "dense"]
    assert all(row["sparsity"] >= 0.7 for row in dense)
    assert all(row["weight_type"].startswith("fixed<6,") for row in dense)
    design = json.loads((tmp_path / "design" / "design.json").read_text())["ir"]["nodes"]
    nonzero = {n["name"]: int(np.count_nonzero(n["weight_int"]["ints"])) for n in design if n["op"] == "linear"}
    assert {row["name"]: row["multipliers"] for row in dense} == nonzero
    c = r["compression"]
    assert c["sparsity"] >= 0.7 and c["pruning"]["target"] == 0.7 and c["qat"]["weight_bits"] == 6
    assert c["weight_bits_total"] * 10 < c["float32_bits_total"]
    assert r["twin"]["framework"] == "qkeras" and (tmp_path / "design" / "twin" / "model.h5").exists()


@pytest.mark.slow
def test_keras_digits_cnn_example_prunes_quantises_and_verifies(tmp_path: Path) -> None:
    digits_cnn = import_example("digits_cnn")
    r = digits_cnn.run(tmp_path / "design", 4, ["--simulate", "300"])
    acc = r["accuracy"]
    assert acc["float"] > 0.95 and acc["compressed"] >= acc["float"] - 0.03
    assert acc["hardware"] == acc["compressed"]
    v = r["verification"]
    assert v["mismatches"] == 0 and v["bit_exact"] is True and v["samples"] == 300
    assert v["against"][:3] == ["golden", "golden (arg-max)", "qkeras"] and "golden (test set)" in v["against"]
    assert [row["op"] for row in r["layers"]] == [
        "conv2d",
        "relu",
        "max_pool2d",
        "conv2d",
        "relu",
        "max_pool2d",
        "flatten",
        "dense",
    ]  # fmt: skip  (the batch norm is folded into the first convolution)
    weighted = [row for row in r["layers"] if row["weight_type"]]
    assert all(row["sparsity"] >= 0.5 and row["weight_type"].startswith("fixed<6,") for row in weighted)
    assert r["model"]["input_shape"] == [8, 8, 1] and r["quantisation"]["input_type"] == "fixed<6,6,RND_CONV,SAT>"
    assert r["compression"]["qat"] == {"framework": "qkeras", "weight_bits": 6, "act_bits": 8, "epochs": 4}
    hw = r["hardware"]
    assert hw["io"]["architecture"] == "stream" and hw["initiation_interval"] > 1  # one pixel per clock


@pytest.mark.slow
def test_one_shot_pruning_without_data(float_mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    code = main(
        [str(float_mlp), "--prune", "0.8", "--prune-scope", "global", "-o", str(out), "-q", "--simulate", "200"]
    )
    assert code == 0
    assert "warning: pruned without data (one-shot by magnitude): accuracy is not checked" in capsys.readouterr().err
    r = report(out)
    assert r["compression"]["sparsity"] >= 0.8 and r["compression"]["pruning"]["scope"] == "global"
    assert r["verification"]["mismatches"] == 0 and r["accuracy"] is None


def digits_like(path: Path, n_features: int = 16, n_classes: int = 5, **override: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(40, n_features)),
        "y_train": rng.integers(0, n_classes, 40),
        "x_test": rng.normal(size=(10, n_features)),
        "y_test": rng.integers(0, n_classes, 10),
    }
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def refused(args: list[str], outdir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = main([*args, "-o", str(outdir), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert not outdir.exists() and not list(outdir.parent.glob(f".{outdir.name}*"))
    return err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"drop": "y_test"}, "missing array(s) y_test; --data needs x_train, y_train, x_test, y_test"),
        ({"x_train": np.zeros((40, 15))}, "x_train has shape (40, 15), but the model expects (samples, 16)"),
        ({"y_train": np.zeros(39, dtype=int)}, "y_train has 39 labels for 40 samples"),
    ],
)
def test_bad_data_files(
    float_mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], override: dict[str, Any], message: str
) -> None:
    drop = override.pop("drop", None)
    path = digits_like(tmp_path / "d.npz", **override)
    if drop:
        with np.load(path) as f:
            kept = {k: f[k] for k in f.files if k != drop}
        np.savez(path, **kept)
    err = refused([str(float_mlp), "--data", str(path), "--qat"], tmp_path / "o", capsys)
    assert f"{path}: {message}" in err


def test_qat_needs_data(float_mlp: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused([str(float_mlp), "--qat"], tmp_path / "o", capsys)
    assert "--qat needs labelled data: pass --data FILE.npz" in err


def test_model_class_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    state = tmp_path / "state.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), state)
    err = refused([str(state), "--model-class", str(tmp_path / "nope.py:Net")], tmp_path / "o", capsys)
    assert "nope.py" in err and "state.pt" in err
    (tmp_path / "net.py").write_text("import torch.nn as nn\n\nclass Other(nn.Module):\n    pass\n")
    err = refused([str(state), "--model-class", f"{tmp_path / 'net.py'}:Net"], tmp_path / "o", capsys)
    assert "Net" in err and "Other" in err


def test_brevitas_scale_not_power_of_two_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("brevitas")
    (tmp_path / "qnet.py").write_text(
        "import torch.nn as nn\nimport brevitas.nn as qnn\nfrom brevitas.quant import Int8WeightPerTensorFloat\n\n"
        "class QNet(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = qnn.QuantLinear(4, 2, weight_quant=Int8WeightPerTensorFloat)\n\n"
        "    def forward(self, x):\n        return self.fc(x)\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import qnet
    finally:
        sys.path.remove(str(tmp_path))
    state = tmp_path / "q.pt"
    torch.save(qnet.QNet().state_dict(), state)
    err = refused([str(state), "--model-class", f"{tmp_path / 'qnet.py'}:QNet"], tmp_path / "o", capsys)
    assert "module 'fc' (QuantLinear)" in err and "is not a power of two" in err
    assert "Int8WeightPerTensorFixedPoint" in err


def test_model_args_must_be_json_object(small_mlp: Callable[[str, float], Path], tmp_path: Path, capsys: Any) -> None:
    err = refused([str(small_mlp("args", 0.0)), "--model-args", "[1, 2]"], tmp_path / "o", capsys)
    assert "--model-args must be a JSON object" in err


@pytest.mark.slow
def test_torch_digits_tutorial_prunes_quantises_and_verifies(tmp_path: Path) -> None:
    pytest.importorskip("brevitas")
    digits_torch = import_example("digits_torch")
    r = digits_torch.run(tmp_path / "design", epochs=12)
    acc = r["accuracy"]
    assert acc["compressed"] >= acc["float"] - 0.02
    assert acc["hardware"] == acc["compressed"] == acc["framework_twin"]
    v = r["verification"]
    assert v["mismatches"] == 0 and v["bit_exact"] is True
    assert v["against"] == ["golden", "golden (arg-max)", "brevitas", "twin", "golden (test set)"]
    dense = [row for row in r["layers"] if row["op"] == "dense"]
    assert all(row["sparsity"] >= 0.7 for row in dense) and r["compression"]["qat"]["framework"] == "brevitas"
    assert all(row["weight_type"].startswith("fixed<6,") for row in dense)
    design = json.loads((tmp_path / "design" / "design.json").read_text())["ir"]["nodes"]
    nonzero = {n["name"]: int(np.count_nonzero(n["weight_int"]["ints"])) for n in design if n["op"] == "linear"}
    assert {row["name"]: row["multipliers"] for row in dense} == nonzero
    twin = tmp_path / "design" / "twin"
    assert r["twin"]["framework"] == "brevitas" and (twin / "model.pt").exists() and (twin / "model.py").exists()


def test_model_that_cannot_be_fine_tuned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    scripted = tmp_path / "scripted.ts"
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))).save(
        str(scripted)
    )
    data = digits_like(tmp_path / "d.npz")
    err = refused([str(scripted), "--data", str(data), "--prune", "0.5"], tmp_path / "o", capsys)
    assert f"{scripted}: cannot fine-tune the model: a TorchScript model cannot be fine-tuned" in err
