"""Tutorial: the same digits classifier in PyTorch, pruned and quantised with Brevitas, to verified VHDL.

    .venv/bin/python examples/digits_torch.py            # about a minute on a laptop CPU
    .venv/bin/python examples/digits_torch.py --quick    # fewer epochs

This script

1. trains a float PyTorch MLP 64-32-16-10 on scikit-learn's handwritten
   digits and saves it whole with torch.save (OUTDIR/../digits_mlp.pt),
2. writes the train/test split to OUTDIR/../digits.npz,
3. runs mlinfn-compress with that data: 70 % of the weights are pruned while
   fine-tuning (torch.nn.utils.prune, gradual schedule), then the network is
   rebuilt in Brevitas with 6-bit power-of-two fixed-point weights and
   activations and fine-tuned again (the pruned weights stay zero),
4. and the tool emits VHDL and checks it in GHDL bit for bit against the
   golden fixed-point model, the Brevitas model and its twin
   (OUTDIR/twin: a Brevitas state_dict and its class file).

The same as one command:

    mlinfn-compress digits_mlp.pt --data digits.npz --prune 0.7 --qat --bits 6 -o out/digits_torch
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_digits_model import digits_split  # noqa: E402

from mlinfn_compress.cli import main as mlinfn_compress  # noqa: E402


def train_float_model(x: np.ndarray, y: np.ndarray, epochs: int = 60) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10), nn.Softmax(dim=1)
    )
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    logits = model[:-1]
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(logits(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def run(outdir: Path, epochs: int) -> dict:
    work = outdir.parent
    work.mkdir(parents=True, exist_ok=True)
    x_train, y_train, x_test, y_test = digits_split()
    np.savez(work / "digits.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    model_path = work / "digits_mlp.pt"
    torch.save(train_float_model(x_train, y_train), model_path)
    args = [str(model_path), "--data", str(work / "digits.npz"), "--prune", "0.7", "--qat", "--bits", "6"]
    args += ["--epochs", str(epochs), "-o", str(outdir), "--force"]
    code = mlinfn_compress(args)
    if code != 0:
        raise SystemExit(code)
    return json.loads((outdir / "report.json").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--outdir", type=Path, default=Path("out/tutorial_torch/design"))
    ap.add_argument("--quick", action="store_true", help="fewer fine-tuning epochs")
    args = ap.parse_args()
    report = run(args.outdir, epochs=4 if args.quick else 12)
    acc, comp = report["accuracy"], report["compression"]
    print(
        f"\ntest accuracy: float {acc['float']:.1%}, compressed {acc['compressed']:.1%}, hardware {acc['hardware']:.1%}"
    )
    print(f"sparsity {comp['sparsity']:.0%}; weight bits {comp['weight_bits_total']}")


if __name__ == "__main__":
    main()
