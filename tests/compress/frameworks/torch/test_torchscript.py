"""TorchScript files as users save them: ``torch.jit.trace`` (the more common way) and ``torch.jit.script``,
nested modules and functional relu in ``forward`` included; both forms read into the same IR."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from conftest import report
from torch import nn

import mlinfn_compress as mc
from mlinfn_compress.cli import main
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.errors import UnsupportedLayer


class ReluBlock(nn.Module):
    """A module of the user's with a functional relu in its forward."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(x))


class ActBlock(nn.Module):
    """A module of the user's: a layer, then an activation module."""

    def __init__(self, n_in: int, n_out: int, act: str) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)
        self.act = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "none": nn.Identity()}[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.fc(x))


def Block(n_in: int, n_out: int, act: str) -> nn.Module:  # noqa: N802 - builds one of the two classes
    return ReluBlock(n_in, n_out) if act == "relu" else ActBlock(n_in, n_out, act)


class Nested(nn.Module):
    """Blocks inside a Sequential inside a module, a functional relu and a dropout between them."""

    def __init__(self, sizes: list[int], acts: list[str]) -> None:
        super().__init__()
        self.first = nn.Linear(sizes[0], sizes[1])
        self.body = nn.Sequential(
            *[Block(a, b, act) for a, b, act in zip(sizes[1:-2], sizes[2:-1], acts, strict=False)], nn.Dropout(0.1)
        )
        self.head = Block(sizes[-2], sizes[-1], "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.relu(self.first(x))))


def random_nested(seed: int) -> tuple[nn.Module, int]:
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(3, 6))
    sizes = [int(v) for v in rng.integers(2, 9, size=depth + 1)]
    acts = [str(rng.choice(["relu", "tanh", "sigmoid", "none"])) for _ in range(depth)]
    torch.manual_seed(seed)
    return Nested(sizes, acts).eval(), sizes[0]


def save(model: nn.Module, n_in: int, form: str, path: Path) -> Path:
    if form == "trace":
        torch.jit.trace(model, torch.randn(3, n_in)).save(str(path))
    else:
        torch.jit.script(model).save(str(path))
    return path


def test_the_traced_sequential_of_the_report_converts_bit_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    path = tmp_path / "traced.pt"
    torch.jit.trace(model, torch.randn(4, 5)).save(str(path))
    assert main([str(path), "-o", str(tmp_path / "out"), "--simulate", "100", "-q"]) == 0
    assert "BIT-EXACT" in capsys.readouterr().out
    layers = report(tmp_path / "out")["layers"]
    assert [(row["op"], row["in_shape"], row["out_shape"]) for row in layers] == [
        ("dense", [5], [8]), ("relu", [8], [8]), ("dense", [8], [3])
    ]  # fmt: skip


@pytest.mark.parametrize("seed", range(8))
def test_traced_and_scripted_files_read_into_one_ir(tmp_path: Path, seed: int) -> None:
    model, n_in = random_nested(seed)
    traced = load_model(save(model, n_in, "trace", tmp_path / "t.pt"))
    scripted = load_model(save(model, n_in, "script", tmp_path / "s.pt"))
    for a, b in zip(traced.graph.nodes, scripted.graph.nodes, strict=True):
        assert (a.kind, a.name, a.shape) == (b.kind, b.name, b.shape)
        if hasattr(a, "weight"):
            np.testing.assert_array_equal(a.weight, b.weight)
            np.testing.assert_array_equal(a.bias, b.bias)
    x = np.random.default_rng(seed).standard_normal((16, n_in))
    with torch.no_grad():
        want = model.double()(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(traced.reference(x), want)
    np.testing.assert_array_equal(scripted.reference(x), want)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["trace", "script"])
def test_random_nested_files_convert_bit_exact(tmp_path: Path, form: str) -> None:
    for seed in range(100, 106):
        model, n_in = random_nested(seed)
        path = save(model, n_in, form, tmp_path / f"{form}{seed}.pt")
        run = mc.compress(path, tmp_path / f"out{seed}", simulate=64, quiet=True)
        assert run.passed, (seed, run.summary())


def test_traced_convolutions_and_pooling_keep_their_arguments(tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv1d(2, 4, 3, stride=2, padding=1), nn.BatchNorm1d(4), nn.LeakyReLU(0.125), nn.MaxPool1d(2),
        nn.Conv1d(4, 3, 3, padding="same", bias=False), nn.Hardtanh(-0.5, 2.0), nn.AvgPool1d(2), nn.Flatten(),
        nn.Linear(6, 2),
    ).eval()  # fmt: skip
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 2.0)
    path = tmp_path / "conv.pt"
    torch.jit.trace(model, torch.randn(3, 2, 16)).save(str(path))
    scripted = tmp_path / "conv_s.pt"
    torch.jit.script(model).save(str(scripted))
    a, b = load_model(path, input_shape=(2, 16)), load_model(scripted, input_shape=(2, 16))
    assert [(n.kind, n.shape) for n in a.graph.nodes] == [(n.kind, n.shape) for n in b.graph.nodes]
    x = np.random.default_rng(0).standard_normal((8, 16, 2))  # channels last, as the IR takes it
    np.testing.assert_array_equal(a.reference(x), b.reference(x))


def test_a_traced_layer_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv1d(2, 2, 3, padding=1, padding_mode="circular"), nn.Flatten(), nn.Linear(16, 2))
    path = tmp_path / "circular.pt"
    torch.jit.trace(model.eval(), torch.randn(2, 2, 8)).save(str(path))
    with pytest.raises(UnsupportedLayer, match=r"circular\.pt: the traced TorchScript layer '0' \(Conv1d\) makes"):
        load_model(path, input_shape=(2, 8))
