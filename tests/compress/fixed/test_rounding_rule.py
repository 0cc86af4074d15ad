"""The one rounding and overflow rule, bit for bit in numpy, TensorFlow and torch, on every small format."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import (
    OVERFLOW_MODES,
    ROUNDING_MODES,
    FixedType,
    quantize,
    requantize,
    to_float,
)
from mlinfn_compress.compress.fixed.rounding import NUMPY, quantise, tensorflow_namespace, torch_namespace

FORMATS = [(w, i, s) for w in range(1, 6) for s in (True, False) for i in range(-2, w + 3)]


def every_value(t: FixedType, finer: int = 2) -> tuple[np.ndarray, int]:
    """Every multiple of the format's step / 2**finer from well below its range to well above (ties included)."""
    frac = t.frac + finer
    span = (t.max_int - t.min_int + 1) << finer
    k = np.arange(t.min_int * (1 << finer) - span, (t.max_int + 1) * (1 << finer) + span, dtype=np.int64)
    return k, frac


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
def test_numpy_tensorflow_and_torch_round_and_overflow_alike(rounding: str) -> None:
    import torch

    from mlinfn_compress.compress.frameworks.keras.tfkeras import tensorflow

    tf = tensorflow()
    tf_ns, torch_ns = tensorflow_namespace(), torch_namespace()
    checked = 0
    for (w, i, signed), overflow in itertools.product(FORMATS, OVERFLOW_MODES):
        t = FixedType(w, i, signed, rounding, overflow)
        k, frac = every_value(t)
        x = to_float(k, frac)
        want = requantize(k, frac, t)  # the golden model's integer path
        np.testing.assert_array_equal(quantize(x, t), want, err_msg=str(t))
        for name, got in (
            ("numpy", quantise(NUMPY, x, w, i, signed, rounding, overflow)),
            ("tensorflow", quantise(tf_ns, tf.constant(x, tf.float64), w, i, signed, rounding, overflow).numpy()),
            ("torch", quantise(torch_ns, torch.from_numpy(x), w, i, signed, rounding, overflow).numpy()),
        ):
            np.testing.assert_array_equal(np.ldexp(got, t.frac), want, err_msg=f"{name}, {t}")
        checked += len(k)
    assert checked > 20_000


def test_a_tie_goes_where_each_mode_says() -> None:
    t = FixedType(4, 4, True)  # integers -8..7
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    expected = {
        "TRN": [-3, -2, -1, 0, 1, 2],
        "TRN_ZERO": [-2, -1, 0, 0, 1, 2],
        "RND": [-2, -1, 0, 1, 2, 3],
        "RND_ZERO": [-2, -1, 0, 0, 1, 2],
        "RND_INF": [-3, -2, -1, 1, 2, 3],
        "RND_MIN_INF": [-3, -2, -1, 0, 1, 2],
        "RND_CONV": [-2, -2, 0, 0, 2, 2],
    }
    for mode, want in expected.items():
        assert quantize(x, t.with_modes(mode, "WRAP")).tolist() == want, mode


STANDALONE = """
import sys
sys.modules["mlinfn_compress"] = None  # a machine without mlinfn-compress: the copy beside the class file
sys.path.insert(0, sys.argv[1])
import json, numpy as np, torch
import model
info = json.load(open(sys.argv[1] + "/twin.json"))
twin = model.Twin(**info["model_args"])
twin.load_state_dict(torch.load(sys.argv[1] + "/model.pt", weights_only=True))
x = torch.from_numpy(np.load(sys.argv[1] + "/x.npy"))
np.save(sys.argv[1] + "/y.npy", twin.eval().logits(x).detach().numpy())
"""


def test_a_saved_brevitas_twin_runs_without_mlinfn_compress(tmp_path: Path) -> None:
    from conftest import make_graph, make_node

    from mlinfn_compress.compress.frameworks.torch import twin
    from mlinfn_compress.compress.ir import golden
    from mlinfn_compress.compress.passes.quantise import QuantConfig
    from mlinfn_compress.compress.passes.quantise import quantise as quantise_graph

    rng = np.random.default_rng(4)
    g = make_graph("standalone", "torch", "t.pt", 5, [
        make_node("fc", "dense", ["input"], 4, weight=rng.normal(0, 0.5, (5, 4)), bias=rng.normal(0, 0.2, 4)),
        make_node("act", "relu", ["fc"], 4, lo=0.0),
    ])  # fmt: skip
    quantise_graph(g, QuantConfig(weight_bits=6, act_bits=9), rng.normal(0, 1, (200, 5)))
    twin.save_twin(g, tmp_path)
    x_int = rng.integers(-3000, 3000, (50, 5))
    np.save(tmp_path / "x.npy", to_float(x_int, g.input_type.frac))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-c", STANDALONE, str(tmp_path)], check=True, env=env)
    assert (tmp_path / "mlinfn_rounding.py").exists()
    got = np.load(tmp_path / "y.npy")
    want = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    np.testing.assert_array_equal(got, want)
