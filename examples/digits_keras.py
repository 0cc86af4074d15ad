"""Tutorial: prune and quantise a Keras digits classifier, and get verified VHDL.

    .venv/bin/python examples/digits_keras.py            # about a minute on a laptop CPU
    .venv/bin/python examples/digits_keras.py --quick    # fewer epochs, for the tests

The float model is examples/models/digits_mlp.h5: a 64-32-16-10 MLP trained on
scikit-learn's handwritten digits (see build_digits_model.py).  This script

1. writes the digits train/test split to OUTDIR/digits.npz (x_train, y_train, x_test, y_test),
2. runs mlinfn-compress on the float model with that data: 70 % of the weights
   are pruned while fine-tuning (tensorflow-model-optimization), then the
   network is rebuilt in QKeras with 6-bit weights and activations and
   fine-tuned again (the pruned weights stay zero),
3. and the tool emits VHDL, simulates it in GHDL and checks it bit for bit
   against the golden fixed-point model, the QKeras model and its twin.

The same as one command:

    mlinfn-compress examples/models/digits_mlp.h5 --data digits.npz --prune 0.7 --qat --bits 6 -o out/digits_keras
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from digits_common import compress, tutorial_main, write_data  # noqa: E402


def run(outdir: Path, epochs: int) -> dict[str, Any]:
    data = write_data(outdir.parent / "digits.npz")
    return compress(HERE / "models" / "digits_mlp.h5", data, outdir, epochs)


if __name__ == "__main__":
    tutorial_main(__doc__.splitlines()[0], "out/tutorial_keras/design", run)
