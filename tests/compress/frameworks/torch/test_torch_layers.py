"""The PyTorch / Brevitas layers of convolutional networks, on models the tests build.

Each model is translated, its float IR checked against torch's own float64
inference, quantised, and its dataflow VHDL simulated in GHDL against the
golden model bit for bit; the golden model stays within quantisation error of
torch (Brevitas models with power-of-two quantisers: equal, bit for bit).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.backends.vhdl import render
from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.frameworks import LoadedModel, load_model
from mlinfn_compress.compress.frameworks.torch.translate import natural_order
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise
from mlinfn_compress.errors import UnsupportedLayer
from mlinfn_compress.sim.ghdl import simulate

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


# ---- models --------------------------------------------------------------------------


class Functional(nn.Module):
    """Every layer as a function in forward: pad, pools, interpolate, activations, a crop by negative padding."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)

    def forward(self, x: Any) -> Any:
        x = F.relu(self.conv(F.pad(x, (1, 1, 1, 1))))
        x = F.interpolate(F.max_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = F.pad(F.avg_pool2d(x, kernel_size=2, stride=1), (0, 1, -1, 0))
        x = F.leaky_relu(torch.tanh(x) + x, 0.25)
        x = F.hardtanh(F.relu6(x), -1.0, 1.5)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class Residual(nn.Module):
    """A skip connection: relu(x + bn(conv(relu(conv(x)))))."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 2, 3, padding=1)
        self.c2 = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)

    def forward(self, x: Any) -> Any:
        return F.relu(x + self.bn(self.c2(F.relu(self.c1(x)))))


class TwoBranches(nn.Module):
    """Two branches concatenated over channels, then two flattened branches concatenated into a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(2, 3, 3, padding=1)
        self.b = nn.Conv2d(2, 2, 1)
        self.c = nn.Conv2d(5, 2, 3, stride=2)
        self.fc = nn.Linear(2 * 2 * 2 + 2 * 5 * 5, 3)

    def forward(self, x: Any) -> Any:
        both = torch.cat([F.relu(self.a(x)), self.b(x)], dim=1)
        flat = torch.cat([torch.flatten(self.c(both), 1), self.b(x).view(x.size(0), -1)], dim=1)
        return self.fc(flat)


class UNet(nn.Module):
    """Two levels: conv, pool, conv + batch norm, up-sample, concatenate the skip, convs, a sigmoid mask."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = nn.Sequential(nn.Conv2d(12, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))

    def forward(self, x: Any) -> Any:
        e1 = self.enc1(x)
        return torch.sigmoid(self.dec(torch.cat([e1, self.up(self.enc2(e1))], dim=1)))


def autoencoder_1d() -> Any:
    """A Conv1D autoencoder: 2 channels x 16 samples -> 2 x 4 -> 2 x 16."""
    return nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(4, 2, 3, padding=1), nn.ReLU(),
        nn.MaxPool1d(2), nn.Upsample(scale_factor=2), nn.Conv1d(2, 4, 3, padding="same"), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv1d(4, 2, 3, padding=1),
    )  # fmt: skip


class BatchNorms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.bn1 = nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3)  # folded
        self.c2, self.bn2 = nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)  # c2 has two readers: standalone
        self.bn3 = nn.BatchNorm2d(3)  # after a relu: standalone
        self.fc, self.bn4 = nn.Linear(27, 4), nn.BatchNorm1d(4)  # folded into the Linear

    def forward(self, x: Any) -> Any:
        y = self.c2(self.bn1(self.c1(x)))
        z = self.bn3(F.relu(self.bn2(y) + y))
        return self.bn4(self.fc(z.flatten(1)))


class Decoder(nn.Module):
    """A Linear whose output is viewed as channels-first feature maps: the IR must move the data."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2 * 3 * 3)
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: Any) -> Any:
        return self.conv(F.interpolate(self.fc(x).view(-1, 2, 3, 3), scale_factor=2))


# ---- helpers ---------------------------------------------------------------------------


