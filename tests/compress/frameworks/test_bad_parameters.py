"""Models with parameters no fixed-point format can hold, or that quantisation wrecks: refused or warned about."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import report
from torch import nn

from mlinfn_compress.cli import main


def refused(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err
    return " ".join(err.split())


def test_a_nan_torch_weight_names_the_layer_and_the_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[2].weight[1, 4] = float("nan")
    torch.save(model, tmp_path / "nan.pt")
    err = refused([str(tmp_path / "nan.pt"), "-o", str(tmp_path / "out")], capsys)
    assert err.startswith(
        "mlinfn-compress: error: nan.pt: layer '2' (Linear) has 1 NaN value(s) in its parameter 'weight' "
        "(24 values; the first at index [1, 4]); no fixed-point format can hold them"
    )
    assert not (tmp_path / "out").exists()


def test_infinite_batch_norm_statistics_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU())
    model[1].running_var[2] = float("inf")
    torch.save(model.eval(), tmp_path / "bn.pt")
    err = refused([str(tmp_path / "bn.pt"), "-o", str(tmp_path / "out")], capsys)
    assert "bn.pt: layer '1' (BatchNorm1d) has 1 infinite value(s) in its parameter 'running_var'" in err


def test_a_nan_keras_bias_and_batch_norm_variance_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import tf_keras as k

    model = k.Sequential([k.layers.Input((4,)), k.layers.Dense(3, name="fc"), k.layers.BatchNormalization(name="bn")])
    w, b = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([w, np.array([0.0, np.nan, np.nan])])
    model.save(tmp_path / "bias.h5")
    err = refused([str(tmp_path / "bias.h5"), "-o", str(tmp_path / "out")], capsys)
    assert (
        "bias.h5: layer 'fc' (Dense) has 2 NaN value(s) in its parameter 'bias' (3 values; the first at index [1])"
        in err
    )
    model.get_layer("fc").set_weights([w, b])
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    model.get_layer("bn").set_weights([gamma, beta, mean, np.array([1.0, -np.inf, 1.0])])
    model.save(tmp_path / "var.keras")
    err = refused([str(tmp_path / "var.keras"), "-o", str(tmp_path / "out")], capsys)
    assert (
        "var.keras: layer 'bn' (BatchNormalization) has 1 infinite value(s) in its parameter 'moving_variance'" in err
    )


def test_a_nan_qkeras_kernel_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tf_keras as k
    from qkeras import QDense, quantized_bits

    model = k.Sequential([k.layers.Input((4,)), QDense(2, kernel_quantizer=quantized_bits(6, 0, alpha=1), name="q")])
    w, b = model.layers[0].get_weights()
    w[0, 0] = np.nan
    model.layers[0].set_weights([w, b])
    model.save(tmp_path / "q.h5")
    err = refused([str(tmp_path / "q.h5"), "-o", str(tmp_path / "out")], capsys)
    assert "q.h5: layer 'q' (QDense) has 1 NaN value(s) in its parameter 'kernel'" in err


@pytest.mark.slow
def test_one_huge_weight_is_warned_about(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import tf_keras as k

    rng = np.random.default_rng(0)
    model = k.Sequential([k.layers.Input((6,)), k.layers.Dense(12, activation="relu", name="fc1"),
                          k.layers.Dense(4, activation="softmax", name="out")])  # fmt: skip
    w, b = model.get_layer("fc1").get_weights()
    w = rng.normal(0, 0.5, w.shape)
    w[2, 3] = 1e30
    model.get_layer("fc1").set_weights([w, b])
    model.save(tmp_path / "huge.h5")
    out = tmp_path / "out"
    assert main([str(tmp_path / "huge.h5"), "-o", str(out), "-q"]) == 0  # verified: what was built is exact
    text = capsys.readouterr().out
    warnings = report(out)["warnings"]
    zeroed = next(w for w in warnings if w.startswith("layer 'fc1': post-training quantisation"))
    assert "of its weights to zero (71 of 72) beyond what pruning removed (pruning asked for 0%)" in zeroed
    assert "its largest weight, 1e+30, sets the format's range" in zeroed
    assert any("arg-max agrees with the float model's on only" in w for w in warnings)
    for w in warnings:
        assert f"WARNING: {w}" in text
        assert f"WARNING: {w}" in (out / "report.html").read_text().replace("&#39;", "'")


@pytest.mark.slow
def test_a_sound_model_has_no_warnings(tmp_path: Path, float_mlp: Path) -> None:
    out = tmp_path / "out"
    assert main([str(float_mlp), "-o", str(out), "-q", "--simulate", "200"]) == 0
    assert report(out)["warnings"] == []


@pytest.mark.slow
def test_one_huge_torch_weight_is_warned_about_too(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))
    with torch.no_grad():
        model[0].weight[3, 2] = 1e30
    torch.save(model, tmp_path / "huge.pt")
    out = tmp_path / "out"
    assert main([str(tmp_path / "huge.pt"), "-o", str(out), "-q"]) == 0
    warnings = report(out)["warnings"]
    assert any(w.startswith("layer 'layer_0': post-training quantisation") for w in warnings)


KERAS3_NAN = """
import sys, numpy as np, keras
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc"), keras.layers.Dense(2, name="out")])
w, b = model.get_layer("out").get_weights()
w[1, 0] = np.inf
model.get_layer("out").set_weights([w, b])
model.save(sys.argv[1])
"""


@pytest.mark.slow
def test_an_infinite_keras3_kernel_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    path = tmp_path / "k3.keras"
    subprocess.run([sys.executable, "-c", KERAS3_NAN, str(path)], check=True, env=env, capture_output=True)
    code = "import sys; from mlinfn_compress.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, str(path), "-o", str(tmp_path / "o")], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "k3.keras: layer 'out' (Dense) has 1 infinite value(s) in its parameter 'kernel'" in done.stderr
