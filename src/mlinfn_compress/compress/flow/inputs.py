"""Calibration data and the verification inputs fed to the simulated design."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, quantize
from mlinfn_compress.compress.passes.quantise import default_inputs
from mlinfn_compress.errors import UserError

DEFAULT_CALIBRATION_SAMPLES = 4096
DEFAULT_DISTRIBUTION = "standard normal features N(0, 1), seed {seed}"


def load_calibration(path: Path, shape: tuple[int, ...] | int) -> np.ndarray:
    """Read calibration samples from a .npy file: (samples, *input_shape) or flat (samples, features).

    Returns flat rows (samples, features) of float64, features in the IR's row-major, channels-last order.
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    n_features = int(np.prod(shape))
    if not path.exists():
        raise UserError(f"{path}: no such calibration file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the calibration file as .npy ({e})") from e
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "fiu":
        raise UserError(f"{path}: the calibration file must hold a numeric array")
    if data.shape == shape or (data.ndim == 1 and n_features == data.shape[0]):
        data = data.reshape(1, -1)
    if data.shape[1:] == shape:
        data = data.reshape(len(data), -1)
    if data.ndim != 2 or data.shape[1] != n_features:
        want = f"(samples, {n_features}) features" if len(shape) == 1 else f"(samples, {', '.join(map(str, shape))})"
        raise UserError(f"{path}: calibration data has shape {data.shape}, but the model expects {want}")
    if len(data) == 0:
        raise UserError(f"{path}: the calibration file holds no samples")
    if not np.all(np.isfinite(data)):
        raise UserError(f"{path}: the calibration data contains NaN or infinite values")
    return data.astype(np.float64)


def corner_rows(n_features: int, t: FixedType, seed: int) -> np.ndarray:
    """Integer input rows at the corners of the input format."""
    lo, hi = t.min_int, t.max_int
    alt = np.where(np.arange(n_features) % 2 == 0, lo, hi)
    rows = [np.full(n_features, lo), np.full(n_features, hi), np.zeros(n_features), alt, lo + hi - alt]
    rng = np.random.default_rng(seed)
    rows += [rng.choice([lo, 0, hi], size=n_features) for _ in range(3)]
    return np.array(rows, dtype=np.int64)


def verification_inputs(
    n: int, n_features: int, t: FixedType, calibration: np.ndarray | None, seed: int
) -> tuple[np.ndarray, str, int]:
    """``n`` integer input rows: the format's corners, then calibration rows or generated ones.

    Returns (rows, where they came from, number of corner rows at the start).
    """
    corners = corner_rows(n_features, t, seed)
    rest = max(n - len(corners), 0)
    if calibration is not None and len(calibration) >= rest:
        body, source = calibration[:rest], "calibration file"
    elif calibration is not None:
        extra = default_inputs(rest - len(calibration), n_features, seed)
        body = np.concatenate([calibration, extra])
        source = f"calibration file ({len(calibration)} rows), then " + DEFAULT_DISTRIBUTION.format(seed=seed)
    else:
        body, source = default_inputs(rest, n_features, seed), DEFAULT_DISTRIBUTION.format(seed=seed)
    x = np.concatenate([corners, quantize(body, t)]) if rest else corners[:n]
    k = len(corners[:n])
    return x.astype(np.int64), f"{k} corner rows of {t}, then {source}", k