class MaxMin(nn.Module):
    """torch.maximum of two branches, torch.minimum of that and the input, as a tensor method too."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(2, 2, 3, padding=1)
        self.b = nn.Conv1d(2, 2, 1)
        self.fc = nn.Linear(12, 3)

    def forward(self, x: Any) -> Any:
        b = self.b(x)
        top = torch.maximum(self.a(x), F.relu(b))
        return self.fc(torch.flatten(torch.minimum(top, x).maximum(b), 1))


class MaxBroadcast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv1d(2, 1, 1)

    def forward(self, x: Any) -> Any:
        return torch.maximum(x, self.a(x))


def randomised(model: Any, seed: int = 0) -> Any:
    """Random weights and batch-norm statistics, eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def translate(tmp_path: Path, model: Any, shape: tuple[int, ...] | None) -> LoadedModel:
    path = tmp_path / "model.pt"
    torch.save(randomised(model), path)
    return load_model(path, input_shape=shape)


def check_float(lm: LoadedModel) -> None:
    """The float IR computes what torch computes (float64): the translation itself is exact."""
    g = lm.graph
    x = np.random.default_rng(1).standard_normal((40, *g.input_shape))
    got = g.run_float(x)[g.output_name].reshape(len(x), -1)
    np.testing.assert_allclose(got, lm.reference(x), rtol=0, atol=1e-9)


def check_hardware(lm: LoadedModel, tmp_path: Path, tol: float, n: int = 200) -> np.ndarray:
    """Quantise; the VHDL equals the golden model bit for bit; the golden model is within ``tol`` of torch."""
    g = lm.graph
    quantise(g, QuantConfig(), default_inputs(2000, g.input_shape))
    assert g.input_type is not None and g.output.result_type is not None
    x = quantize(default_inputs(n, g.input_size, seed=3), g.input_type)
    gold = golden.run(g, x)["logits"]
    d = render(g, tmp_path / "vhdl", tmp_path / "sim")
    got = simulate(d.files, d.testbench, d.top, x, d.n_out, d.argmax, tmp_path / "work").logits
    assert got.tolist() == gold.tolist()
    ref = lm.reference(to_float(x, g.input_type.frac))
    err = float(np.max(np.abs(to_float(gold, g.output.result_type.frac) - ref)))
    assert err < tol, err
    return gold


def kinds(lm: LoadedModel) -> list[str]:
    return [n.kind for n in lm.graph.nodes]


# ---- every module alone -------------------------------------------------------------------

ALONE: list[tuple[str, Callable[[], Any], tuple[int, ...], list[str], float]] = [
    ("linear", lambda: nn.Linear(16, 4), (16,), ["dense"], 0.03),
    ("linear_nd", lambda: nn.Linear(6, 3), (4, 6), ["dense"], 0.03),
    ("conv1d", lambda: nn.Conv1d(2, 3, 3, padding=1), (2, 10), ["conv1d"], 0.03),
    ("conv2d", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 7, 7), ["conv2d"], 0.03),
    ("maxpool1d", lambda: nn.MaxPool1d(2), (3, 8), ["max_pool1d"], 1e-9),
    ("maxpool2d", lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 7, 7), ["max_pool2d"], 1e-9),
    ("avgpool1d", lambda: nn.AvgPool1d(3, 2, 1, count_include_pad=False), (2, 9), ["avg_pool1d"], 1e-3),
    ("avgpool2d", lambda: nn.AvgPool2d(3, 1, 1), (2, 5, 5), ["avg_pool2d"], 1e-3),
    ("adaptive_avg1d", lambda: nn.AdaptiveAvgPool1d(1), (3, 8), ["global_avg_pool1d"], 1e-9),
    ("adaptive_avg2d", lambda: nn.AdaptiveAvgPool2d(1), (3, 6, 6), ["global_avg_pool2d"], 1e-3),
    ("adaptive_max2d", lambda: nn.AdaptiveMaxPool2d((1, 1)), (3, 5, 5), ["global_max_pool2d"], 1e-9),
    ("batchnorm1d_flat", lambda: nn.BatchNorm1d(8), (8,), ["batchnorm"], 0.05),
    ("batchnorm1d", lambda: nn.BatchNorm1d(3), (3, 7), ["batchnorm"], 0.05),
    ("batchnorm2d", lambda: nn.BatchNorm2d(3), (3, 4, 4), ["batchnorm"], 0.05),
    ("flatten", lambda: nn.Flatten(), (3, 4, 4), ["flatten"], 1e-9),
    ("upsample1d", lambda: nn.Upsample(scale_factor=2), (2, 5), ["upsample"], 1e-9),
    ("upsample2d", lambda: nn.Upsample(scale_factor=(2, 3), mode="nearest"), (2, 3, 3), ["upsample"], 1e-9),
    ("zeropad2d", lambda: nn.ZeroPad2d((1, 0, 2, 1)), (2, 3, 3), ["pad"], 1e-9),
    ("constantpad1d", lambda: nn.ConstantPad1d(2, 0.0), (2, 5), ["pad"], 1e-9),
    ("identity_dropout", lambda: nn.Sequential(nn.Identity(), nn.Dropout(0.3), nn.ReLU()), (4,), ["relu"], 1e-9),
    ("relu", lambda: nn.ReLU(), (2, 4, 4), ["relu"], 1e-9),
    ("relu6", lambda: nn.ReLU6(), (8,), ["relu6"], 1e-9),
    ("hardtanh", lambda: nn.Hardtanh(-0.5, 1.5), (2, 6), ["hard_tanh"], 1e-9),
    ("leaky_relu", lambda: nn.LeakyReLU(0.125), (2, 6), ["leaky_relu"], 1e-9),
    ("leaky_relu_inexact", lambda: nn.LeakyReLU(0.01), (6,), ["leaky_relu"], 1e-3),
    ("hardsigmoid", lambda: nn.Hardsigmoid(), (2, 3, 3), ["batchnorm", "hard_sigmoid"], 0.01),
    ("tanh", lambda: nn.Tanh(), (2, 6), ["tanh"], 0.01),
    ("sigmoid_inside", lambda: nn.Sequential(nn.Sigmoid(), nn.Linear(6, 2)), (6,), ["sigmoid", "dense"], 0.02),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,factory,shape,expected,tol", ALONE, ids=[a[0] for a in ALONE])
