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
# # Gravitational-wave bursts: an autoencoder as a streaming FPGA design
#
# Interferometers such as Virgo and LIGO record strain as a time series drowned in noise. Some sources
# (supernovae, unknown physics) give short **bursts** with no template to match. One way to find them is
# **anomaly detection**: train an autoencoder on noise only; it learns to reconstruct noise well and anything
# else badly, so the reconstruction error is an anomaly score. Run in an FPGA next to the digitiser, it can
# flag segments at the data rate.
#
# This tutorial:
#
# 1. trains a small Conv1D autoencoder on synthetic coloured detector noise,
# 2. prunes half of its weights and trains it again quantisation-aware with 8-bit weights and activations,
# 3. emits it as a **streaming** VHDL design (one strain sample per clock, valid/ready handshakes),
#    verified bit for bit in GHDL,
# 4. computes the anomaly score from the **hardware's** reconstruction and checks that its ROC AUC is within
#    0.01 of the float model's.

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

import mlinfn_compress as mc
from mlinfn_compress import datasets

keras = mc.tf_keras()  # the tf_keras module (Keras 2 objects, as QKeras needs), TensorFlow started quietly
import tensorflow as tf  # started by the line above

keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()  # the same numbers on every run
OUT = Path("out") / "gw_anomaly"
started = time.perf_counter()

# %% [markdown]
# ## The data
#
# `datasets.gravitational_waves` makes segments of 64 samples of Gaussian noise coloured like a detector's
# (a steep wall at low frequency, a bucket, a rising tail), each scaled to unit variance. The training set is
# noise only. Half of the test segments also carry a **sine-Gaussian burst** (a sine wave under a Gaussian
# envelope, random centre, width and frequency) with an amplitude of 2.5 noise sigmas: `y_test` is 1 for
# them. These data are synthetic: a stand-in with the shape of the problem, not Virgo data.

# %%
gw = datasets.gravitational_waves(n_train=2_000, n_test=600, length=64, snr=2.5)
x_train, x_test, y_test = gw["x_train"], gw["x_test"], gw["y_test"]
print(f"training segments {x_train.shape}, test segments {x_test.shape}, of which bursts: {y_test.sum()}")

fig, axes = plt.subplots(1, 2, figsize=(11, 2.8), sharey=True)
for ax, k, title in ((axes[0], 0, "noise only"), (axes[1], 1, "noise + burst")):
    ax.plot(x_test[k, :, 0], lw=1)
    ax.set_title(f"test segment {k}: {title}")
    ax.set_xlabel("sample")
axes[0].set_ylabel("strain (noise sigmas)")
plt.show()

# %% [markdown]
# ## The float autoencoder
#
# An encoder of two convolutions with max pooling squeezes the 64 samples into 16 x 4 values; a decoder of
# up-sampling and convolutions rebuilds the segment. It is trained to reproduce its input (targets =
# inputs) on noise only.

# %%
L = keras.layers
model = keras.Sequential(
    [
        L.Input((64, 1)),
        L.Conv1D(8, 5, padding="same", activation="relu"),
        L.MaxPooling1D(2),
        L.Conv1D(4, 5, padding="same", activation="relu"),
        L.MaxPooling1D(2),
        L.Conv1D(4, 5, padding="same", activation="relu"),
        L.UpSampling1D(2),
        L.Conv1D(8, 5, padding="same", activation="relu"),
        L.UpSampling1D(2),
        L.Conv1D(1, 5, padding="same"),
    ],
    name="gw_autoencoder",
)
model.compile(keras.optimizers.Adam(1e-3), "mse")
model.fit(x_train, x_train, epochs=30, batch_size=64, verbose=0)


