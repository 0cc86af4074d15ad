"""Labelled data for fine-tuning and accuracy (--data FILE.npz)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlinfn_compress.errors import UserError

KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class Dataset:
    """Training and test arrays; labels as class indices (classification) or targets (regression)."""

    x_train: np.ndarray  # (N, *input_shape) float64, the model's own input shape
    y_train: np.ndarray  # (N,) int64 class indices, or (N, outputs) float64 targets
    x_test: np.ndarray
    y_test: np.ndarray
    task: str  # "classification" | "regression"
    n_classes: int  # 0 for regression

    @property
    def metric(self) -> str:
        return "accuracy" if self.task == "classification" else "mse"

    def score(self, outputs: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of arg-max outputs, or mean squared error, against labels ``y``."""
        out = np.asarray(outputs, dtype=np.float64)
        if self.task == "classification":
            return float(np.mean(np.argmax(out, axis=1) == y))
        return float(np.mean((out.reshape(y.shape) - y) ** 2))

    def flat(self, x: np.ndarray) -> np.ndarray:
        """Samples as flat rows (N, features), in the IR's row-major, channels-last order."""
        return np.asarray(x).reshape(len(x), -1)


def _labels(y: np.ndarray, n: int, name: str, path: Path, n_outputs: int) -> tuple[np.ndarray, str]:
    if len(y) != n:
        raise UserError(f"{path}: {name} has {len(y)} labels for {n} samples")
    if y.ndim == 2 and y.shape[1] == n_outputs and n_outputs > 1 and np.all((y == 0) | (y == 1)):
        if not np.all(y.sum(axis=1) == 1):
            raise UserError(f"{path}: {name} looks one-hot but some rows do not have exactly one 1")
        return np.argmax(y, axis=1).astype(np.int64), "classification"
    if y.ndim == 1 and y.dtype.kind in "iu" or (y.ndim == 1 and np.all(y == np.round(y)) and n_outputs > 1):
        if n_outputs > 1 and (y.min() < 0 or y.max() >= n_outputs):
            raise UserError(f"{path}: {name} has class indices outside 0..{n_outputs - 1}")
        return y.astype(np.int64), "classification"
    return y.astype(np.float64).reshape(n, -1), "regression"  # targets of any shape, as flat rows


def load_dataset(path: Path, shape: tuple[int, ...] | int, n_outputs: int) -> Dataset:
    """Read and check an .npz with x_train, y_train, x_test, y_test for a model's input shape and outputs.

    Inputs may come in the model's input shape (samples, *shape) or flat (samples, features);
    regression targets may have the output's shape and are kept flat (samples, outputs).
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n_features = int(np.prod(shape))
    if not path.exists():
        raise UserError(f"{path}: no such data file")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise UserError(f"{path}: missing array(s) {', '.join(missing)}; --data needs {', '.join(KEYS)}")
            arrays = {k: np.asarray(f[k]) for k in KEYS}
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the data file as .npz ({e})") from e
    for k in ("x_train", "x_test"):
        x = arrays[k]
        if x.ndim == 2 and x.shape[1] == n_features:
            x = arrays[k] = x.reshape(len(x), *shape)
        if x.shape[1:] != shape:
            want = ", ".join(map(str, shape))
            raise UserError(f"{path}: {k} has shape {x.shape}, but the model expects (samples, {want})")
        if x.dtype.kind not in "fiu" or not np.all(np.isfinite(x)):
            raise UserError(f"{path}: {k} must hold finite numbers")
    y_train, task_train = _labels(arrays["y_train"], len(arrays["x_train"]), "y_train", path, n_outputs)
    y_test, task_test = _labels(arrays["y_test"], len(arrays["x_test"]), "y_test", path, n_outputs)
    if task_train != task_test:
        raise UserError(f"{path}: y_train and y_test are not the same kind of labels")
    if task_train == "regression" and y_train.shape[1] != n_outputs:
        raise UserError(f"{path}: targets have {y_train.shape[1]} columns, the model has {n_outputs} outputs")
    return Dataset(
        x_train=arrays["x_train"].astype(np.float64),
        y_train=y_train,
        x_test=arrays["x_test"].astype(np.float64),
        y_test=y_test,
        task=task_train,
        n_classes=n_outputs if task_train == "classification" else 0,
    )
