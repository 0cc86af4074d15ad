"""The PyTorch / Brevitas frontend on models the tests build: loading, translation, exactness, rejections."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.errors import UnsupportedLayer, UserError

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

BREVITAS_NET = '''
import torch
import torch.nn as nn
import brevitas.nn as qnn
from brevitas.quant.fixed_point import Int8BiasPerTensorFixedPointInternalScaling, Int8WeightPerChannelFixedPoint
from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint, Int16Bias
from brevitas.quant import Int8WeightPerTensorFloat, Uint8ActPerTensorFixedPoint


class QNet(nn.Module):
    """QuantIdentity -> QuantLinear -> QuantReLU -> QuantLinear, all power-of-two scales."""

    def __init__(self, hidden=32, float_bias=False, weight_quant=Int8WeightPerTensorFixedPoint):
        super().__init__()
        bias_quant = None if float_bias else Int16Bias
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, bit_width=8, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(16, hidden, weight_quant=weight_quant, weight_bit_width=6,
                                   bias_quant=bias_quant, return_quant_tensor=True)
        self.relu1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=6, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(hidden, 5, weight_quant=Int8WeightPerTensorFixedPoint,
                                   bias_quant=bias_quant, return_quant_tensor=True)

    def forward(self, x):
        return self.fc2(self.relu1(self.fc1(self.inp(x))))


class PerChannelOut(nn.Module):
    """Per-channel weight scales, a bias with its own scale, output quantisation, torch.relu in forward."""

    def __init__(self):
        super().__init__()
        self.fc1 = qnn.QuantLinear(16, 8, weight_quant=Int8WeightPerChannelFixedPoint, bias=False)
        with torch.no_grad():  # channels four octaves apart: different scales
            self.fc1.weight.mul_(torch.logspace(-4, 4, 8, base=2).unsqueeze(1))
        self.relu1 = qnn.QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(8, 3, weight_quant=Int8WeightPerTensorFixedPoint,
                                   bias_quant=Int8BiasPerTensorFixedPointInternalScaling,
                                   output_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True)

    def forward(self, x):
        return self.fc2(torch.relu(self.relu1(self.fc1(x))))


class NotPowerOfTwo(QNet):
    def __init__(self):
        super().__init__(weight_quant=Int8WeightPerTensorFloat)
'''

TORCH_NET = """
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, hidden=8):
        super().__init__()
        self.fc1 = nn.Linear(6, hidden)
        self.fc2 = nn.Linear(hidden, 3)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))
"""


class FunctionalNet(nn.Module):
    """A custom forward with functional relu and softmax, traced by torch.fx."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(8, 12)
        self.b = nn.Sequential(nn.Dropout(0.1), nn.Linear(12, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.b(F.relu(self.a(x))), dim=-1)


def jet_mlp() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2),
        nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 5), nn.Softmax(dim=1),
    )  # fmt: skip


