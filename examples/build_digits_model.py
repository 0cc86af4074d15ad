"""Train the built-in example model: an MLP on scikit-learn's handwritten digits.

    .venv/bin/python examples/build_digits_model.py

Writes examples/models/digits_mlp.h5 (a float tf_keras model, 64-32-16-10,
softmax output) and examples/models/digits_calibration.npy (500 training
images, 64 pixel features each, values 0..16) used by `./dev.sh example`.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402
from digits_common import digits_split  # noqa: E402

HERE = Path(__file__).parent / "models"


def main() -> None:
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    x_train, y_train, x_test, y_test = digits_split()
    model = keras.Sequential(
        [
            keras.layers.Input((64,), name="pixels"),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(16, activation="relu", name="fc2"),
            keras.layers.Dense(10, activation="softmax", name="digit"),
        ],
        name="digits_mlp",
    )
    model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=40, batch_size=64, verbose=0)
    _, acc = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {acc:.3f} on {len(x_test)} images")
    HERE.mkdir(exist_ok=True)
    model.save(HERE / "digits_mlp.h5", include_optimizer=False)
    np.save(HERE / "digits_calibration.npy", x_train[:500].astype(np.float32))


if __name__ == "__main__":
    main()
