"""What the digits tutorials share: the data split, the compression command, the summary."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from mlinfn_compress.cli import main as mlinfn_compress


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits (8x8 images, pixel values 0..16): x_train, y_train, x_test, y_test."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return x_train, y_train, x_test, y_test


def write_data(path: Path) -> Path:
    """The split as the .npz that --data reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = digits_split()
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


PRUNE_QAT = ("--prune", "0.7", "--qat", "--bits", "6")


def compress(model: Path, data: Path, outdir: Path, epochs: int, options: Sequence[str] = PRUNE_QAT) -> dict[str, Any]:
    """Prune and quantisation-aware train (by default 70 % and 6 bits), emit and verify VHDL; returns the report.

    ``options`` are mlinfn-compress options added to the command line.
    """
    args = [str(model), "--data", str(data), *options]
    code = mlinfn_compress([*args, "--epochs", str(epochs), "-o", str(outdir), "--force"])
    if code != 0:
        raise SystemExit(code)
    return json.loads((outdir / "report.json").read_text())


def tutorial_main(
    description: str, default_outdir: str, run: Callable[..., dict[str, Any]], pass_options: bool = False
) -> None:
    """The tutorials' command line: run, then print the accuracies and the compression.

    With ``pass_options``, options the tutorial does not know go to mlinfn-compress
    (``run(outdir, epochs, options)``).
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-o", "--outdir", type=Path, default=Path(default_outdir))
    ap.add_argument("--quick", action="store_true", help="fewer fine-tuning epochs")
    args, rest = ap.parse_known_args() if pass_options else (ap.parse_args(), [])
    epochs = 4 if args.quick else 12
    report = run(args.outdir, epochs, rest) if pass_options else run(args.outdir, epochs)
    acc, comp = report["accuracy"], report["compression"]
    print(f"\ntest accuracy: float {acc['float']:.1%}, compressed {acc['compressed']:.1%}, ", end="")
    print(f"hardware {acc['hardware']:.1%}")
    bits = f"weight bits {comp['weight_bits_total']} (float32 {comp['float32_bits_total']})"
    print(f"sparsity {comp['sparsity']:.0%}; {bits}")
