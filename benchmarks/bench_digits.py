"""Benchmark the compression of the digits MLP: accuracy, sparsity, weight bits, wall time.

Run:  .venv/bin/python benchmarks/bench_digits.py [--epochs 12]

Runs the whole `mlinfn-compress MODEL --data digits.npz --prune 0.7 --qat --bits 6`
(fine-tuning, VHDL, GHDL verification) as a subprocess and reads its report.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

from digits_common import digits_split  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_digits_") as tmp:
        data = Path(tmp) / "digits.npz"
        x_train, y_train, x_test, y_test = digits_split()
        np.savez(data, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        out = Path(tmp) / "out"
        cmd = [str(Path(sys.executable).parent / "mlinfn-compress"), str(ROOT / "examples/models/digits_mlp.h5")]
        cmd += ["--data", str(data), "--prune", "0.7", "--qat", "--bits", "6", "--epochs", str(args.epochs)]
        cmd += ["-o", str(out), "-q"]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        r = json.loads((out / "report.json").read_text())
    acc, comp, ver = r["accuracy"], r["compression"], r["verification"]
    print(f"command: {' '.join(cmd[1:])}")
    print("| measure | value |\n|---|---:|")
    print(f"| test accuracy, float model | {acc['float']:.2%} |")
    print(f"| test accuracy, compressed (golden model) | {acc['compressed']:.2%} |")
    print(f"| test accuracy, framework twin | {acc['framework_twin']:.2%} |")
    print(f"| test accuracy, simulated hardware | {acc['hardware']:.2%} |")
    print(f"| sparsity | {comp['sparsity']:.1%} |")
    print(f"| weight bits, float32 | {comp['float32_bits_total']:,} |")
    print(f"| weight bits, compressed (non-zero weights and biases) | {comp['weight_bits_total']:,} |")
    print(f"| compression ratio | {comp['float32_bits_total'] / comp['weight_bits_total']:.1f}x |")
    print(f"| multipliers | {comp['multipliers']} of {comp['weights']} weights |")
    print(f"| mismatches (hardware vs golden, QKeras, twin, test set) | {ver['mismatches']} |")
    print(f"| wall time of the whole run (s) | {wall:.1f} |")


if __name__ == "__main__":
    main()
