"""Brevitas convolutional models with power-of-two quantisers: the golden model equals Brevitas, bit for bit."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise

torch = pytest.importorskip("torch")

BREVITAS_CONV = """
import torch
import torch.nn as nn
import brevitas.nn as qnn
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias
from brevitas.quant import Uint8ActPerTensorFixedPoint
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint


class QConvNet(nn.Module):
    def __init__(self, per_channel=False):
        super().__init__()
        wq = Int8WeightPerChannelFixedPoint if per_channel else Int8WeightPerTensorFixedPoint
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 4, 3, padding=1, weight_quant=wq, weight_bit_width=6, bias_quant=Int16Bias,
                                     return_quant_tensor=True)
        if per_channel:  # channels octaves apart: different scales
            with torch.no_grad():
                self.conv1.weight.mul_(torch.tensor([0.25, 1.0, 4.0, 16.0]).reshape(4, 1, 1, 1))
        self.relu1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(4, 4, 3, padding=1, stride=2, weight_quant=Int8WeightPerTensorFixedPoint,
                                     bias_quant=Int16Bias, return_quant_tensor=True)
        self.relu2 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(16, 5, weight_quant=Int8WeightPerTensorFixedPoint, bias_quant=Int16Bias)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(self.inp(x))))
        return self.fc(self.relu2(self.conv2(x)).flatten(1))


class QConv1d(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8, return_quant_tensor=True)
        self.conv = qnn.QuantConv1d(2, 3, 3, padding=1, weight_quant=Int8WeightPerChannelFixedPoint, bias=False,
                                    return_quant_tensor=True)
        self.act = qnn.QuantHardTanh(act_quant=Int8ActPerTensorFixedPoint, bit_width=6, max_val=1.0, min_val=-1.0,
                                     return_quant_tensor=True)

    def forward(self, x):
        return self.act(self.conv(self.inp(x)))
"""


@pytest.fixture(scope="module")
def brevitas_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("brevitas")
    file = tmp_path_factory.mktemp("brevitas") / "qconv.py"
    file.write_text(textwrap.dedent(BREVITAS_CONV))
    return file


def calibrated_state(file: Path, cls: str, shape: tuple[int, ...], tmp_path: Path, **kw: Any) -> Path:
    """A Brevitas model of ``cls`` with activation scales from runtime statistics, saved as a state_dict."""
    from mlinfn_compress.compress.frameworks.torch.loading import import_model_class

    model = import_model_class(file, f"{file}:{cls}")(**kw)
    torch.manual_seed(3)
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(64, *shape) * 2)
    path = tmp_path / f"{cls}.pt"
    torch.save(model.eval().state_dict(), path)
    return path


@pytest.mark.parametrize("cls,shape,kw", [("QConvNet", (1, 8, 8), {}), ("QConvNet", (1, 8, 8), {"per_channel": True}),
                                          ("QConv1d", (2, 10), {})])  # fmt: skip
def test_brevitas_quant_conv_bit_exact(
    brevitas_file: Path, cls: str, shape: tuple[int, ...], kw: dict[str, Any], tmp_path: Path
) -> None:
    """Brevitas fixes every format: the golden model equals Brevitas's own inference exactly."""
    path = calibrated_state(brevitas_file, cls, shape, tmp_path, **kw)
    lm = load_model(path, model_class=f"{brevitas_file}:{cls}", model_args=kw, input_shape=shape)
    g = lm.graph
    assert g.framework == "brevitas" and lm.reference_exact
    if cls == "QConvNet":
        assert [n.kind for n in g.nodes] == [
            "cast",
            "conv2d",
            "relu",
            "max_pool2d",
            "conv2d",
            "relu",
            "flatten",
            "dense",
        ]
        conv1 = g.node("conv1")
        assert conv1.weight_type.width == 6 if not kw else conv1.weight_type.width > 6  # the finest scale of all
        assert ("per-channel" in " ".join(conv1.notes)) == bool(kw)
    else:
        assert [n.kind for n in g.nodes] == ["cast", "conv1d", "cast"]
    quantise(g, QuantConfig(), default_inputs(2000, g.input_shape))
    x = quantize(default_inputs(1000, g.input_size, seed=4) * 2, g.input_type)
    gold = to_float(golden.run(g, x)["logits"], g.output.result_type.frac)
    ref = lm.reference(to_float(x, g.input_type.frac))
    assert (gold == ref).all() and len(np.unique(ref)) > 40


@pytest.mark.slow
def test_brevitas_conv_cli_bit_exact_against_brevitas(brevitas_file: Path, tmp_path: Path) -> None:
    path = calibrated_state(brevitas_file, "QConvNet", (1, 8, 8), tmp_path)
    out = tmp_path / "out"
    args = [str(path), "--model-class", f"{brevitas_file}:QConvNet", "--input-shape", "1,8,8", "--simulate", "300"]
    assert main([*args, "-o", str(out), "-q"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["verification"]["bit_exact"] and "brevitas" in r["verification"]["against"]
    assert r["quantisation"]["chosen_post_training"] == []
