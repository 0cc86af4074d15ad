"""Shared fixtures: the tests build their own models, so they pass on any clone."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread: small models train many times faster without thread hand-offs on a 2-core machine."""
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


NORMAL_PATH = os.environ.get("PATH", "")  # before any test changes it
SHARED_MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


REPORT_SCHEMA = (
    Path(__file__).resolve().parents[1] / "src" / "mlinfn_compress" / "compress" / "flow" / "schema" / "report-1.json"
)


def report(outdir: Path) -> dict[str, Any]:
    """The report.json a run wrote into ``outdir``, checked against its JSON Schema."""
    import jsonschema

    data = json.loads((outdir / "report.json").read_text())
    jsonschema.validate(data, json.loads(REPORT_SCHEMA.read_text()))
    return data


def retype_hls(outdir: Path, name: str, cpp_type: str) -> None:
    """Change the typedef of ``name`` in the HLS project of a run (a deliberately corrupted design)."""
    defines = outdir / "hls" / "firmware" / "defines.h"
    text = defines.read_text()
    line = next(ln for ln in text.splitlines() if ln.endswith(f" {name};"))
    defines.write_text(text.replace(line, f"typedef {cpp_type} {name};"))


def import_example(name: str) -> Any:
    """A module from examples/ (the tutorials import their shared helpers by plain name)."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(EXAMPLES))


def keras() -> Any:
    import tf_keras

    return tf_keras


def sparse_normal(rng: np.random.Generator, shape: tuple[int, ...], scale: float, zero_frac: float) -> np.ndarray:
    w = rng.normal(0.0, scale, shape)
    w[rng.random(shape) < zero_frac] = 0.0
    return w


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def float_mlp(models_dir: Path) -> Path:
    """A jet-tagger-shaped float MLP 16-64-32-32-5 (relu, softmax), 70% of weights zero."""
    k = keras()
    rng = np.random.default_rng(7)
    model = k.Sequential(
        [
            k.layers.Input((16,)),
            k.layers.Dense(64, activation="relu", name="fc1"),
            k.layers.Dense(32, name="fc2"),
            k.layers.ReLU(name="relu2"),
            k.layers.Dropout(0.2, name="drop"),
            k.layers.Dense(32, name="fc3"),
            k.layers.Activation("relu", name="relu3"),
            k.layers.Dense(5, activation="softmax", name="output"),
        ],
        name="jet_mlp",
    )
    for layer in model.layers:
        if layer.get_weights():
            w, b = layer.get_weights()
            layer.set_weights([sparse_normal(rng, w.shape, 0.4, 0.7), rng.normal(0.0, 0.2, b.shape)])
    path = models_dir / "jet_mlp.h5"
    model.save(path, include_optimizer=False)
    return path


def build_qkeras(rng: np.random.Generator) -> Any:
    k = keras()
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    def q() -> Any:
        return quantized_bits(6, 0, alpha=1)

    model = k.Sequential(
        [
            k.layers.Input((16,)),
            QDense(64, kernel_quantizer=q(), bias_quantizer=q(), name="fc1"),
            QActivation(quantized_relu(6, 0), name="relu1"),
            QDense(32, kernel_quantizer=q(), bias_quantizer=q(), name="fc2"),
            QActivation(quantized_relu(6, 0), name="relu2"),
            QDense(32, kernel_quantizer=q(), bias_quantizer=q(), name="fc3"),
            QActivation(quantized_relu(6, 0), name="relu3"),
            QDense(5, kernel_quantizer=q(), bias_quantizer=q(), name="output"),
            k.layers.Activation("softmax", name="softmax"),
        ],
        name="qkeras_mlp",
    )
    for layer in model.layers:
        if layer.get_weights():
            w, b = layer.get_weights()
            layer.set_weights([sparse_normal(rng, w.shape, 0.5, 0.5), rng.normal(0.0, 0.3, b.shape)])
    return model


@pytest.fixture(scope="session")
def qkeras_mlp(models_dir: Path) -> Path:
    """QKeras 16-64-32-32-5: quantized_bits(6,0,alpha=1) weights, quantized_relu(6,0)."""
    path = models_dir / "qkeras_mlp.h5"
    build_qkeras(np.random.default_rng(11)).save(path, include_optimizer=False)
    return path


@pytest.fixture(scope="session")
def small_mlp(models_dir: Path) -> Callable[[str, float], Path]:
    """A factory of small float MLPs 8-6-3 with a given fraction of zero weights."""

    def make(name: str, zero_frac: float) -> Path:
        k = keras()
        rng = np.random.default_rng(3)
        model = k.Sequential([k.layers.Input((8,)), k.layers.Dense(6, activation="relu"), k.layers.Dense(3)], name=name)
        for layer in model.layers:
            w, b = layer.get_weights()
            layer.set_weights([sparse_normal(rng, w.shape, 0.5, zero_frac), rng.normal(0, 0.1, b.shape)])
        path = models_dir / f"{name}.h5"
        model.save(path, include_optimizer=False)
        return path

    return make


def make_node(name: str, op: str, inputs: list[str], size: int, **kw: Any) -> Any:
    """A hand-built IR node on a flat vector: ``dense`` (a CMVM), ``relu`` or ``cast``."""
    from mlinfn_compress.compress.ir import Cast, Clip, Linear

    cls = {"dense": Linear, "relu": Clip, "cast": Cast}[op]
    return cls(name=name, inputs=inputs, shape=(size,), **kw)


def make_graph(name: str, framework: str, source: str, input_size: int, nodes: list[Any], **kw: Any) -> Any:
    """A hand-built graph on a flat input vector; shapes are checked once every matrix is known."""
    from mlinfn_compress.compress.ir import Graph

    g = Graph(name, framework, source, (input_size,), nodes, **kw)
    if nodes and all(getattr(n, "weight_int", None) is not None or getattr(n, "weight", 0) is not None for n in nodes):
        g.infer_shapes()
    return g


def path_without(missing: str, folder: Path) -> str:
    """A PATH of one folder holding a link to every program on the normal PATH except ``missing``."""
    folder.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for entry in NORMAL_PATH.split(os.pathsep):
        d = Path(entry)
        if not d.is_dir():
            continue
        for program in sorted(d.iterdir()):
            if program.name in seen or program.name == missing or not os.access(program, os.X_OK):
                continue
            if program.is_file():
                (folder / program.name).symlink_to(program)
                seen.add(program.name)
    return str(folder)
