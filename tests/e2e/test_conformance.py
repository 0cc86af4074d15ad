"""Conformance: the command on real models from ../shared/models, when that folder exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SHARED_MODELS

from mlinfn_compress.cli import main

pytestmark = pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason=f"{SHARED_MODELS} is not here")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "against"),
    [
        ("jet_tagger_3layer.h5", ["golden", "golden (arg-max)", "twin"]),
        ("jet_tagger_qkeras_6bit.h5", ["golden", "golden (arg-max)", "qkeras", "twin"]),
        ("qkeras_3layer.json", ["golden", "golden (arg-max)", "qkeras", "twin"]),
    ],
)
def test_shared_model_verifies_bit_exact(model: str, against: list[str], tmp_path: Path) -> None:
    outdir = tmp_path / "out"
    assert main([str(SHARED_MODELS / model), "-o", str(outdir), "-q"]) == 0
    report = json.loads((outdir / "report.json").read_text())
    v = report["verification"]
    assert v["against"] == against
    assert v["samples"] == 1000 and v["mismatches"] == 0 and v["bit_exact"] is True
    assert v["protocol"]["failed"] == 0
    assert report["model"]["parameters"] == 4389
    stages = sum(row["pipeline_stages"] for row in report["layers"])
    assert report["hardware"]["latency_cycles"] == stages + 3  # the layers, then the arg-max: 5 -> 3 -> 2 -> 1


@pytest.mark.slow
def test_shared_conv1d_converts_and_verifies(tmp_path: Path) -> None:
    """Three Conv1D (same padding), Flatten, two Dense, a softmax: 171 parameters."""
    outdir = tmp_path / "out"
    assert main([str(SHARED_MODELS / "conv1d_small.h5"), "-o", str(outdir), "-q", "--simulate", "500"]) == 0
    report = json.loads((outdir / "report.json").read_text())
    v = report["verification"]
    assert v["against"][:2] == ["golden", "golden (arg-max)"] and v["mismatches"] == 0 and v["bit_exact"] is True
    assert report["model"]["parameters"] == 171 and report["model"]["input_shape"] == [10, 4]
    assert [(row["op"], row["out_shape"]) for row in report["layers"]] == [
        ("conv1d", [10, 3]), ("relu", [10, 3]), ("conv1d", [10, 2]), ("relu", [10, 2]), ("conv1d", [10, 1]),
        ("relu", [10, 1]), ("flatten", [10]), ("dense", [5]), ("relu", [5]), ("dense", [5]),
    ]  # fmt: skip
    assert report["quantisation"]["float_model"]["argmax_agreement"] > 0.9


@pytest.mark.slow
def test_shared_pytorch_model_saved_on_a_gpu_verifies_on_cpu(tmp_path: Path) -> None:
    """two_layer_model.pt was pickled whole with CUDA tensors and ends in a sigmoid."""
    pytest.importorskip("torch")
    outdir = tmp_path / "out"
    assert main([str(SHARED_MODELS / "two_layer_model.pt"), "-o", str(outdir), "-q", "--simulate", "500"]) == 0
    report = json.loads((outdir / "report.json").read_text())
    assert report["model"]["framework"] == "torch"
    assert report["verification"]["mismatches"] == 0 and report["verification"]["against"] == ["golden", "twin"]
    assert "sigmoid" in report["hardware"]["outputs"]["note"]
    assert [row["out_shape"] for row in report["layers"]] == [[32], [32], [1]]
