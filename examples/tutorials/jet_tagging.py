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
# # Jet tagging at the LHC: from a Keras model to verified VHDL and HLS
#
# The CMS Level-1 trigger has about a microsecond to decide whether to keep a collision. A network that
# tags jets (gluon, light quark, W, Z or top) must therefore run in an FPGA, in tens of nanoseconds, with no
# multipliers to spare. This tutorial takes the classic 16-64-32-32-5 tagger of the hls4ml papers through
# the whole path:
#
# 1. train it in floating point (tf_keras),
# 2. **prune** 70 % of its weights and train it again **quantisation-aware** with 6-bit weights and
#    activations (QKeras),
# 3. emit the firmware twice, as our own **VHDL** and as an **hls4ml** HLS project,
# 4. **verify** both bit for bit against the golden fixed-point model and the QKeras model,
# 5. compare the physics (ROC curves of the float model and of the hardware) and look at what the hardware
#    costs.
#
# Everything runs through the Python API of `mlinfn_compress`; the same run on the command line is
# `mlinfn-compress model.h5 --data jets.npz --prune 0.7 --qat --bits 6 --target both`.

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

import mlinfn_compress as mc
from mlinfn_compress import datasets
from mlinfn_compress.compress.fixed import FixedType, quantize, to_float

keras = mc.tf_keras()  # the tf_keras module (Keras 2 objects, as QKeras needs), TensorFlow started quietly
import tensorflow as tf  # started by the line above

keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()  # the same numbers on every run
OUT = Path("out") / "jet_tagging"
started = time.perf_counter()

# %% [markdown]
# ## The data
#
# The hls4ml LHC jet data set has 16 high-level features per jet (jet substructure observables such as
# energy correlation functions and the soft-drop mass) and 5 classes. `datasets.jets()` downloads it from
# OpenML with scikit-learn (once; it is cached). Without a network, or with `MLINFN_OFFLINE=1` (as in CI),
# it returns a small synthetic stand-in of the same shape, made by the documented function
# `datasets.synthetic_jets`: the numbers below are then not physics. The next line says which one you got.

# %%
data = datasets.jets(n=20_000)
print("data:", data.source)
print(f"{len(data.x_train)} training jets, {len(data.x_test)} test jets, features {datasets.JET_FEATURES[:3]}...")
print("classes:", datasets.JET_CLASSES, "counts in the test set:", np.bincount(data.y_test))

# %% [markdown]
# ## The float model
#
# Three hidden layers of 64, 32 and 32 ReLUs and a softmax over the 5 classes: about 4,400 weights.

