"""Helpers for the Keras layer tests: build small models with random weights, convert them,
and check golden == VHDL (GHDL) and golden against Keras's own inference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl import render
from mlinfn_compress.compress.fixed import FixedType, quantize, to_float
from mlinfn_compress.compress.flow.inputs import corner_rows
from mlinfn_compress.compress.frameworks import LoadedModel, load_model
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, quantise
from mlinfn_compress.sim.ghdl import simulate

NARROW_INPUT = FixedType.parse("fixed<8,3,RND_CONV,SAT>")  # QKeras computes exactly in float32 from it


def randomise(model: Any, seed: int = 0, scale: float = 0.5) -> Any:
    """Small random weights; batch-norm variances positive and near one."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        names = [w.name for w in layer.weights]
        new = []
        for name, w in zip(names, weights, strict=True):
            if "variance" in name:
                new.append(rng.uniform(0.5, 1.5, w.shape))
            elif "gamma" in name:
                new.append(rng.uniform(0.5, 1.5, w.shape))
            else:
                new.append(rng.normal(0.0, scale, w.shape))
        layer.set_weights(new)
    return model


def save(model: Any, folder: Path, suffix: str = ".h5") -> Path:
    path = folder / f"{model.name}{suffix}"
    if suffix == ".h5":
        model.save(path, include_optimizer=False)
    else:
        model.save(path)
    return path


@dataclass
class Checked:
    loaded: LoadedModel
    graph: Graph
    golden: np.ndarray  # float values of the golden outputs on the random rows
    reference: np.ndarray  # Keras's own outputs on the same rows
    vhdl_rows: int
    chosen: list[str]  # nodes whose formats the quantisation pass chose


def check(
    model: Any,
    folder: Path,
    *,
    exact: bool = False,
    n: int = 100,
    seed: int = 1,
    cfg: QuantConfig | None = None,
    suffix: str = ".h5",
    tolerance: float = 0.05,
) -> Checked:
    """Convert ``model``; VHDL equals golden on the format's corners and ``n`` random rows; golden
    equals Keras bit for bit (``exact``) or within ``tolerance`` of the output's range."""
    loaded = load_model(save(model, folder, suffix))
    g = loaded.graph
    cfg = cfg or (QuantConfig(input_type=NARROW_INPUT) if exact else QuantConfig(weight_bits=10, act_bits=16))
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(max(n, 500), *g.input_shape))
    chosen = quantise(g, cfg, x)
    assert g.input_type is not None and g.output.result_type is not None
    rows = quantize(x[:n], g.input_type).reshape(n, -1)
    x_int = np.concatenate([corner_rows(g.input_size, g.input_type, seed), rows])
    expected = golden.run(g, x_int)["logits"]
    d = render(g, folder / "vhdl", folder / "sim")
    got = simulate(d.files, d.testbench, d.top, x_int, d.n_out, d.argmax, folder / "work").logits
    assert got.tolist() == expected.tolist(), "VHDL differs from the golden model"
    if not exact:
        x_int = rows
        expected = expected[-n:]
    ref = loaded.reference(to_float(x_int, g.input_type.frac))
    out = to_float(expected, g.output.result_type.frac)
    assert ref.shape == out.shape
    if exact:
        assert loaded.reference_exact and chosen == [], f"formats chosen post-training: {chosen}"
        diff = np.flatnonzero(out != ref)
        assert diff.size == 0, (
            f"golden differs from QKeras at {diff[:5]}: {out.ravel()[diff[:5]]} vs {ref.ravel()[diff[:5]]}"
        )
    else:
        err = float(np.max(np.abs(out - ref)))
        assert err <= tolerance * max(1.0, float(np.max(np.abs(ref)))), f"golden is {err} from Keras"
    return Checked(loaded, g, out, ref, len(x_int), chosen)


def ops(g: Graph) -> list[str]:
    return [n.kind for n in g.nodes]
