"""Tutorial: a small Keras CNN on the 8x8 digits, pruned and quantised, to verified VHDL.

    .venv/bin/python examples/digits_cnn.py            # about a minute on a laptop CPU
    .venv/bin/python examples/digits_cnn.py --quick    # fewer epochs, for the tests
    .venv/bin/python examples/digits_cnn.py --synth    # any other option goes to mlinfn-compress

This script

1. trains a float tf_keras CNN on scikit-learn's handwritten digits (8x8
   images, pixel values 0..16): Conv2D 3x3 (8 filters, no bias) with a batch
   norm and a ReLU, 2x2 max pooling, Conv2D 3x3 (16 filters), ReLU, 2x2 max
   pooling, Flatten, Dense 10 with a softmax; and saves it to
   OUTDIR/../digits_cnn.h5,
2. writes the train/test split to OUTDIR/../digits.npz (flat rows of 64
   pixels; the tool reshapes them to the model's 8x8x1 input),
3. runs mlinfn-compress with that data: half of the convolution and dense
   weights are pruned while fine-tuning (tensorflow-model-optimization), then
   the network is rebuilt in QKeras (the batch norm folded into the first
   convolution) with 6-bit weights and 8-bit activations and fine-tuned again,
4. and the tool emits VHDL in the streaming architecture (one pixel per
   clock through line buffers, valid/ready handshakes between the layers),
   simulates it in GHDL, checks it bit for bit against the golden model and
   QKeras's own inference, and drives it with cocotb with back-pressure.
   The pixels are whole numbers, so the input format is fixed<6,6>
   (integers -32..31) and nothing is lost on the way in.

The same as one command:

    mlinfn-compress digits_cnn.h5 --data digits.npz --prune 0.5 --qat --weight-bits 6 --act-bits 8 \\
        --input-type 'fixed<6,6,RND_CONV,SAT>' --io stream -o out/digits_cnn
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
from digits_common import compress, digits_split, tutorial_main, write_data  # noqa: E402

import mlinfn_compress  # noqa: E402, F401  (starts TensorFlow with tf_keras, as QKeras needs)

OPTIONS = ("--prune", "0.5", "--qat", "--weight-bits", "6", "--act-bits", "8",
           "--input-type", "fixed<6,6,RND_CONV,SAT>", "--io", "stream")  # fmt: skip
FLOAT_EPOCHS = 30


def train_float_model(x: np.ndarray, y: np.ndarray, epochs: int = FLOAT_EPOCHS) -> Any:
    """The float CNN, trained on images (N, 8, 8, 1) of pixel values 0..16."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    L = keras.layers
    model = keras.Sequential(
        [
            L.Input((8, 8, 1), name="image"),
            L.Conv2D(8, 3, padding="same", use_bias=False, name="conv1"),
            L.BatchNormalization(name="bn1"),
            L.ReLU(name="relu1"),
            L.MaxPooling2D(name="pool1"),
            L.Conv2D(16, 3, padding="same", name="conv2"),
            L.ReLU(name="relu2"),
            L.MaxPooling2D(name="pool2"),
            L.Flatten(name="flatten"),
            L.Dense(10, activation="softmax", name="digit"),
        ],
        name="digits_cnn",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.reshape(-1, 8, 8, 1), y, epochs=epochs, batch_size=64, verbose=0)
    return model


def run(outdir: Path, epochs: int, options: Sequence[str] = ()) -> dict[str, Any]:
    data = write_data(outdir.parent / "digits.npz")
    x_train, y_train, _, _ = digits_split()
    model_path = outdir.parent / "digits_cnn.h5"
    train_float_model(x_train, y_train).save(model_path, include_optimizer=False)
    return compress(model_path, data, outdir, epochs, [*OPTIONS, *options])


if __name__ == "__main__":
    tutorial_main(__doc__.splitlines()[0], "out/tutorial_cnn/design", run, pass_options=True)
