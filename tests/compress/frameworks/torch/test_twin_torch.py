"""The Brevitas framework twin equals the golden model bit for bit, and the frontend reads it back exactly."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import FixedType, quantize, to_float
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
nn = torch.nn

from mlinfn_compress.compress.frameworks.torch.twin import load_twin, save_twin, twin_layers, twin_logits  # noqa: E402

BREVITAS_NET = """
import torch.nn as nn
import brevitas.nn as qnn
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias
from brevitas.quant import Uint8ActPerTensorFixedPoint
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint


class QNet(nn.Module):
    def __init__(self, per_channel=False):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(16, 32, weight_bit_width=6, bias_quant=Int16Bias, return_quant_tensor=True,
                                   weight_quant=Int8WeightPerChannelFixedPoint if per_channel
                                   else Int8WeightPerTensorFixedPoint)
        self.relu1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(32, 5, weight_quant=Int8WeightPerTensorFixedPoint, bias_quant=Int16Bias)
        self.out = nn.Softmax(dim=1)

    def forward(self, x):
        return self.out(self.fc2(self.relu1(self.fc1(self.inp(x)))))
"""


def jet_mlp() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 5), nn.Softmax(dim=1)
    )  # fmt: skip


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("torch") / "jet_mlp.pt"
    torch.save(jet_mlp(), path)
    return path


def quantised(path: Path, weight_bits: int, act_bits: int, **load: Any) -> tuple[Graph, Any]:
    lm = load_model(path, **load)
    g = lm.graph
    quantise(g, QuantConfig(weight_bits=weight_bits, act_bits=act_bits), default_inputs(4096, g.input_size))
    return g, lm


def golden_and_inputs(g: Graph, n: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    assert g.input_type is not None and g.output.result_type is not None
    x_int = quantize(default_inputs(n, g.input_size, seed=5), g.input_type)
    gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    return to_float(x_int, g.input_type.frac), gold


def read_back(out_dir: Path, info: dict[str, Any], weight_bits: int, act_bits: int) -> Graph:
    """The saved twin through the frontend: exact Brevitas, and its golden model equals its own inference."""
    spec = f"{out_dir / info['model_class'].split(':')[0]}:{info['model_class'].split(':')[1]}"
    g, lm = quantised(out_dir / info["state_dict"], weight_bits, act_bits, model_class=spec,
                      model_args=info["model_args"])  # fmt: skip
    assert (g.framework, lm.reference_exact) == ("brevitas", True)
    x, gold = golden_and_inputs(g)
    assert (lm.reference(x) == gold).all()
    return g


@pytest.mark.parametrize(("weight_bits", "act_bits"), [(8, 16), (6, 6), (16, 24)])
def test_twin_of_float_model_is_bit_exact(mlp_path: Path, tmp_path: Path, weight_bits: int, act_bits: int) -> None:
    g, _ = quantised(mlp_path, weight_bits, act_bits)
    x, gold = golden_and_inputs(g)
    info = save_twin(g, tmp_path / "twin")
    assert info["state_dict"] == "model.pt" and info["model_class"] == "model.py:Twin"
    assert json.loads(json.dumps(info["model_args"])) == info["model_args"]  # JSON-able
    assert {p.name for p in (tmp_path / "twin").iterdir()} >= {"model.pt", "model.py"}
    model = load_twin(tmp_path / "twin")
    out = twin_logits(model, x)
    assert out.shape == gold.shape == (2000, 5)
    assert (out == gold).all()
    assert len(np.unique(out)) > min(40, 2 ** (act_bits - 2))  # a real test: many distinct logits
    kinds = [type(m).__name__ for m in model.children()]
    assert kinds == ["QuantIdentity", "QuantLinear", "QuantReLU", "QuantLinear", "QuantReLU", "QuantLinear",
                     "QuantIdentity", "Softmax"]  # fmt: skip
    fc1 = model.layer_0
    assert int(fc1.quant_weight().bit_width) == weight_bits == g.nodes[0].weight_type.width
    assert float(fc1.quant_weight().scale) == 2.0 ** -g.nodes[0].weight_type.frac
    assert int(model.layer_1.act_quant.bit_width()) == act_bits
    g2 = read_back(tmp_path / "twin", info, weight_bits, act_bits)
    assert [(n.name, n.kind) for n in g2.nodes] == [
        ("input_quant", "cast"), ("layer_0", "dense"), ("layer_1", "relu"), ("layer_2", "dense"),
        ("layer_3", "relu"), ("layer_4", "dense"), ("layer_4_q", "cast"),
    ]  # fmt: skip
    for a, b in zip([n for n in g.nodes if n.kind == "dense"], [n for n in g2.nodes if n.kind == "dense"], strict=True):
        assert (a.weight_int == b.weight_int).all() and a.weight_type == b.weight_type
        assert a.accum_type == b.accum_type


@pytest.fixture(scope="module")
def brevitas_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("brevitas_src")
    file = tmp / "qnet_src.py"
    file.write_text(textwrap.dedent(BREVITAS_NET))
    spec = importlib.util.spec_from_file_location("_test_twin_qnet_src", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return file, module


@pytest.mark.parametrize("per_channel", [False, True])
def test_twin_of_brevitas_model_matches_brevitas(
    brevitas_file: tuple[Path, Any], tmp_path: Path, per_channel: bool
) -> None:
    file, module = brevitas_file
    torch.manual_seed(3)
    model = module.QNet(per_channel=per_channel).train()
    with torch.no_grad():
        for _ in range(4):  # activation scales from runtime statistics
            model(torch.randn(256, 16) * 2)
    path = tmp_path / "qnet.pt"
    torch.save(model.eval().state_dict(), path)
    g, lm = quantised(path, 8, 16, model_class=f"{file}:QNet", model_args={"per_channel": per_channel})
    assert g.framework == "brevitas" and lm.reference_exact
    x, gold = golden_and_inputs(g)
    assert (lm.reference(x) == gold).all()
    info = save_twin(g, tmp_path / "twin")
    out = twin_logits(load_twin(tmp_path / "twin"), x)
    assert (out == gold).all() and (out == lm.reference(x)).all()  # the user's own Brevitas model agrees
    assert len(np.unique(out)) > 100
    ops = [layer["op"] for layer in info["model_args"]["layers"]]
    assert ops == ["quant", "quant", "linear", "quant_relu", "linear", "softmax"]  # 16-bit input, then 8-bit
    read_back(tmp_path / "twin", info, 8, 16)


def test_rounding_and_saturation_modes(mlp_path: Path, tmp_path: Path) -> None:
    """Floor (TRN), round toward zero (TRN_ZERO), narrow saturation (SAT_SYM) are Brevitas quantisers too."""
    g, _ = quantised(mlp_path, 6, 8)
    g.input_type = dataclasses.replace(g.input_type, rounding="TRN", overflow="SAT_SYM")
    relu = g.nodes[1]
    relu.result_type = dataclasses.replace(relu.result_type, rounding="TRN")
    out_t = g.output.result_type
    g.output.result_type = dataclasses.replace(out_t, rounding="TRN_ZERO", overflow="SAT_SYM")
    x_int = quantize(default_inputs(2000, g.input_size, seed=5) * 30, g.input_type)  # some inputs saturate
    assert x_int.min() == -g.input_type.max_int
    gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    info = save_twin(g, tmp_path / "twin")
    out = twin_logits(load_twin(tmp_path / "twin"), to_float(x_int, g.input_type.frac))
    assert (out == gold).all()
    floor = relu.result_type
    relu.result_type = dataclasses.replace(floor, rounding="RND_CONV")  # the modes make a difference here
    assert (to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac) != out).any()
    relu.result_type = floor
    layers = info["model_args"]["layers"]
    assert layers[0]["quant"]["rounding"] == "FLOOR" and layers[0]["quant"]["narrow"] is True
    assert layers[2]["quant"]["rounding"] == "FLOOR"
    assert layers[-2]["quant"]["rounding"] == "ROUND_TO_ZERO" and layers[-2]["quant"]["narrow"] is True
    g2 = read_back(tmp_path / "twin", info, 6, 8)
    assert g2.nodes[0].result_type == g.input_type and g2.nodes[2].result_type == relu.result_type
    assert g2.output.result_type == g.output.result_type


def test_lossless_conversions_need_no_layer(mlp_path: Path, tmp_path: Path) -> None:
    g, _ = quantised(mlp_path, 6, 8)
    relu = g.nodes[1]
    t_in = g.nodes[0].accum_type
    assert t_in is not None
    # a relu onto its input's grid with room for every value: a plain ReLU, whatever its modes
    relu.result_type = FixedType(t_in.width - 1, t_in.integer - 1, False, "RND", "WRAP")
    for n in g.nodes:
        n.result_type = n.result_type if n is relu else None
    quantise(g, QuantConfig(weight_bits=6, act_bits=8), default_inputs(4096, g.input_size))
    layers, _ = twin_layers(g)
    assert [layer["op"] for layer in layers] == [
        "quant", "linear", "relu", "linear", "quant_relu", "linear", "quant", "softmax",
    ]  # fmt: skip
    x, gold = golden_and_inputs(g)
    save_twin(g, tmp_path / "twin")
    assert (twin_logits(load_twin(tmp_path / "twin"), x) == gold).all()


@pytest.mark.parametrize(
    ("node", "change"),
    [(1, {"rounding": "RND"}), (4, {"overflow": "WRAP"}), (4, {"overflow": "SAT_ZERO"})],
)
def test_types_brevitas_cannot_express_get_the_twins_own_quantiser(
    mlp_path: Path, tmp_path: Path, node: int, change: dict[str, str]
) -> None:
    """Half-up rounding, wrap-around, zero on overflow: a ``FixedQuant`` step, still bit-exact."""
    g, _ = quantised(mlp_path, 6, 6)
    n = g.nodes[node]
    n.result_type = dataclasses.replace(n.result_type, **change)
    layers, _ = twin_layers(g)
    fixed = [layer["name"] for layer in layers if layer["op"] == "fixed"]
    assert fixed == [f"{n.name}_q"] and layers[[x["name"] for x in layers].index(fixed[0])]["fixed"] == (
        n.result_type.to_dict()
    )
    x_int = quantize(default_inputs(2000, g.input_size, seed=5) * 4, g.input_type)
    gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    save_twin(g, tmp_path / "twin")
    assert (twin_logits(load_twin(tmp_path / "twin"), to_float(x_int, g.input_type.frac)) == gold).all()
    n.result_type = dataclasses.replace(n.result_type, rounding="RND_CONV", overflow="SAT")  # the modes matter here
    assert (to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac) != gold).any()


def test_accumulator_too_wide_for_float64(mlp_path: Path, tmp_path: Path) -> None:
    g = load_model(mlp_path).graph
    g.nodes[0].weight_type = FixedType(40, 2, True, "RND_CONV", "SAT")  # kept by quantise
    quantise(g, QuantConfig(weight_bits=24, act_bits=24), default_inputs(4096, g.input_size))
    assert g.nodes[0].accum_type is not None and g.nodes[0].accum_type.width > 53
    with pytest.raises(
        ValueError, match=r"node 'layer_0' \(dense\): accumulator fixed<.*> is too wide for exact float64"
    ):
        save_twin(g, tmp_path / "wide")