def test_every_module_alone(
    name: str, factory: Callable[[], Any], shape: tuple[int, ...], expected: list[str], tol: float, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    lm = translate(tmp_path, factory(), shape)
    assert kinds(lm) == expected
    channels_first = len(shape) > 1 and name != "linear_nd"
    want_in = (*shape[1:], shape[0]) if channels_first else shape
    assert lm.graph.input_shape == want_in and lm.model_input_shape == shape
    check_float(lm)
    gold = check_hardware(lm, tmp_path, tol)
    assert len(np.unique(gold)) > 10


def test_sigmoid_and_tanh_tables_and_their_error(tmp_path: Path) -> None:
    """Sigmoid and tanh inside the network are lookup tables over a 10-bit index: error about 2^-6."""
    model = nn.Sequential(
        nn.Conv1d(2, 3, 3), nn.Sigmoid(), nn.Conv1d(3, 3, 1), nn.Tanh(), nn.Flatten(), nn.Linear(18, 2)
    )
    lm = translate(tmp_path, model, (2, 8))
    assert kinds(lm) == ["conv1d", "sigmoid", "conv1d", "tanh", "flatten", "dense"]
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)
    table = lm.graph.nodes[1]
    assert table.index_type is not None and len(table.table_int) == 2**table.index_type.width


# ---- convolutions: every padding and stride ---------------------------------------------------

CONVS = [
    (1, 0, 1, True), (1, 2, 2, False), (1, "same", 1, True), (1, "valid", 2, True),
    (2, 0, 2, True), (2, 1, 1, False), (2, (1, 0), 2, True), (2, "same", 1, False), (2, "valid", 1, True),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("dims,padding,stride,bias", CONVS)
def test_convolution_padding_and_stride(dims: int, padding: Any, stride: int, bias: bool, tmp_path: Path) -> None:
    torch.manual_seed(dims)
    cls = nn.Conv1d if dims == 1 else nn.Conv2d
    kernel = 4 if padding == "same" else 3  # an even kernel: torch pads one more after than before
    conv = cls(2, 3, kernel, stride=stride, padding=padding, bias=bias)
    shape = (2, 9) if dims == 1 else (2, 7, 6)
    lm = translate(tmp_path, conv, shape)
    (node,) = lm.graph.nodes
    pad = (padding,) * dims if isinstance(padding, int) else padding
    want = (
        ((1, 2),) * dims
        if padding == "same"
        else ((0, 0),) * dims
        if padding == "valid"
        else tuple((p, p) for p in pad)
    )
    assert node.kind == f"conv{dims}d" and node.window.pads == want and node.window.strides == (stride,) * dims
    assert node.weight.shape == (kernel**dims * 2, 3) and (bias or not node.bias.any())
    with torch.no_grad():
        out = conv(torch.zeros(1, *shape))
    assert lm.graph.output.shape == (*out.shape[2:], 3)
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05, n=100)


