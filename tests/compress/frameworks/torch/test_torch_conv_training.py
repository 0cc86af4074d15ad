"""Pruning and Brevitas quantisation-aware fine-tuning of convolutional PyTorch models (scikit-learn's digits)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlinfn_compress.cli import main
from mlinfn_compress.compress.fixed import quantize, to_float
from mlinfn_compress.compress.flow.data import Dataset
from mlinfn_compress.compress.ir import golden
from mlinfn_compress.compress.passes.quantise import QuantConfig, quantise

torch = pytest.importorskip("torch")
pytest.importorskip("brevitas")
nn = torch.nn
F = torch.nn.functional

from mlinfn_compress.compress.frameworks.torch import from_module  # noqa: E402
from mlinfn_compress.compress.frameworks.torch.training import evaluate, prune_finetune, qat_finetune  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small models train faster on one thread than on cores shared with other jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class SkipNet(nn.Module):
    """A CNN with a skip connection: pruning takes any graph the frontend reads."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 10)

    def forward(self, x: Any) -> Any:
        y = F.relu(self.c1(x))
        y = F.max_pool2d(F.relu(y + self.c2(y)), 2)
        return self.fc(y.flatten(1))


def cnn() -> Any:
    """Conv, batch norm, relu, pool, conv, relu, flatten, dense, softmax: what QAT rebuilds in Brevitas."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(32, 10), nn.Softmax(dim=1),
    )  # fmt: skip


@pytest.fixture(scope="module")
def digits() -> Dataset:
    """The digits as images (N, 1, 8, 8): the model's own layout."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).reshape(-1, 1, 8, 8)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    return Dataset(xtr, ytr.astype(np.int64), xte, yte.astype(np.int64), "classification", 10)


def trained(model: Any, data: Dataset, epochs: int = 12) -> Any:
    """``model`` trained in float on the outputs before its softmax."""
    torch.manual_seed(0)
    run = model[:-1] if isinstance(model, nn.Sequential) else model
    x, y = torch.tensor(data.x_train, dtype=torch.float32), torch.tensor(data.y_train)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            F.cross_entropy(run(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def float_cnn(digits: Dataset) -> Any:
    model = trained(cnn(), digits)
    assert evaluate(model, digits) > 0.9
    return model


def test_prune_a_graph_with_a_skip_connection(digits: Dataset) -> None:
    torch.manual_seed(0)
    lines: list[str] = []
    model, masks = prune_finetune(trained(SkipNet(), digits, 6), digits, 0.5, "layer", 3, lines.append)
    assert set(masks) == {"c1", "c2", "fc"} and masks["c2"].shape == (4, 4, 3, 3)
    for name, m in (("c1", model.c1), ("c2", model.c2), ("fc", model.fc)):
        w = m.weight.detach().numpy()
        assert np.mean(w == 0) >= 0.5 and (masks[name] == (w != 0)).all(), name
    assert evaluate(model, digits) > 0.9 and lines[-1].startswith("prune epoch 3/3")
    g = from_module(model, Path("skip.pt"), (1, 8, 8)).graph
    assert [n.kind for n in g.nodes] == ["conv2d", "relu", "conv2d", "add", "relu", "max_pool2d", "flatten", "dense"]
    assert all(np.mean(n.weight == 0) >= 0.5 for n in g.nodes if n.kind in ("conv2d", "dense"))


@pytest.mark.slow
def test_qat_of_a_cnn_folds_the_batch_norm_and_reads_back_bit_exact(digits: Dataset, float_cnn: Any) -> None:
    torch.manual_seed(1)
    model, masks = prune_finetune(float_cnn, digits, 0.5, "layer", 3)
    q = qat_finetune(model, digits, masks, 6, 6, 3)
    assert [type(m).__name__ for m in q] == [
        "QuantIdentity", "QuantConv2d", "QuantReLU", "MaxPool2d", "QuantConv2d", "QuantReLU", "Flatten", "QuantLinear",
        "Softmax",
    ]  # fmt: skip
    for name in ("0", "4", "7"):
        qw = getattr(q, name).quant_weight()
        assert int(qw.bit_width) == 6 and (qw.value.detach().numpy()[~masks[name]] == 0).all(), name
    assert evaluate(q, digits) > 0.85
    lm = from_module(q, Path("cnn.pt"), (1, 8, 8))
    g = lm.graph
    assert g.framework == "brevitas" and lm.reference_exact
    assert [n.kind for n in g.nodes] == ["cast", "conv2d", "relu", "max_pool2d", "conv2d", "relu", "flatten", "dense"]
    quantise(g, QuantConfig(weight_bits=6, act_bits=6), lm.ir_inputs(digits.x_train).reshape(-1, 8, 8, 1))
    x_int = quantize(lm.ir_inputs(digits.x_test), g.input_type)
    gold = golden.run(g, x_int)
    assert (
        lm.reference(to_float(x_int, g.input_type.frac)) == to_float(gold["logits"], g.output.result_type.frac)
    ).all()
    assert np.mean(gold["argmax"] == digits.y_test) == pytest.approx(evaluate(q, digits), abs=0.01)


def test_qat_rebuilds_chains_only(digits: Dataset) -> None:
    with pytest.raises(ValueError, match=r"'add' \(add\) does not continue a chain of layers; .*pruning alone takes"):
        qat_finetune(SkipNet(), digits, None, 6, 6, 1)


@pytest.mark.slow
def test_digits_cnn_pruned_and_quantisation_aware_trained_through_the_command(
    digits: Dataset, float_cnn: Any, tmp_path: Path
) -> None:
    """The whole path with --data in the model's (N, 1, 8, 8) layout: prune, QAT, VHDL bit-exact with Brevitas."""
    path = tmp_path / "cnn.pt"
    torch.save(float_cnn, path)
    data = tmp_path / "digits.npz"
    np.savez(data, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test, y_test=digits.y_test)
    out = tmp_path / "out"
    args = ["--data", str(data), "--prune", "0.5", "--qat", "--bits", "6", "--epochs", "2", "--simulate", "300"]
    assert main([str(path), *args, "--input-shape", "1,8,8", "-o", str(out), "-q"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["verification"]["bit_exact"] and "brevitas" in r["verification"]["against"]
    assert r["quantisation"]["chosen_post_training"] == []
    acc = r["accuracy"]
    assert acc["float"] > 0.9 and acc["hardware"] == acc["compressed"] and acc["hardware"] > acc["float"] - 0.08
    assert r["compression"]["qat"]["framework"] == "brevitas"
