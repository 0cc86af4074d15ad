"""One-shot magnitude pruning and the checks on --data files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlinfn_compress.compress.flow.data import load_dataset
from mlinfn_compress.compress.passes.prune import magnitude_masks
from mlinfn_compress.errors import UserError


def test_layer_scope_prunes_each_layer_exactly() -> None:
    rng = np.random.default_rng(0)
    w = {"a": rng.normal(size=(10, 10)), "b": rng.normal(size=(7, 3)) * 100}
    masks = magnitude_masks(w, 0.7, "layer")
    assert (~masks["a"]).sum() == 70 and (~masks["b"]).sum() == round(0.7 * 21)
    # The weights kept are the largest ones.
    assert np.abs(w["a"][masks["a"]]).min() >= np.abs(w["a"][~masks["a"]]).max()


def test_global_scope_uses_one_threshold() -> None:
    w = {"small": np.full((4, 4), 0.1), "large": np.arange(1.0, 17.0).reshape(4, 4)}
    masks = magnitude_masks(w, 0.5, "global")
    assert not masks["small"].any() and masks["large"].sum() == 16
    masks = magnitude_masks(w, 0.75, "global")
    assert masks["large"].sum() == 8 and np.abs(w["large"][masks["large"]]).min() == 9.0


@pytest.mark.parametrize("bad", [1.2, 1.0, -0.1])
def test_prune_fraction_out_of_range(bad: float) -> None:
    with pytest.raises(UserError, match=f"--prune must be at least 0 and below 1, got {bad}"):
        magnitude_masks({"a": np.ones((2, 2))}, bad, "layer")


def save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


@pytest.fixture
def good() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "x_train": rng.normal(size=(20, 4)),
        "y_train": rng.integers(0, 3, 20),
        "x_test": rng.normal(size=(8, 4)),
        "y_test": rng.integers(0, 3, 8),
    }


def test_class_indices_and_one_hot(tmp_path: Path, good: dict[str, np.ndarray]) -> None:
    d = load_dataset(save(tmp_path / "d.npz", **good), 4, 3)
    assert d.task == "classification" and d.metric == "accuracy" and d.n_classes == 3
    one_hot = dict(good, y_test=np.eye(3)[good["y_test"]])
    d2 = load_dataset(save(tmp_path / "o.npz", **one_hot), 4, 3)
    assert d2.y_test.tolist() == good["y_test"].tolist()
    assert d2.score(np.eye(3)[good["y_test"]], d2.y_test) == 1.0


def test_regression_targets(tmp_path: Path, good: dict[str, np.ndarray]) -> None:
    reg = dict(good, y_train=np.linspace(0, 1, 20), y_test=np.linspace(0, 1, 8))
    d = load_dataset(save(tmp_path / "r.npz", **reg), 4, 1)
    assert d.task == "regression" and d.metric == "mse"
    assert d.score(np.linspace(0, 1, 8)[:, None] + 0.5, d.y_test) == pytest.approx(0.25)


def test_missing_key(tmp_path: Path, good: dict[str, np.ndarray]) -> None:
    path = save(tmp_path / "m.npz", **{k: v for k, v in good.items() if k != "y_test"})
    with pytest.raises(UserError, match=r"m.npz: missing array\(s\) y_test; --data needs x_train, y_train"):
        load_dataset(path, 4, 3)


def test_wrong_feature_width(tmp_path: Path, good: dict[str, np.ndarray]) -> None:
    path = save(tmp_path / "w.npz", **dict(good, x_test=np.zeros((8, 5))))
    with pytest.raises(UserError, match=r"w.npz: x_test has shape \(8, 5\), but the model expects \(samples, 4\)"):
        load_dataset(path, 4, 3)


def test_labels_of_wrong_length(tmp_path: Path, good: dict[str, np.ndarray]) -> None:
    path = save(tmp_path / "l.npz", **dict(good, y_train=good["y_train"][:19]))
    with pytest.raises(UserError, match="l.npz: y_train has 19 labels for 20 samples"):
        load_dataset(path, 4, 3)


def test_class_index_out_of_range(tmp_path: Path, good: dict[str, np.ndarray]) -> None:
    path = save(tmp_path / "c.npz", **dict(good, y_test=np.full(8, 3)))
    with pytest.raises(UserError, match=r"c.npz: y_test has class indices outside 0..2"):
        load_dataset(path, 4, 3)