def write_module(tmp_path: Path, name: str, text: str) -> tuple[Path, Any]:
    file = tmp_path / f"{name}.py"
    file.write_text(textwrap.dedent(text))
    spec = importlib.util.spec_from_file_location(f"_test_{name}_{abs(hash(tmp_path))}", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return file, module


def check_reference(path: Path, model: Any, n_in: int) -> None:
    """The reference is the model's own float64 inference."""
    lm = load_model(path)
    x = np.random.default_rng(1).standard_normal((50, n_in))
    with torch.no_grad():
        expected = model.double().eval()(torch.from_numpy(x)).numpy()
    got = lm.reference(x)
    if lm.graph.has_argmax:
        np.testing.assert_allclose(torch.softmax(torch.from_numpy(got), dim=1).numpy(), expected, rtol=1e-12)
    else:
        np.testing.assert_array_equal(got, expected)


def golden_vs_reference(lm: Any) -> tuple[np.ndarray, np.ndarray]:
    """The CLI's flow: quantise, run the golden model and the model's own inference on the same inputs."""
    g = lm.graph
    quantise(g, QuantConfig(), default_inputs(4096, g.input_size))
    x_int = quantize(default_inputs(1000, g.input_size, seed=5), g.input_type)
    gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
    return gold, lm.reference(to_float(x_int, g.input_type.frac))


# ---- plain PyTorch ------------------------------------------------------------------


@pytest.mark.slow
def test_whole_pickled_sequential_with_softmax(tmp_path: Path) -> None:
    path = tmp_path / "jet_mlp.pt"
    torch.save(jet_mlp(), path)
    lm = load_model(path)
    g = lm.graph
    assert (g.name, g.framework, g.input_size, g.output_activation) == ("jet_mlp", "torch", 16, "softmax")
    assert [(n.kind, n.size) for n in g.nodes] == [
        ("dense", 64), ("relu", 64), ("dense", 32), ("relu", 32), ("dense", 32), ("relu", 32), ("dense", 5),
    ]  # fmt: skip
    assert g.parameters == 16 * 64 + 64 + 64 * 32 + 32 + 32 * 32 + 32 + 32 * 5 + 5
    assert g.nodes[0].weight.shape == (16, 64) and g.nodes[0].bias.shape == (64,)
    assert lm.reference_exact is False
    gold, ref = golden_vs_reference(lm)
    assert ref.shape == (1000, 5) and np.max(np.abs(gold - ref)) < 0.05  # post-training quantisation
    assert np.mean(np.argmax(gold, 1) == np.argmax(ref, 1)) > 0.97
    out = tmp_path / "out"
    assert main([str(path), "-o", str(out), "-q", "--simulate", "200"]) == 0
    assert json.loads((out / "report.json").read_text())["verification"]["bit_exact"] is True


def test_custom_forward_traced_by_fx(tmp_path: Path) -> None:
    path = tmp_path / "functional.pth"
    torch.manual_seed(1)
    model = FunctionalNet()
    torch.save(model, path)
    g = load_model(path).graph
    assert [(n.name, n.kind, n.source) for n in g.nodes] == [
        ("a", "dense", "Linear"), ("relu", "relu", "F.relu"), ("b_1", "dense", "Linear"),
    ]  # fmt: skip
    assert (g.name, g.input_size, g.output_activation) == ("functionalnet", 8, "softmax")
    check_reference(path, model, 8)


def test_model_saved_on_a_gpu_loads_on_cpu(tmp_path: Path) -> None:
    # Without a GPU no tensor can live on "cuda", so the file is crafted: a CPU save whose storages are
    # re-tagged as 'cuda:0', exactly what torch.save writes on a GPU.  torch.load then needs map_location.
    cpu = tmp_path / "cpu.pt"
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    torch.save(model, cpu)
    path = tmp_path / "gpu.pt"
    with zipfile.ZipFile(cpu) as zin, zipfile.ZipFile(path, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            if name.endswith("data.pkl"):
                assert data.count(b"X\x03\x00\x00\x00cpu") >= 1
                data = data.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")
            zout.writestr(name, data)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(path, weights_only=False)
    assert [n.kind for n in load_model(path).graph.nodes] == ["dense", "relu", "dense"]
    check_reference(path, model, 4)


@pytest.mark.parametrize("suffix", [".ts", ".pt"])
def test_torchscript(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"scripted{suffix}"
    torch.jit.script(jet_mlp()).save(str(path))
    lm = load_model(path)
    assert [n.kind for n in lm.graph.nodes] == ["dense", "relu"] * 3 + ["dense"]
    assert lm.graph.output_activation == "softmax" and lm.graph.name == "scripted"
    check_reference(path, jet_mlp(), 16)
    custom = tmp_path / f"custom{suffix}"
    torch.manual_seed(1)
    torch.jit.script(FunctionalNet()).save(str(custom))
    assert [n.kind for n in load_model(custom).graph.nodes] == ["dense", "relu", "dense"]
    torch.manual_seed(1)
    check_reference(custom, FunctionalNet(), 8)


def test_state_dict_with_model_class(tmp_path: Path) -> None:
    file, module = write_module(tmp_path, "torchnet", TORCH_NET)
    model = module.Net(hidden=10)
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    lm = load_model(path, model_class=f"{file}:Net", model_args={"hidden": 10})
    assert [(n.kind, n.size) for n in lm.graph.nodes] == [("dense", 10), ("relu", 10), ("dense", 3)]
    assert lm.graph.name == "net" and lm.graph.output_activation is None
    x = np.random.default_rng(2).standard_normal((20, 6))
    with torch.no_grad():
        np.testing.assert_array_equal(lm.reference(x), model.double()(torch.from_numpy(x)).numpy())
    with pytest.raises(UserError, match=r"weights\.pth: holds a state_dict .*--model-class FILE\.py:ClassName"):
        load_model(path)
    with pytest.raises(UserError, match=r"weights\.pth: the state_dict does not fit Net"):
        load_model(path, model_class=f"{file}:Net", model_args={"hidden": 4})
    with pytest.raises(UserError, match=r"weights\.pth: --model-class .*: no such file .*missing\.py"):
        load_model(path, model_class=f"{tmp_path / 'missing.py'}:Net")
    with pytest.raises(UserError, match=r"weights\.pth: .*defines no nn.Module class 'Nope' \(it defines: Net\)"):
        load_model(path, model_class=f"{file}:Nope")


def test_corrupt_file(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    torch.save(jet_mlp(), good)
    path = tmp_path / "truncated.pt"
    path.write_bytes(good.read_bytes()[:400])
    with pytest.raises(UserError, match=r"truncated\.pt: cannot load the model \("):
        load_model(path)


def test_final_sigmoid_is_left_to_the_user(tmp_path: Path) -> None:
    """Like a final softmax: the IR stops before it and the reference gives the values before it."""
    sigmoid = tmp_path / "sigmoid.pt"
    model = nn.Sequential(nn.Linear(16, 4), nn.ReLU(), nn.Linear(4, 1), nn.Sigmoid())
    torch.save(model, sigmoid)
    lm = load_model(sigmoid)
    assert lm.graph.output_activation == "sigmoid" and not lm.graph.has_argmax
    assert [n.kind for n in lm.graph.nodes] == ["dense", "relu", "dense"]
    x = np.random.default_rng(0).standard_normal((5, 16))
    with torch.no_grad():
        before = model[:3].double()(torch.from_numpy(x)).numpy()
    assert (lm.reference(x) == before).all()
    followed = tmp_path / "followed.pt"
    torch.save(nn.Sequential(nn.Linear(16, 4), nn.Sigmoid(), nn.Linear(4, 1)), followed)
    inside = load_model(followed).graph  # a sigmoid inside the network is a lookup table
    assert [n.kind for n in inside.nodes] == ["dense", "sigmoid", "dense"] and inside.output_activation is None


def test_unsupported_layers(tmp_path: Path) -> None:
    norm = tmp_path / "norm.pt"
    torch.save(nn.Sequential(nn.Linear(8, 4), nn.LayerNorm(4), nn.Linear(4, 2)), norm)
    with pytest.raises(UnsupportedLayer, match=r"norm\.pt: module '1' \(LayerNorm\) is not supported; supported: Lin"):
        load_model(norm)


# ---- Brevitas -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def brevitas_net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """A calibrated QNet's state_dict and the file of its class."""
    pytest.importorskip("brevitas")
    tmp = tmp_path_factory.mktemp("brevitas")
    file, module = write_module(tmp, "qnet", BREVITAS_NET)
    path = tmp / "qnet_state.pt"
    torch.save(calibrated(module.QNet()).state_dict(), path)
    return path, file, module


def calibrated(model: Any) -> Any:
    torch.manual_seed(3)
    model.train()
    with torch.no_grad():
        for _ in range(4):  # the activation scales come from runtime statistics
            model(torch.randn(256, 16) * 2)
    return model.eval()


def test_brevitas_bit_exact(brevitas_net: tuple[Path, Path, Any]) -> None:
    path, file, _ = brevitas_net
    lm = load_model(path, model_class=f"{file}:QNet", model_args={"hidden": 32})
    g = lm.graph
    assert (g.framework, g.name, lm.reference_exact) == ("brevitas", "qnet", True)
    assert [(n.name, n.kind, n.size) for n in g.nodes] == [
        ("inp", "cast", 16), ("fc1", "dense", 32), ("relu1", "relu", 32), ("fc2", "dense", 5),
    ]  # fmt: skip
    cast, fc1, relu, fc2 = g.nodes
    assert cast.result_type.width == 8 and cast.result_type.signed and cast.result_type.rounding == "RND_CONV"
    assert relu.result_type.width == 6 and not relu.result_type.signed and relu.result_type.overflow == "SAT"
    assert fc1.weight_type.width == 6 and fc2.weight_type.width == 8 and fc1.bias_type.width == 16
    assert fc1.bias_type.frac == cast.result_type.frac + fc1.weight_type.frac  # Int16Bias: input x weight scale
    assert np.max(np.abs(np.ldexp(fc1.weight, fc1.weight_type.frac))) <= 31  # narrow 6-bit integers
    gold, ref = golden_vs_reference(lm)
    assert (gold == ref).all()
    assert len(np.unique(ref)) > 100  # not a degenerate model
    # Brevitas rounds half to even (torch.round): with any other rounding some of the ties come out differently.
    for node in (cast, relu):
        t = node.result_type
        node.result_type = dataclasses.replace(t, rounding="RND")
        x_int = quantize(default_inputs(1000, g.input_size, seed=5), g.input_type)
        assert (to_float(golden.run(g, x_int)["logits"], fc2.result_type.frac) != ref).any()
        node.result_type = t


def test_brevitas_per_channel_and_output_quant(brevitas_net: tuple[Path, Path, Any], tmp_path: Path) -> None:
    _, file, module = brevitas_net
    path = tmp_path / "per_channel.pt"
    torch.save(calibrated(module.PerChannelOut()).state_dict(), path)
    lm = load_model(path, model_class=f"{file}:PerChannelOut")
    assert [(n.kind, n.source) for n in lm.graph.nodes] == [
        ("dense", "QuantLinear"), ("relu", "QuantReLU"), ("relu", "F.relu"), ("dense", "QuantLinear"),
        ("cast", "QuantLinear.output_quant"),
    ]  # fmt: skip
    fc1 = lm.graph.nodes[0]
    assert fc1.weight_type.width > 8 and "per-channel" in fc1.notes[0]  # stored with the finest scale
    assert lm.reference_exact is True
    gold, ref = golden_vs_reference(lm)
    assert (gold == ref).all() and len(np.unique(ref)) > 10


@pytest.mark.slow
def test_brevitas_cli_bit_exact_against_the_framework(brevitas_net: tuple[Path, Path, Any], tmp_path: Path) -> None:
    path, file, _ = brevitas_net
    out = tmp_path / "out"
    args = [str(path), "--model-class", f"{file}:QNet", "--model-args", '{"hidden": 32}']
    assert main([*args, "-o", str(out), "-q", "--simulate", "200"]) == 0
    v = json.loads((out / "report.json").read_text())["verification"]
    assert v["bit_exact"] is True and "brevitas" in v["against"]


def test_brevitas_float_bias_is_not_exact(brevitas_net: tuple[Path, Path, Any], tmp_path: Path) -> None:
    _, file, module = brevitas_net
    model = module.QNet(float_bias=True)
    path = tmp_path / "float_bias.pt"
    torch.save(model.state_dict(), path)
    lm = load_model(path, model_class=f"{file}:QNet", model_args={"float_bias": True})
    assert lm.reference_exact is False and lm.graph.framework == "brevitas"
    assert lm.graph.nodes[1].bias_type is None
    assert "float bias quantised to the accumulator's fractional bits" in lm.graph.nodes[1].notes


def test_brevitas_scale_not_power_of_two(brevitas_net: tuple[Path, Path, Any], tmp_path: Path) -> None:
    _, file, module = brevitas_net
    path = tmp_path / "float_scale.pt"
    torch.save(module.NotPowerOfTwo().state_dict(), path)
    with pytest.raises(UserError) as e:
        load_model(path, model_class=f"{file}:NotPowerOfTwo")
    msg = str(e.value)
    assert "float_scale.pt: module 'fc1' (QuantLinear)" in msg and "is not a power of two" in msg
    assert "Int8WeightPerTensorFixedPoint" in msg
