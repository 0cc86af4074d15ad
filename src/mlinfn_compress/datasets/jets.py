"""The hls4ml LHC jet-tagging data set, or a documented synthetic stand-in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

JET_FEATURES = (
    "zlogz", "c1_b0_mmdt", "c1_b1_mmdt", "c1_b2_mmdt", "c2_b1_mmdt", "c2_b2_mmdt", "d2_b1_mmdt", "d2_b2_mmdt",
    "d2_a1_b1_mmdt", "d2_a1_b2_mmdt", "m2_b1_mmdt", "m2_b2_mmdt", "n2_b1_mmdt", "n2_b2_mmdt", "mass_mmdt",
    "multiplicity",
)  # fmt: skip
JET_CLASSES = ("g", "q", "w", "z", "t")
OPENML_NAME = "hls4ml_lhc_jets_hlf"


@dataclass
class JetData:
    """Standardised features (N, 16) and class indices (N,), split into training and test sets."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where the data came from, to print in a tutorial

    def save(self, path: Path) -> Path:
        """Write the arrays as the .npz that ``mlinfn-compress --data`` reads."""
        np.savez(path, x_train=self.x_train, y_train=self.y_train, x_test=self.x_test, y_test=self.y_test)
        return path


def offline() -> bool:
    """True when the tutorials must not touch the network (``MLINFN_OFFLINE=1``, as in CI)."""
    return os.environ.get("MLINFN_OFFLINE", "") not in ("", "0", "false", "no")


def synthetic_jets(n: int = 20_000, seed: int = 0, test_fraction: float = 0.25) -> JetData:
    """A synthetic stand-in for the jet data: 16 standardised features, 5 classes, about 75 % separable.

    Each class is a Gaussian in a 6-dimensional latent space (class means
    drawn once, with seed 12345, so the classes are the same for every
    ``seed``); the 16 features are a fixed random linear mixture of the
    latent values plus noise, squashed by ``tanh`` on two features and
    standardised to zero mean and unit variance.  It has the jet data's
    shape and roughly its difficulty for a 16-64-32-32-5 network, not its
    physics.
    """
    shape_rng = np.random.default_rng(12345)
    means = shape_rng.normal(0.0, 0.75, (len(JET_CLASSES), 6))
    scales = shape_rng.uniform(0.6, 1.2, (len(JET_CLASSES), 6))
    mixing = shape_rng.normal(0.0, 1.0, (6, len(JET_FEATURES)))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(JET_CLASSES), n)
    latent = means[y] + rng.normal(0.0, 1.0, (n, 6)) * scales[y]
    x = latent @ mixing + rng.normal(0.0, 0.5, (n, len(JET_FEATURES)))
    x[:, [0, 15]] = np.tanh(x[:, [0, 15]] / 3.0)
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    return _split(x, y, test_fraction, "synthetic stand-in (mlinfn_compress.datasets.synthetic_jets)")


def jets(n: int | None = None, seed: int = 0, test_fraction: float = 0.25, data_home: Path | None = None) -> JetData:
    """The hls4ml LHC jet data from OpenML (cached by scikit-learn), or ``synthetic_jets`` offline.

    ``n`` keeps a random subset of that many jets (None: all 830,000).
    """
    if not offline():
        try:
            from sklearn.datasets import fetch_openml

            bunch = fetch_openml(OPENML_NAME, as_frame=False, parser="auto", data_home=data_home)
            x = np.asarray(bunch.data, dtype=np.float64)
            labels = np.asarray(bunch.target).astype(str)
            y = np.array([JET_CLASSES.index(v.lower()) for v in labels], dtype=np.int64)
            if n is not None and n < len(x):
                keep = np.random.default_rng(seed).choice(len(x), n, replace=False)
                x, y = x[keep], y[keep]
            x = (x - x.mean(axis=0)) / x.std(axis=0)
            return _split(x, y, test_fraction, f"OpenML {OPENML_NAME} ({len(x)} jets)")
        except Exception as e:  # noqa: BLE001 - any failure to fetch means: use the stand-in
            reason = f"{type(e).__name__}: {e}"[:200]
            data = synthetic_jets(n or 20_000, seed, test_fraction)
            data.source += f"; OpenML was not reachable ({reason})"
            return data
    data = synthetic_jets(n or 20_000, seed, test_fraction)
    data.source += "; MLINFN_OFFLINE is set"
    return data


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, source: str) -> JetData:
    k = int(round(len(x) * (1.0 - test_fraction)))
    return JetData(x[:k], y[:k].astype(np.int64), x[k:], y[k:].astype(np.int64), source)
