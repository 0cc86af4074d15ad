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

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_digits_model import digits_split  # noqa: E402

from mlinfn_compress.cli import main as mlinfn_compress  # noqa: E402


def run(outdir: Path, epochs: int) -> dict:
    outdir.parent.mkdir(parents=True, exist_ok=True)
    data = outdir.parent / "digits.npz"
    x_train, y_train, x_test, y_test = digits_split()
    np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    args = [str(HERE / "models" / "digits_mlp.h5"), "--data", str(data), "--prune", "0.7", "--qat", "--bits", "6"]
    args += ["--epochs", str(epochs), "-o", str(outdir), "--force"]
    code = mlinfn_compress(args)
    if code != 0:
        raise SystemExit(code)
    return json.loads((outdir / "report.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--outdir", type=Path, default=Path("out/tutorial_keras/design"))
    ap.add_argument("--quick", action="store_true", help="fewer fine-tuning epochs")
    args = ap.parse_args()
    report = run(args.outdir, epochs=4 if args.quick else 12)
    acc, comp = report["accuracy"], report["compression"]
    print(
        f"\ntest accuracy: float {acc['float']:.1%}, compressed {acc['compressed']:.1%}, hardware {acc['hardware']:.1%}"
    )
    print(
        f"sparsity {comp['sparsity']:.0%}; "
        f"weight bits {comp['weight_bits_total']} (float32: {comp['float32_bits_total']})"
    )


if __name__ == "__main__":
    main()
