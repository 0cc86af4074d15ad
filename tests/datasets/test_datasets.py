"""The tutorials' data sets: shapes, determinism, and the offline stand-in."""

from __future__ import annotations

import numpy as np
import pytest

from mlinfn_compress.datasets import JET_CLASSES, ct_phantoms, gravitational_waves, jets, offline, synthetic_jets


def test_synthetic_jets_have_the_shape_of_the_real_ones() -> None:
    d = synthetic_jets(2_000, seed=3)
    assert d.x_train.shape == (1_500, 16) and d.x_test.shape == (500, 16)
    assert set(np.unique(d.y_train)) == set(range(len(JET_CLASSES)))
    assert np.allclose(np.concatenate([d.x_train, d.x_test]).mean(axis=0), 0, atol=1e-9)
    again = synthetic_jets(2_000, seed=3)
    assert np.array_equal(d.x_train, again.x_train) and np.array_equal(d.y_test, again.y_test)
    assert not np.array_equal(d.x_train, synthetic_jets(2_000, seed=4).x_train)


def test_offline_mode_uses_the_stand_in_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLINFN_OFFLINE", "1")
    assert offline()
    d = jets(1_000)
    assert "synthetic stand-in" in d.source and "MLINFN_OFFLINE is set" in d.source
    monkeypatch.setenv("MLINFN_OFFLINE", "0")
    assert not offline()


def test_gravitational_wave_segments() -> None:
    g = gravitational_waves(n_train=40, n_test=20, length=32, seed=1)
    assert g["x_train"].shape == (40, 32, 1) and g["x_test"].shape == (20, 32, 1)
    assert g["y_test"].tolist() == [0, 1] * 10
    assert np.allclose(g["x_train"].std(axis=1), 1.0)
    # an injected burst adds energy where it is
    noise_only = gravitational_waves(n_train=40, n_test=20, length=32, snr=0.0, seed=1)["x_test"]
    assert np.abs(g["x_test"] - noise_only)[g["y_test"] == 1].max() > 0.5
    assert np.array_equal(g["x_test"][g["y_test"] == 0], noise_only[g["y_test"] == 0])


def test_ct_phantoms_and_their_lesion_masks() -> None:
    c = ct_phantoms(8, size=32, seed=2)
    assert c["x"].shape == (8, 32, 32, 1) and c["y"].shape == (8, 32, 32, 1)
    assert c["x"].min() >= 0 and c["x"].max() <= 1
    assert set(np.unique(c["y"])) == {0.0, 1.0}
    lesion, rest = c["x"][c["y"] == 1].mean(), c["x"][c["y"] == 0].mean()
    assert lesion > rest + 0.2  # lesions are brighter than the rest
