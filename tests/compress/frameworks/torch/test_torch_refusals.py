"""What the PyTorch frontend refuses, and how: the message names the file, the layer and what to do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlinfn_compress.cli import main
from mlinfn_compress.compress.frameworks import load_model
from mlinfn_compress.errors import UnsupportedLayer, UserError

torch = pytest.importorskip("torch")
nn = torch.nn


class ScriptResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def test_torchscript_branches_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "residual.ts"
    torch.jit.script(ScriptResidual()).save(str(path))
    with pytest.raises(UnsupportedLayer, match=r"residual\.ts: TorchScript operation .* save the nn\.Module itself"):
        load_model(path, input_shape=(2, 6, 6))


# ---- input shapes ------------------------------------------------------------------


def test_input_shape_from_the_model_or_the_user(tmp_path: Path) -> None:
    path = tmp_path / "conv.pt"
    torch.save(nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(12, 2)), path)
    with pytest.raises(UserError, match=r"conv\.pt: the model's input shape cannot be read from the model \(its first "
                       r"layer is Conv1d '0', which takes inputs of any size\); pass --input-shape"):  # fmt: skip
        load_model(path)
    with pytest.raises(
        UserError, match=r"conv\.pt: the model does not run on an input of shape \(1, 9\) .*--input-shape"
    ):
        load_model(path, input_shape=(1, 9))
    assert load_model(path, input_shape=(1, 8)).graph.input_shape == (8, 1)
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten(), nn.Linear(12, 2))
    model.example_input_array = torch.zeros(1, 1, 8)  # the PyTorch Lightning convention
    torch.save(model, path)
    assert load_model(path).graph.input_shape == (8, 1)


REFUSED: list[tuple[str, Callable[[], Any], tuple[int, ...], str]] = [
    ("groups", lambda: nn.Conv2d(2, 2, 3, groups=2), (2, 5, 5), r"module '0' \(Conv2d\) has groups=2"),
    ("dilation", lambda: nn.Conv1d(2, 2, 3, dilation=2), (2, 9), r"dilation=\(2,\); only groups=1 and dilation=1"),
    ("reflect", lambda: nn.Conv1d(1, 1, 3, padding=1, padding_mode="reflect"), (1, 6), r"padding_mode='reflect'"),
    ("ceil_mode", lambda: nn.MaxPool2d(2, ceil_mode=True), (1, 5, 5), r"uses ceil_mode=True"),
    ("bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (1, 3, 3), r"mode 'bilinear'"),
    ("fraction", lambda: nn.Upsample(scale_factor=1.5), (1, 4), r"only integer up-sampling factors"),
    ("pad_value", lambda: nn.ConstantPad1d(1, 0.5), (1, 4), r"value 0\.5; only zero padding"),
    ("adaptive", lambda: nn.AdaptiveAvgPool1d(3), (1, 8), r"pools \(8,\) to \(3,\)"),
    ("layernorm", lambda: nn.Sequential(nn.Conv1d(1, 1, 1), nn.LayerNorm(4)), (1, 4), r"'1' \(LayerNorm\) is not"),
    ("softmax", lambda: nn.Sequential(nn.Softmax(dim=1), nn.Linear(4, 2)), (4,), r"only supported as the model's last"),
    ("no_stats", lambda: nn.BatchNorm1d(4, track_running_stats=False), (4,), r"track_running_stats=False"),
]


@pytest.mark.parametrize("name,factory,shape,message", REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals_name_the_layer(name: str, factory: Callable[[], Any], shape: tuple[int, ...], message: str,
                                 tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / f"{name}.pt"
    torch.save(factory().eval(), path)
    with pytest.raises(UnsupportedLayer, match=rf"{name}\.pt: .*{message}"):
        load_model(path, input_shape=shape)


class Slices(nn.Module):
    def forward(self, x: Any) -> Any:
        return torch.relu(x[:, :2])


class AddsConstant(nn.Module):
    def forward(self, x: Any) -> Any:
        return torch.relu(x) + 1.0


class CatBatch(nn.Module):
    def forward(self, x: Any) -> Any:
        return torch.cat([x, torch.relu(x)], dim=0)


@pytest.mark.parametrize("model,message", [
    (AddsConstant(), r"operation 'add' \(add\) adds a constant"),
    (CatBatch(), r"operation 'cat' .* batch axis"),
    (Slices(), r"operation 'getitem' \(getitem\) is not supported"),
])  # fmt: skip
def test_operations_that_cannot_be_translated(model: Any, message: str, tmp_path: Path) -> None:
    path = tmp_path / "op.pt"
    torch.save(model, path)
    with pytest.raises(UnsupportedLayer, match=message):
        load_model(path, input_shape=(3,))


def test_command_exits_2_naming_the_module(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gru.pt"
    torch.save(nn.Sequential(nn.Linear(4, 4), nn.GRU(4, 2)), path)
    out = tmp_path / "out"
    assert main([str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "gru.pt: module '1' (GRU) is not supported; supported: Linear" in err and not out.exists()
    with pytest.raises(SystemExit) as exc:
        main([str(path), "--input-shape", "1,0", "-o", str(out)])
    assert exc.value.code == 2
    assert "--input-shape: must be 1 to 3 positive integers separated by commas, got '1,0'" in capsys.readouterr().err
