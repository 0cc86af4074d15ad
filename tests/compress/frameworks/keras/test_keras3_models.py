"""Models saved by Keras 3 itself convert exactly as the same network saved by tf_keras."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import report

BUILD_KERAS3 = """
import sys
import numpy as np
import keras
assert keras.__version__.startswith("3"), keras.__version__
rng = np.random.default_rng(5)
model = keras.Sequential(
    [
        keras.Input((11,)),
        keras.layers.Dense(7, activation="relu", name="fc1"),
        keras.layers.Dense(13, name="fc2"),
        keras.layers.ReLU(name="act2"),
        keras.layers.Dense(3, name="out"),
    ],
    name="odd_net",
)
arrays = {}
for layer in model.layers:
    if not layer.get_weights():
        continue
    w, b = layer.get_weights()
    w, b = rng.normal(0, 0.5, w.shape), rng.normal(0, 0.2, b.shape)
    layer.set_weights([w, b])
    arrays[layer.name + "_w"], arrays[layer.name + "_b"] = w, b
model.save(sys.argv[1])
np.savez(sys.argv[2], **arrays)
"""


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_USE_LEGACY_KERAS", None)
    return env


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = "import sys; from mlinfn_compress.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_clean_env())


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same network saved by Keras 3 (in a process that never set TF_USE_LEGACY_KERAS) and by tf_keras."""
    d = tmp_path_factory.mktemp("keras3")
    native, weights = d / "odd_net.keras", d / "weights.npz"
    res = subprocess.run(
        [sys.executable, "-c", BUILD_KERAS3, str(native), str(weights)],
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    import tf_keras as k

    legacy = k.Sequential(
        [
            k.layers.Input((11,)),
            k.layers.Dense(7, activation="relu", name="fc1"),
            k.layers.Dense(13, name="fc2"),
            k.layers.ReLU(name="act2"),
            k.layers.Dense(3, name="out"),
        ],
        name="odd_net",
    )
    with np.load(weights) as f:
        for layer in legacy.layers:
            if layer.get_weights():
                layer.set_weights([f[layer.name + "_w"], f[layer.name + "_b"]])
    path = d / "odd_net.h5"
    legacy.save(path, include_optimizer=False)
    return native, path


def _ir(outdir: Path) -> dict[str, Any]:
    ir = json.loads((outdir / "design.json").read_text())["ir"]
    ir.pop("source_path")
    return ir


def _comparable(r: dict[str, Any]) -> dict[str, Any]:
    return {"layers": r["layers"], "compression": r["compression"], "hardware": r["hardware"]}


@pytest.mark.slow
@pytest.mark.parametrize("target", ["vhdl", "hls", "both"])
def test_keras3_model_converts_like_tf_keras(saved: tuple[Path, Path], target: str, tmp_path: Path) -> None:
    native, legacy = saved
    results = {}
    for label, model in (("keras3", native), ("tf_keras", legacy)):
        outdir = tmp_path / label
        res = _cli([str(model), "--target", target, "-o", str(outdir), "--simulate", "300", "-q"])
        assert res.returncode == 0, res.stdout + res.stderr[-3000:]
        assert "Traceback" not in res.stderr
        results[label] = outdir
    r3, r2 = report(results["keras3"]), report(results["tf_keras"])
    assert _ir(results["keras3"]) == _ir(results["tf_keras"])
    assert _comparable(r3) == _comparable(r2)
    v = r3["verification"]
    assert v["mismatches"] == 0 and v["bit_exact"] and v["samples"] == 300
    prefix = "" if target != "both" else "vhdl: "
    assert f"{prefix}golden" in v["against"] and f"{prefix}twin" in v["against"]
    assert [row["out_shape"] for row in r3["layers"]] == [[7], [7], [13], [13], [3]]