# ---- batch norm, flatten, layouts -----------------------------------------------------------


def test_batch_norm_folded_where_it_can_be_else_standalone(tmp_path: Path) -> None:
    lm = translate(tmp_path, BatchNorms(), (2, 5, 5))
    g = lm.graph
    assert [(n.name, n.kind) for n in g.nodes] == [
        ("c1", "conv2d"), ("c2", "conv2d"), ("bn2", "batchnorm"), ("add", "add"), ("relu", "relu"),
        ("bn3", "batchnorm"), ("bn3_flatten", "flatten"), ("fc", "dense"),
    ]  # fmt: skip
    assert g.node("c1").notes == ["'bn1' (a per-channel scale and shift) folded into the weights and bias"]
    assert g.node("c1").source == "Conv2d+BatchNorm2d"
    assert g.node("fc").notes == ["'bn4' (a per-channel scale and shift) folded into the weights and bias"]
    bn2 = g.node("bn2")
    assert bn2.weight.shape == (3, 3) and np.count_nonzero(bn2.weight) == 3  # diagonal over the channels
    check_float(lm)
    check_hardware(lm, tmp_path, 0.1)


def test_flatten_costs_nothing_the_linear_rows_are_permuted(tmp_path: Path) -> None:
    """torch flattens (C, H, W), the IR (H, W, C): the Linear after it takes its rows in the IR's order."""
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5), nn.Softmax(dim=1))
    lm = translate(tmp_path, model, (1, 6, 6))
    assert kinds(lm) == ["conv2d", "relu", "flatten", "dense"] and lm.graph.output_activation == "softmax"
    fc = lm.graph.nodes[-1]
    np.testing.assert_array_equal(fc.weight, model[3].weight.detach().double().numpy().T[natural_order((3, 4, 4))])
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)


