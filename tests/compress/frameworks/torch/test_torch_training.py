"""PyTorch pruning and Brevitas quantisation-aware fine-tuning on real data (scikit-learn's digits, offline)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.frameworks.torch import from_module
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, default_inputs, quantise

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
nn = torch.nn
F = torch.nn.functional

from mlinfn_compress.compress.frameworks.torch.training import (  # noqa: E402
    evaluate,
    logits,
    prune_finetune,
    qat_finetune,
    schedule,
)

SPARSITY = 0.7
PRUNE_EPOCHS = 10
QAT_EPOCHS = 8


@pytest.fixture(scope="module")
def digits() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(x / 16.0, y, test_size=0.25, stratify=y, random_state=0)
    return Dataset(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), "classification", 10)


@pytest.fixture(scope="module")
def float_model(digits: Dataset) -> tuple[Any, float]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10), nn.Softmax(dim=1)
    )
    x, y = torch.tensor(digits.x_train, dtype=torch.float32), torch.tensor(digits.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        for idx in torch.randperm(len(x)).split(32):
            loss = F.cross_entropy(model[:-1](x[idx]), y[idx])  # on the logits
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    accuracy = evaluate(model, digits)
    assert accuracy > 0.94
    return model, accuracy


@pytest.fixture(scope="module")
def pruned(digits: Dataset, float_model: tuple[Any, float]) -> tuple[Any, dict[str, np.ndarray], list[str]]:
    torch.manual_seed(1)
    lines: list[str] = []
    model, masks = prune_finetune(float_model[0], digits, SPARSITY, "layer", PRUNE_EPOCHS, lines.append)
    return model, masks, lines


def weights(model: Any) -> dict[str, np.ndarray]:
    return {n: m.weight.detach().numpy() for n, m in model.named_modules() if isinstance(m, nn.Linear)}


def test_schedule_rises_polynomially_over_two_thirds() -> None:
    s = schedule(0.7, 9)
    assert s[5:] == [0.7] * 4 and all(a < b for a, b in zip(s[:5], s[1:6], strict=True))
    assert s[0] == pytest.approx(0.7 * (1 - (5 / 6) ** 3))
    assert schedule(0.5, 1) == [0.5]


def test_prune_finetune_layer_scope(
    digits: Dataset, float_model: tuple[Any, float], pruned: tuple[Any, dict[str, np.ndarray], list[str]]
) -> None:
    model, masks, lines = pruned
    ws = weights(model)
    assert set(ws) == set(masks) == {"0", "2", "4"}
    for name, w in ws.items():
        assert np.mean(w == 0) >= SPARSITY, name
        assert masks[name].shape == w.shape and (masks[name] == (w != 0)).all()
    assert evaluate(model, digits) >= float_model[1] - 0.03
    assert len(lines) == PRUNE_EPOCHS
    assert lines[0].startswith(f"prune epoch 1/{PRUNE_EPOCHS}: loss ") and ", accuracy 0." in lines[0]
    assert all(np.mean(w == 0) < 0.1 for w in weights(float_model[0]).values())  # the input model is untouched
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "ReLU", "Linear", "Softmax"]
    assert not any("_orig" in k or "_mask" in k for k in model.state_dict())  # pruning made permanent


def test_prune_finetune_global_scope(digits: Dataset, float_model: tuple[Any, float]) -> None:
    torch.manual_seed(1)
    model, masks = prune_finetune(float_model[0], digits, SPARSITY, "global", PRUNE_EPOCHS, None)
    ws = weights(model)
    zeros = sum(int(np.sum(w == 0)) for w in ws.values())
    assert zeros / sum(w.size for w in ws.values()) >= SPARSITY
    assert len({round(float(np.mean(w == 0)), 3) for w in ws.values()}) == 3  # layers pruned differently
    assert sum(int(np.sum(~m)) for m in masks.values()) == zeros
    assert evaluate(model, digits) >= float_model[1] - 0.03


def test_functional_softmax_is_left_out_of_training(digits: Dataset) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.drop, self.b = nn.Linear(64, 16), nn.Dropout(0.1), nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            return torch.softmax(self.b(self.drop(F.relu(self.a(x)))), dim=-1)

    torch.manual_seed(0)
    lines: list[str] = []
    model, masks = prune_finetune(Net(), digits, 0.5, "layer", 3, lines.append)
    losses = [float(line.split("loss ")[1].split(",")[0]) for line in lines]
    assert set(masks) == {"a", "b"} and losses[2] < losses[0] - 0.1
    assert np.abs(logits(model, digits.x_test[:5]).sum(axis=1) - 1).min() > 0.1  # logits, not probabilities
    q = qat_finetune(model, digits, masks, 8, 8, 1, None)
    assert [type(m).__name__ for m in q] == ["QuantIdentity", "QuantLinear", "QuantReLU", "QuantLinear", "Softmax"]


@pytest.fixture(scope="module")
def qat(digits: Dataset, pruned: tuple[Any, dict[str, np.ndarray], list[str]]) -> tuple[Any, list[str]]:
    torch.manual_seed(2)
    lines: list[str] = []
    model = qat_finetune(pruned[0], digits, pruned[1], 6, 6, QAT_EPOCHS, lines.append)
    return model, lines


@pytest.mark.slow
def test_qat_keeps_masks_and_accuracy(
    digits: Dataset,
    float_model: tuple[Any, float],
    pruned: tuple[Any, dict[str, np.ndarray], list[str]],
    qat: tuple[Any, list[str]],
) -> None:
    model, lines = qat
    masks = pruned[1]
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["QuantIdentity", "QuantLinear", "QuantReLU", "QuantLinear", "QuantReLU", "QuantLinear", "Softmax"]
    for name, mask in masks.items():
        qw = getattr(model, name).quant_weight()
        assert int(qw.bit_width) == 6
        assert (qw.value.detach().numpy()[~mask] == 0).all(), name
        assert (qw.value.detach().numpy()[mask] != 0).mean() > 0.5, name  # the weights kept are mostly used
    for m in model:
        if type(m).__name__ in ("QuantIdentity", "QuantReLU"):
            assert int(m.act_quant.bit_width()) == 6
    assert evaluate(model, digits) >= float_model[1] - 0.03
    assert len(lines) == QAT_EPOCHS and lines[-1].startswith(f"qat epoch {QAT_EPOCHS}/{QAT_EPOCHS}: loss ")


def test_qat_model_reads_back_bit_exact(digits: Dataset, qat: tuple[Any, list[str]]) -> None:
    """The frontend reads the fine-tuned Brevitas model exactly: what was trained is what is verified."""
    lm = from_module(copy.deepcopy(qat[0]), Path("qat.pt"))
    g = lm.graph
    assert g.framework == "brevitas" and lm.reference_exact and g.output_activation == "softmax"
    quantise(g, QuantConfig(weight_bits=6, act_bits=6), default_inputs(4096, g.input_size))
    assert g.input_type is not None and g.output.result_type is not None
    assert [n.weight_type.width for n in g.nodes if n.kind == "dense"] == [6, 6, 6]  # type: ignore[union-attr]
    assert all(n.result_type.width == 6 for n in g.nodes if n.kind != "dense")  # type: ignore[union-attr]
    trained = copy.deepcopy(qat[0]).double()
    for x in (digits.x_test, default_inputs(1000, g.input_size, seed=5)):
        x_int = quantize(x, g.input_type)
        x_q = to_float(x_int, g.input_type.frac)
        gold = to_float(golden.run(g, x_int)["logits"], g.output.result_type.frac)
        assert (lm.reference(x_q) == gold).all()
        assert (logits(trained, x_q) == gold).all()
    argmax = golden.run(g, quantize(digits.x_test, g.input_type))["argmax"]
    assert np.mean(argmax == digits.y_test) == pytest.approx(evaluate(qat[0], digits), abs=0.01)
    assert all(n.sparsity() >= SPARSITY for n in g.nodes if n.kind == "dense")


def test_regression_runs_with_mse(digits: Dataset) -> None:
    data = Dataset(
        digits.x_train, digits.y_train.reshape(-1, 1) / 9.0, digits.x_test, digits.y_test.reshape(-1, 1) / 9.0,
        "regression", 0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 1))
    lines: list[str] = []
    pruned, masks = prune_finetune(model, data, 0.5, "layer", 3, lines.append)
    assert "mse" in lines[-1] and all(np.mean(~m) >= 0.5 for m in masks.values())
    q = qat_finetune(pruned, data, masks, 8, 8, 3, None)
    assert 0.0 < evaluate(q, data) < 0.2


def test_bad_arguments(digits: Dataset, float_model: tuple[Any, float]) -> None:
    model = float_model[0]
    with pytest.raises(ValueError, match="scope"):
        prune_finetune(model, digits, 0.5, "channel", 1)
    with pytest.raises(ValueError, match="sparsity"):
        prune_finetune(model, digits, 1.0, "layer", 1)
    with pytest.raises(ValueError, match=r"mask for '2' has shape \(3, 3\)"):
        qat_finetune(model, digits, {"2": np.ones((3, 3), dtype=bool)}, 6, 6, 1)
    tanh = nn.Sequential(nn.Linear(64, 10), nn.Tanh())
    with pytest.raises(ValueError, match=r"layer '1' \(Tanh\) cannot be quantisation-aware trained; a chain of Linear"):
        qat_finetune(tanh, digits, None, 6, 6, 1)
