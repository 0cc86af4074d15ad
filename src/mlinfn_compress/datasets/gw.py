"""Gravitational-wave-like strain segments: coloured noise, some with sine-Gaussian bursts."""

from __future__ import annotations

import numpy as np


def coloured_noise(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Gaussian noise with a detector-like spectrum: a steep low-frequency wall, a bucket, a rising tail.

    Shaped in the frequency domain with an amplitude spectral density
    ``(f/f0)^-4 + 1 + (f/f0)^2`` (f0 = a tenth of the band), normalised to unit variance.
    """
    white = rng.normal(0.0, 1.0, (n, length))
    f = np.fft.rfftfreq(length)  # cycles per sample, 0 .. 0.5
    f0 = 0.05
    fs = np.maximum(f, 1.0 / length)
    asd = (fs / f0) ** -4 + 1.0 + (fs / f0) ** 2
    coloured = np.fft.irfft(np.fft.rfft(white, axis=1) * asd, n=length, axis=1)
    return coloured / coloured.std(axis=1, keepdims=True)


def sine_gaussian(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Bursts ``exp(-(t-t0)^2 / tau^2) sin(2 pi f (t - t0))`` at random centre, width and frequency."""
    t = np.arange(length)[None, :]
    t0 = rng.uniform(0.3, 0.7, (n, 1)) * length
    tau = rng.uniform(0.03, 0.1, (n, 1)) * length
    f = rng.uniform(0.05, 0.2, (n, 1))
    return np.exp(-(((t - t0) / tau) ** 2)) * np.sin(2 * np.pi * f * (t - t0))


def gravitational_waves(
    n_train: int = 2_000, n_test: int = 1_000, length: int = 64, snr: float = 1.5, seed: int = 0
) -> dict[str, np.ndarray]:
    """Training noise only; test segments half noise, half noise + a burst of amplitude ``snr`` (in noise sigmas).

    Returns ``x_train`` (n_train, length, 1), ``x_test`` (n_test, length, 1) and
    ``y_test`` (n_test,), 1 where a burst was injected: an autoencoder trained
    on noise reconstructs bursts badly, and its reconstruction error is the
    anomaly score.
    """
    rng = np.random.default_rng(seed)
    x_train = coloured_noise(rng, n_train, length)
    x_test = coloured_noise(rng, n_test, length)
    y_test = (np.arange(n_test) % 2).astype(np.int64)
    bursts = sine_gaussian(rng, n_test, length)
    x_test = x_test + snr * bursts * y_test[:, None]
    return {"x_train": x_train[..., None], "x_test": x_test[..., None], "y_test": y_test}