class ViewedNorm(nn.Module):
    """A batch norm over the channels of a Linear's output viewed as feature maps: not the Linear's columns."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, x: Any) -> Any:
        return self.bn(self.fc(x).view(-1, 2, 4))


def test_batch_norm_of_a_view_is_not_folded(tmp_path: Path) -> None:
    lm = translate(tmp_path, ViewedNorm(), None)
    assert kinds(lm) == ["dense", "reshape", "transpose", "batchnorm"] and not lm.graph.nodes[0].notes
    check_float(lm)


def test_view_of_a_vector_as_feature_maps_is_a_transpose(tmp_path: Path) -> None:
    lm = translate(tmp_path, Decoder(), None)  # the input shape comes from the first Linear
    assert kinds(lm) == ["dense", "reshape", "transpose", "upsample", "conv2d"]
    assert lm.graph.node("fc_reshape_transpose").axes == (1, 2, 0)
    assert lm.graph.output.shape == (6, 6, 2) and lm.output_layout.model_shape == (2, 6, 6)
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)


def test_functional_forward(tmp_path: Path) -> None:
    lm = translate(tmp_path, Functional(), (2, 6, 6))
    assert kinds(lm) == [
        "pad", "conv2d", "relu", "max_pool2d", "upsample", "avg_pool2d", "pad", "crop", "tanh", "add",
        "leaky_relu", "relu6", "hard_tanh", "global_avg_pool2d", "flatten",
    ]  # fmt: skip
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)


# ---- branches ---------------------------------------------------------------------------------


def test_skip_connection_with_add(tmp_path: Path) -> None:
    lm = translate(tmp_path, Residual(), (2, 6, 6))
    g = lm.graph
    assert [(n.name, n.kind, n.inputs) for n in g.nodes] == [
        ("c1", "conv2d", ["input"]), ("relu", "relu", ["c1"]), ("c2", "conv2d", ["relu"]),
        ("add", "add", ["input", "c2"]), ("relu_1", "relu", ["add"]),
    ]  # fmt: skip
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)


def test_maximum_and_minimum_of_branches(tmp_path: Path) -> None:
    lm = translate(tmp_path, MaxMin(), (2, 6))
    merges = [(n.kind, n.inputs) for n in lm.graph.nodes if n.kind in ("maximum", "minimum")]
    assert merges == [("maximum", ["a", "relu"]), ("minimum", ["maximum", "input"]), ("maximum", ["minimum", "b"])]
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)


def test_a_broadcasting_maximum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedLayer) as e:
        translate(tmp_path, MaxBroadcast(), (2, 6))
    assert "compares tensors of shapes (2, 6) and (1, 6); broadcasting is not supported" in str(e.value)


def test_concatenation_of_two_branches(tmp_path: Path) -> None:
    lm = translate(tmp_path, TwoBranches(), (2, 5, 5))
    g = lm.graph
    cats = [n for n in g.nodes if n.kind == "concat"]
    assert [(c.axis, c.shape) for c in cats] == [(-1, (5, 5, 5)), (-1, (58,))]
    assert "transpose" not in kinds(lm)  # both flattened branches' orders are absorbed by the Linear
    check_float(lm)
    check_hardware(lm, tmp_path, 0.05)


@pytest.mark.slow
def test_unet_two_levels_end_to_end(tmp_path: Path) -> None:
    """The U-Net through the command, calibrated with images in the model's own (N, 1, 8, 8) layout."""
    path = tmp_path / "unet.pt"
    torch.save(randomised(UNet()), path)
    calibration = tmp_path / "images.npy"
    np.save(calibration, np.random.default_rng(0).standard_normal((500, 1, 8, 8)))
    out = tmp_path / "out"
    args = [str(path), "--input-shape", "1,8,8", "--calibration", str(calibration), "--simulate", "300"]
    assert main([*args, "-o", str(out), "-q"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["verification"]["bit_exact"] and r["verification"]["mismatches"] == 0
    assert r["model"]["input_shape"] == [8, 8, 1] and r["model"]["framework_input_shape"] == [1, 8, 8]
    assert [row["op"] for row in r["layers"]][:6] == ["conv2d", "relu", "max_pool2d", "conv2d", "relu", "upsample"]
    assert r["quantisation"]["float_model"]["max_abs_error"] < 0.05
    assert "sigmoid" in r["hardware"]["outputs"]["note"]


@pytest.mark.slow
def test_conv1d_autoencoder_with_data_in_the_model_layout(tmp_path: Path) -> None:
    """--data in (N, C, L) with regression targets in the output's (N, C, L): the hardware's errors are the model's
    (the outputs, channels last in the hardware, are compared with the targets in the same order)."""
    model = randomised(autoencoder_1d())
    path = tmp_path / "ae.pt"
    torch.save(model, path)
    lm = load_model(path, input_shape=(2, 16))
    assert kinds(lm) == ["conv1d", "relu", "max_pool1d", "conv1d", "relu", "max_pool1d", "upsample", "conv1d", "relu",
                         "upsample", "conv1d"]  # fmt: skip
    assert lm.graph.output.shape == (16, 2)
    check_float(lm)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 2, 16))
    with torch.no_grad():
        y = model.double()(torch.from_numpy(x)).numpy() + 0.1 * rng.standard_normal((300, 2, 16))
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    out = tmp_path / "out"
    assert (
        main([str(path), "--input-shape", "2,16", "--data", str(data), "-o", str(out), "-q", "--simulate", "200"]) == 0
    )
    r = json.loads((out / "report.json").read_text())
    assert r["verification"]["bit_exact"]
    acc = r["accuracy"]
    assert acc["metric"] == "mse" and acc["float"] == pytest.approx(0.01, rel=0.3)
    assert abs(acc["hardware"] - acc["float"]) < 0.002  # the hardware's outputs line up with the targets


# ---- TorchScript ------------------------------------------------------------------------------


def test_torchscript_conv_chain(tmp_path: Path) -> None:
    model = randomised(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 3)))
    path = tmp_path / "scripted.ts"
    torch.jit.script(model).save(str(path))
    lm = load_model(path, input_shape=(1, 6, 6))
    assert kinds(lm) == ["conv2d", "relu", "max_pool2d", "flatten", "dense"]
    check_float(lm)
