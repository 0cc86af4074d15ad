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

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from digits_common import compress, digits_split, tutorial_main, write_data  # noqa: E402


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


def run(outdir: Path, epochs: int) -> dict[str, Any]:
    data = write_data(outdir.parent / "digits.npz")
    x_train, y_train, _, _ = digits_split()
    model_path = outdir.parent / "digits_mlp.pt"
    torch.save(train_float_model(x_train, y_train), model_path)
    return compress(model_path, data, outdir, epochs)


if __name__ == "__main__":
    tutorial_main(__doc__.splitlines()[0], "out/tutorial_torch/design", run)