# %%
model = keras.Sequential(
    [
        keras.layers.Input((16,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(5, activation="softmax"),
    ],
    name="jet_tagger",
)
model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(data.x_train, data.y_train, epochs=10, batch_size=256, verbose=0)
_, float_accuracy = model.evaluate(data.x_test, data.y_test, verbose=0)
print(f"float model: {model.count_params()} parameters, test accuracy {float_accuracy:.1%}")

# %% [markdown]
# ## Pruning, quantisation and fixed-point formats
#
# An FPGA computes with integers. The hardware stores every number as a **fixed-point** value: an integer
# `q` read as `q * 2^-(W-I)`, where `W` is the total width in bits and `I` the integer bits (sign included).
# `fixed<6,1>` has 6 bits, 1 of them integer: values from -1 to 31/32 in steps of 1/32. Rounding (`RND_CONV`:
# to the nearest, ties to even) and overflow (`SAT`: clip to the range) say what happens to a value that is
# not on the grid. The formats are written as hls4ml writes them:

# %%
w_type = FixedType.parse("fixed<6,1,RND_CONV,SAT>")
w = np.array([0.30, -0.71, 0.0312, 1.7, -2.0])
print(w_type, "step", w_type.lsb, "range", to_float(np.array([w_type.min_int, w_type.max_int]), w_type.frac))
print("weights    ", w)
print("as integers", quantize(w, w_type), "->", to_float(quantize(w, w_type), w_type.frac))

# %% [markdown]
# Two things make the network cheap in hardware:
#
# - **Pruning** sets the smallest 70 % of the weights to zero, gradually, while the network trains on
#   (tensorflow-model-optimization). A zero weight costs nothing: no adder is generated for it.
# - **Quantisation-aware training** (QAT) rebuilds the network in QKeras with 6-bit weights and 6-bit ReLU
#   outputs and trains it again, so that it learns to live with the coarse grid; the pruned weights stay zero.
#   Every sum inside a layer is kept exact (the accumulator is as wide as it needs to be), so the only
#   approximations are the formats you see in the table below.
#
# Then the tool emits the firmware and **verifies** it: the VHDL runs in the GHDL simulator, the HLS project
# is compiled with g++ (hls4ml's bit-accurate C simulation), and every output of both is compared with the
# **golden model** (an exact integer model of the quantised network) and with QKeras's own inference. *Bit
# exact* means every output integer is identical, not merely close: what you measure in Python is what the
# chip will compute. A cocotb test bench also checks the handshake (valid signals, latency, reset).

# %%
run = mc.compress(
    model,
    OUT,
    target="both",  # our VHDL and an hls4ml project, from the same quantised network
    prune=0.7,
    qat=True,
    bits=6,
    epochs=8,  # fine-tuning epochs for pruning and for QAT
    data=(data.x_train, data.y_train, data.x_test, data.y_test),
    simulate=1000,  # verification inputs: the corners of the input format, then training rows
)
print(run.summary())

# %% [markdown]
# The table lists each layer's weight format and result format. `fixed<23,8,TRN,WRAP>` on a dense layer is
# its exact accumulator: wide, but only inside the layer; the ReLU after it cuts it back to
# `ufixed<6,...>` (unsigned: a ReLU output is never negative). The last line is the verdict: every
# comparison, on every verification input and on the whole test set, found 0 mismatches.

# %%
assert run.passed, "the hardware does not match the golden model: see the report"
for c in run.verification["comparisons"]:
    print(f"{c['against']:<26} {c['samples']:>5} samples, {c['mismatches']} mismatches")
acc = run.accuracy
print(f"\ntest accuracy: float {acc['float']:.1%}, compressed {acc['compressed']:.1%}, hardware {acc['hardware']:.1%}")

# %% [markdown]
# ## The physics: ROC curves of the float model and the hardware
#
# `run.test_outputs()` holds every model's outputs on the test jets, recorded during the run: `float` (the
# model as trained above, before pruning), `compressed` (the golden model), `twin` (QKeras in float64),
# `vhdl` (GHDL) and `hls` (the C simulation). They are the values before the softmax (the hardware leaves the
# softmax out and gives the arg-max); we apply it here. `mc.simulate` runs the design on any inputs you like;
# on the test jets it reproduces the recorded hardware outputs exactly.

# %%
outs = run.test_outputs()
hardware = mc.simulate(OUT, data.x_test)  # GHDL, now
assert np.array_equal(hardware, outs["vhdl"]) and np.array_equal(outs["hls"], outs["vhdl"])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


p_float, p_hw = softmax(outs["float"]), softmax(outs["vhdl"])
aucs = {}
fig, ax = plt.subplots(figsize=(7, 5))
for k, name in enumerate(datasets.JET_CLASSES):
    colour = f"C{k}"
    for p, style, label in ((p_float, "-", "float"), (p_hw, "--", "hardware")):
        fpr, tpr, _ = roc_curve(data.y_test == k, p[:, k])
        auc = aucs[label, name] = roc_auc_score(data.y_test == k, p[:, k])
        ax.plot(tpr, fpr, style, color=colour, label=f"{name} {label}, AUC {auc:.3f}")
ax.set_yscale("log")
ax.set_xlabel("signal efficiency")
ax.set_ylabel("background efficiency (mistag rate)")
ax.set_ylim(1e-3, 1)
ax.grid(True, which="both", alpha=0.3)
ax.legend(fontsize=8, ncol=2)
ax.set_title("per-class ROC: float (solid) and 6-bit, 70 % pruned hardware (dashed)")
plt.show()
for name in datasets.JET_CLASSES:
    print(f"{name}: ROC AUC float {aucs['float', name]:.4f}, hardware {aucs['hardware', name]:.4f}")

# %% [markdown]
# ## What the hardware costs
#
# The VHDL design is fully parallel: every layer exists in hardware at once and a new jet enters at every
# clock (initiation interval 1). Each dense layer is a constant matrix-vector product computed **without
# multipliers**: a graph of additions of shifted inputs (found by da4ml's solver, sharing common
# subexpressions), cut into pipeline stages so that no stage is longer than the clock period (4.2 ns,
# 240 MHz by default). The report counts adders and pipeline register bits per layer.

# %%
hw = run.hardware
print(f"latency {hw['latency_cycles']} clock cycles = {hw['latency_ns']} ns at {hw['clock_period_ns']} ns per cycle")
print(f"initiation interval {hw['initiation_interval']}: a new jet every clock")
print(f"{hw['adders']} adders, {hw['register_bits']} register bits, arithmetic {hw['arithmetic']}, DSPs: {hw['dsp']}")
comp = run.report["compression"]
print(f"weights: {comp['weights']}, of which zero {comp['zero_weights']} ({comp['sparsity']:.0%}); "
      f"{comp['weight_bits_total']} weight bits instead of {comp['float32_bits_total']} in float32")  # fmt: skip
print(f"\n{'layer':<14}{'op':<7}{'sparsity':>9}{'adders':>8}{'stages':>8}{'register bits':>15}")
for row in run.layers:
    if row["op"] == "dense":
        print(f"{row['name']:<14}{row['op']:<7}{row['sparsity']:>9.0%}{row['adders']:>8}"
              f"{row['pipeline_stages']:>8}{row['register_bits']:>15}")  # fmt: skip

# %% [markdown]
# LUTs, flip-flops and the maximum clock frequency come from synthesis. `synth=True` (the command's
# `--synth`) runs it with open tools: `ghdl --synth` and yosys for a Xilinx 7-series estimate (LUT, FF, DSP,
# CARRY4 per layer), an Icarus Verilog simulation proving the netlist equal to the golden model, and
# nextpnr place-and-route for Fmax. For this tagger it takes several minutes, so it is off here; set
# `SYNTH = True` to run it. The HLS project in `out/jet_tagging/hls/` goes on with the vendor tools
# (its README says how): hls4ml's C simulation proves it right, Vitis HLS gives its latency and resources.

# %%
SYNTH = False
if SYNTH:
    run = mc.compress(
        model, OUT, target="vhdl", prune=0.7, qat=True, bits=6, epochs=8, synth=True,
        data=(data.x_train, data.y_train, data.x_test, data.y_test),
    )  # fmt: skip
    assert run.passed
    print(run.summary())
    print("resources:", run.hardware["resources"])
    print("timing:", run.hardware["timing"])
else:
    print("resources:", run.hardware["resources"], "(synthesis not run)")

# %% [markdown]
# ## The verdict
#
# The run's folder holds the design (`vhdl/`, `hls/`), the QKeras twin (`twin/`), `report.json` for scripts
# and `report.html` for people (open it in a browser: weight histograms before and after compression, the
# formats, the verification). `mc.verify(OUT)` re-runs the whole verification of what is on disk, for
# instance after you edited a file by hand.

# %%
assert run.passed
print(f"{run.outdir}: {'BIT-EXACT' if run.passed else 'MISMATCH'}, "
      f"{run.verification['samples']} verification inputs and {run.accuracy['samples']} test jets; "
      f"report: {run.outdir / 'report.html'}")  # fmt: skip
print(f"notebook time: {time.perf_counter() - started:.0f} s")
