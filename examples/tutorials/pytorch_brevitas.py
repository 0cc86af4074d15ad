# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The jet tagger in PyTorch, quantised with Brevitas
#
# The same 16-64-32-32-5 jet tagger as in the jet-tagging tutorial, written and trained in **PyTorch**. The
# tool reads the `nn.Module` directly, prunes it with `torch.nn.utils.prune`, rebuilds it in **Brevitas**
# (Xilinx's quantisation library for PyTorch) with power-of-two fixed-point quantisers for
# quantisation-aware training, and emits and verifies the hardware exactly as for Keras. The framework twin
# is now a Brevitas model: the quantised network rebuilt in Brevitas and run in float64, which must give the
# hardware's outputs bit for bit. It runs on a GPU when PyTorch sees one.

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

import mlinfn_compress as mc
from mlinfn_compress import datasets

torch.manual_seed(0)
# A network this small trains fastest on one thread: a batch is too little work to share between cores, and
# threads that wait for each other on a busy machine (a laptop, a shared CI runner) cost far more than they give.
torch.set_num_threads(1)
OUT = Path("out") / "pytorch_brevitas"
started = time.perf_counter()
print(f"PyTorch {torch.__version__}, GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}")

# %% [markdown]
# ## The data and the float model
#
# `datasets.jets()` is the hls4ml LHC jet data set, or offline (`MLINFN_OFFLINE=1`, as in CI) its synthetic
# stand-in: the next line says which. The model ends with the logits; the softmax belongs to the loss.

# %%
data = datasets.jets(n=20_000)
print("data:", data.source)
model = nn.Sequential(
    nn.Linear(16, 64),
    nn.ReLU(),
    nn.Linear(64, 32),
    nn.ReLU(),
    nn.Linear(32, 32),
    nn.ReLU(),
    nn.Linear(32, 5),
)
x_train = torch.tensor(data.x_train, dtype=torch.float32)
y_train = torch.tensor(data.y_train, dtype=torch.long)
optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
for _epoch in range(10):
    for batch in torch.randperm(len(x_train)).split(256):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
        optimiser.step()
model.eval()
with torch.no_grad():
    logits_float = model(torch.tensor(data.x_test, dtype=torch.float32)).numpy()
n_params = sum(p.numel() for p in model.parameters())
print(f"float model: {n_params} parameters, test accuracy {np.mean(logits_float.argmax(1) == data.y_test):.1%}")

# %% [markdown]
# ## Pruning, Brevitas QAT, VHDL
#
# `prune=0.7` zeroes the smallest 70 % of the weights gradually while fine-tuning; `qat=True` then rebuilds
# the network in Brevitas: `QuantLinear` layers with 6-bit power-of-two fixed-point weights, `QuantReLU`
# with 6-bit outputs whose scale comes from the range each activation takes on the training data, and an
# input quantiser; it fine-tunes that model with the pruned weights held at zero. Power-of-two scales are
# what makes the Brevitas model a fixed-point one: every value is an integer times `2^-f`, the hardware's
# format exactly. The command line equivalent is
# `mlinfn-compress tagger.pt --data jets.npz --prune 0.7 --qat --bits 6`.

# %%
run = mc.compress(
    model,
    OUT,
    prune=0.7,
    qat=True,
    bits=6,
    epochs=5,  # fine-tuning epochs for pruning and for QAT
    data=(data.x_train, data.y_train, data.x_test, data.y_test),
    simulate=1000,
)
print(run.summary())
assert run.passed, "the hardware does not match the golden model: see the report"

# %% [markdown]
# ## The Brevitas twin
#
# The report says where the twin ran (`cpu`, or `cuda:0` on a GPU). `mc.simulate(..., backend="twin")` runs
# the saved twin (`out/pytorch_brevitas/twin/`: a Brevitas `state_dict` and the file of its class) on any
# inputs; on the test jets it gives the GHDL simulation's outputs bit for bit.

# %%
print("Brevitas twin:", {k: run.twin.get(k) for k in ("framework", "device", "path")})
twin_out = mc.simulate(OUT, data.x_test, backend="twin")
outs = run.test_outputs()
assert np.array_equal(twin_out, outs["vhdl"]), "the Brevitas twin and the hardware disagree"
print(f"Brevitas twin = GHDL simulation on all {len(twin_out)} test jets, bit for bit")
for c in run.verification["comparisons"]:
    print(f"{c['against']:<26} {c['samples']:>5} samples, {c['mismatches']} mismatches")

# %% [markdown]
# ## Float against hardware
#
# The AUC of each class (one class against the others) for the float PyTorch model and for the 6-bit,
# 70 % pruned hardware.

# %%
acc = run.accuracy
print(f"test accuracy: float {acc['float']:.1%}, compressed {acc['compressed']:.1%}, hardware {acc['hardware']:.1%}")
auc = {
    label: [roc_auc_score(data.y_test == k, out[:, k]) for k in range(5)]
    for label, out in (("float", outs["float"]), ("hardware", outs["vhdl"]))
}
fig, ax = plt.subplots(figsize=(6, 3.5))
pos = np.arange(5)
ax.bar(pos - 0.2, auc["float"], 0.4, label="float (PyTorch)")
ax.bar(pos + 0.2, auc["hardware"], 0.4, label="hardware (6-bit, 70 % pruned)")
ax.set_xticks(pos, datasets.JET_CLASSES)
ax.set_ylim(0.5, 1.0)
ax.set_ylabel("ROC AUC (one against the rest)")
ax.legend(loc="lower right")
plt.show()
hw = run.hardware
print(f"latency {hw['latency_cycles']} cycles ({hw['latency_ns']} ns), a jet every clock; "
      f"{hw['adders']} adders, {hw['register_bits']} register bits, DSPs: {hw['dsp']}")  # fmt: skip

# %% [markdown]
# ## The verdict

# %%
assert run.passed
print(f"{run.outdir}: BIT-EXACT (golden model, Brevitas twin on {run.twin.get('device')}, GHDL); "
      f"accuracy float {acc['float']:.1%}, hardware {acc['hardware']:.1%}")  # fmt: skip
print("report:", run.outdir / "report.html")
print(f"notebook time: {time.perf_counter() - started:.0f} s")