def anomaly_score(x: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error of each segment."""
    return np.mean((reconstruction.reshape(x.shape) - x) ** 2, axis=(1, 2))


score_float = anomaly_score(x_test, model.predict(x_test, verbose=0))
auc_float = roc_auc_score(y_test, score_float)
print(f"float autoencoder: {model.count_params()} parameters, ROC AUC {auc_float:.4f}")

# %% [markdown]
# ## Compression and the streaming architecture
#
# Pruning (50 % of the weights to zero, while training on) and quantisation-aware training (QKeras, 8-bit
# weights and ReLU outputs) work as in the jet-tagging tutorial. An autoencoder is a regression: `data`
# gives the inputs as targets, and the report's accuracy is a mean squared error.
#
# The hardware architecture is new. `io="stream"` builds a design that takes **one sample (with all its
# channels) per clock** and passes it from layer to layer with valid/ready handshakes, as AXI-Stream does.
# Each convolution keeps the last few samples in a line buffer and applies one multiplier-free core per
# window position; pooling and up-sampling change the rate. The design's size depends on the layers, not on
# the segment length, which suits a continuous strain channel. Without `io=` the tool would choose the fully
# parallel design for so small a network (its *size rule*; the report says why).
#
# Verification streams the inputs through the design in GHDL, compares every output with the golden model
# and QKeras, measures the latency and the initiation interval (clocks between consecutive segments)
# and checks them against what the design states, and runs cocotb tests of the handshake (gaps in the input,
# a consumer that is not always ready, reset in the middle of a segment).

# %%
run = mc.compress(
    model,
    OUT,
    io="stream",
    prune=0.5,
    qat=True,
    bits=8,
    epochs=6,
    data=(x_train, x_train, x_test, x_test),  # targets = inputs
    simulate=200,  # verification segments
)
print(run.summary())
assert run.passed, "the hardware does not match the golden model: see the report"

# %% [markdown]
# ## The anomaly score from the hardware
#
# `mc.simulate` runs the design in GHDL on the test segments (quantised to its input format, 16 bits here)
# and returns its reconstructions; the score is computed from them as above. (`run.test_outputs()["vhdl"]`
# holds the same outputs, recorded during the run.)

# %%
reconstruction_hw = mc.simulate(OUT, x_test)
assert np.array_equal(reconstruction_hw, run.test_outputs()["vhdl"])
score_hw = anomaly_score(x_test, reconstruction_hw)
auc_hw = roc_auc_score(y_test, score_hw)
print(f"ROC AUC: float {auc_float:.4f}, hardware {auc_hw:.4f}, difference {auc_hw - auc_float:+.4f}")
assert abs(auc_hw - auc_float) < 0.01, "the compressed hardware lost more than 0.01 of ROC AUC"

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
for score, style, label, auc in ((score_float, "-", "float", auc_float), (score_hw, "--", "hardware", auc_hw)):
    fpr, tpr, _ = roc_curve(y_test, score)
    ax1.plot(fpr, tpr, style, label=f"{label}, AUC {auc:.3f}")
ax1.plot([0, 1], [0, 1], ":", color="grey")
ax1.set_xlabel("false-alarm rate (noise flagged)")
ax1.set_ylabel("detection efficiency (bursts flagged)")
ax1.legend()
ax1.set_title("ROC of the anomaly score")
k = int(np.flatnonzero(y_test == 1)[np.argmax(score_hw[y_test == 1])])  # the most anomalous burst
ax2.plot(x_test[k, :, 0], lw=1, label="input (noise + burst)")
ax2.plot(model.predict(x_test[k : k + 1], verbose=0)[0, :, 0], lw=1, label="float reconstruction")
ax2.plot(reconstruction_hw[k], "--", lw=1, label="hardware reconstruction")
ax2.set_xlabel("sample")
ax2.legend(fontsize=8)
ax2.set_title(f"test segment {k}: the burst is not reconstructed")
plt.show()

# %% [markdown]
# ## What the hardware costs
#
# **Latency** counts the clocks from the first sample of a segment entering to its last reconstructed sample
# leaving; the **initiation interval** is the number of clocks between consecutive segments in steady state
# (one per input sample, plus what the padding of the first convolution adds). Both were measured by the
# bench and agree with what the design states.

# %%
hw = run.hardware
print(f"architecture: {hw['io']['architecture']} ({hw['io']['chosen_by']})")
print(f"latency {hw['latency_cycles']} clocks, initiation interval {hw['initiation_interval']} clocks per segment "
      f"of 64 samples; at {hw['clock_period_ns']} ns per clock: a segment every "
      f"{hw['initiation_interval'] * hw['clock_period_ns']:.0f} ns")  # fmt: skip
print("measured by the bench:", run.verification["timing"]["measured"])
print(f"{hw['adders']} adders, {hw['register_bits']} register bits; "
      f"{run.report['compression']['sparsity']:.0%} of the weights are zero")  # fmt: skip

# %% [markdown]
# ## The verdict

# %%
assert run.passed and abs(auc_hw - auc_float) < 0.01
print(f"{run.outdir}: BIT-EXACT on {run.verification['samples']} segments and the {len(x_test)} test segments; "
      f"ROC AUC float {auc_float:.4f}, hardware {auc_hw:.4f}; report: {run.outdir / 'report.html'}")  # fmt: skip
print(f"notebook time: {time.perf_counter() - started:.0f} s")
