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
# # CT / lung segmentation: a U-Net as a streaming FPGA design
#
# Segmentation networks mark, pixel by pixel, what a radiologist is looking for: a lesion in a lung CT, a
# nodule, an organ. A **U-Net** does it with an encoder that shrinks the image (convolutions and pooling), a
# decoder that grows it back (up-sampling and convolutions), and **skip connections** that hand the
# encoder's fine detail to the decoder at the same scale. Run in an FPGA beside a scanner's read-out, it can
# segment at the rate the pixels arrive.
#
# This tutorial:
#
# 1. trains a small two-level U-Net on synthetic CT-like images of 32 x 32 pixels,
# 2. trains it again **quantisation-aware** with 8-bit weights and activations,
# 3. emits it as a **streaming** VHDL design (one pixel per clock) and verifies it bit for bit in GHDL,
# 4. compares the **Dice score** of the float model and of the hardware, and shows their masks.

# %%
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import mlinfn_compress as mc
from mlinfn_compress import datasets

keras = mc.tf_keras()  # the tf_keras module (Keras 2 objects, as QKeras needs), TensorFlow started quietly
import tensorflow as tf  # started by the line above

keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()  # the same numbers on every run
OUT = Path("out") / "ct_segmentation"
started = time.perf_counter()

# %% [markdown]
# ## The data
#
# `datasets.ct_phantoms` draws CT-like slices from scikit-image's **Shepp-Logan phantom** (the standard test
# image of tomography: a head with its skull and inner structures), scaled and shifted at random, with one to
# three bright elliptical **lesions** and Gaussian noise. The target is the lesion mask. These images are
# synthetic: a stand-in with the shape of the problem, not patient data.

# %%
ct = datasets.ct_phantoms(n=480, size=32, seed=0)
x, y = ct["x"], ct["y"]
x_train, y_train, x_test, y_test = x[:400], y[:400], x[400:], y[400:]
print(f"training images {x_train.shape}, test images {x_test.shape}; lesion pixels {y.mean():.1%}")

# %% [markdown]
# ## The float U-Net
#
# Two levels: 32 x 32 -> 16 x 16 -> 8 x 8 and back. Each `Concatenate` is a skip connection: the decoder
# sees the up-sampled coarse features next to the encoder's features at the same resolution. The last layer
# is a 1 x 1 convolution with no activation, trained to reproduce the mask (0 or 1 per pixel) with a mean
# squared error: a pixel is lesion where the output is above 0.5. (A sigmoid at the end would need a lookup
# table in hardware and cannot be trained quantisation-aware here; a linear output and a threshold make the
# same decision with nothing but the convolution.) The same loss serves the quantisation-aware training
# below, which treats targets of any shape as a regression.

# %%
L = keras.layers
inp = L.Input((32, 32, 1))
e1 = L.Conv2D(4, 3, padding="same", activation="relu", name="enc1")(inp)
e2 = L.Conv2D(8, 3, padding="same", activation="relu", name="enc2")(L.MaxPooling2D(name="pool1")(e1))
mid = L.Conv2D(8, 3, padding="same", activation="relu", name="mid")(L.MaxPooling2D(name="pool2")(e2))
d2 = L.Concatenate(name="skip2")([L.UpSampling2D(name="up2")(mid), e2])
d2 = L.Conv2D(8, 3, padding="same", activation="relu", name="dec2")(d2)
d1 = L.Concatenate(name="skip1")([L.UpSampling2D(name="up1")(d2), e1])
d1 = L.Conv2D(4, 3, padding="same", activation="relu", name="dec1")(d1)
out = L.Conv2D(1, 1, name="mask")(d1)  # the mask, per pixel
model = keras.Model(inp, out, name="unet")
model.compile(keras.optimizers.Adam(3e-3), "mse")
model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)


def dice(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Dice score 2|A and B| / (|A| + |B|) of two sets of binary masks, over all pixels."""
    t, p = truth.reshape(len(truth), -1) > 0.5, predicted.reshape(len(truth), -1) > 0.5  # booleans or 0/1
    return float(2 * np.sum(t & p) / (np.sum(t) + np.sum(p)))


mask_float = model.predict(x_test, verbose=0) > 0.5
print(f"float U-Net: {model.count_params()} parameters, Dice on the test images {dice(y_test, mask_float):.3f}")

# %% [markdown]
# ## Quantisation and the streaming architecture
#
# Quantisation-aware training rebuilds the network in QKeras with **8-bit** weights and ReLU outputs (each
# layer's integer bits chosen from the range its values take) and trains it on, so that it adapts to the
# fixed-point grid. The `Concatenate` and pooling layers compute nothing that needs rounding: they move
# values.
#
# A 32 x 32 image has 1024 pixels: a fully parallel design would replicate every convolution 1024 times.
# `io="stream"` instead takes **one pixel (all its channels) per clock**. Each convolution keeps the last two
# image rows in a line buffer and applies one multiplier-free core (a graph of shifted additions) per pixel;
# pooling and up-sampling change the rate; each skip connection holds the encoder's pixels in a FIFO until
# the decoder needs them, and the tool sizes every FIFO from the graph.
#
# Verification streams images through the design in GHDL and compares every output pixel with the golden
# model and with QKeras; it measures the latency and the initiation interval (clocks between two images) and
# runs cocotb tests of the handshake.

# %%
run = mc.compress(
    model,
    OUT,
    io="stream",
    qat=True,
    bits=8,
    epochs=4,  # QAT fine-tuning epochs
    data=(x_train, y_train, x_test, y_test),
    simulate=24,  # verification images; the 80 test images go through GHDL as well
)
print(run.summary())
assert run.passed, "the hardware does not match the golden model: see the report"

# %% [markdown]
# ## Dice of the float model and of the hardware
#
# `run.test_outputs()` holds, for every test image, the output of the float model as trained above
# (`float`), of the golden model (`compressed`) and of the VHDL design run in GHDL (`vhdl`). A pixel is
# lesion where its output is above 0.5. The report's accuracy is the mean squared error of each.

# %%
outs = run.test_outputs()
mask_float = outs["float"].reshape(y_test.shape) > 0.5
mask_hw = outs["vhdl"].reshape(y_test.shape) > 0.5
dice_float, dice_hw = dice(y_test, mask_float), dice(y_test, mask_hw)
print(f"Dice: float {dice_float:.3f}, hardware {dice_hw:.3f}")
print(f"pixels where the hardware's mask differs from the float model's: {np.mean(mask_float != mask_hw):.2%}")
assert np.array_equal(outs["compressed"], outs["vhdl"])  # the hardware is the golden model, bit for bit

# %%
show = [0, 1, 2, 3]
fig, axes = plt.subplots(len(show), 4, figsize=(8, 2.1 * len(show)))
for row, k in zip(axes, show, strict=True):
    for ax, image, title in zip(
        row,
        (x_test[k], y_test[k], mask_float[k], mask_hw[k]),
        ("input", "target", "float mask", "hardware mask"),
        strict=True,
    ):
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
fig.suptitle(f"test images: Dice float {dice_float:.3f}, hardware {dice_hw:.3f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What the hardware costs
#
# The **initiation interval** is the number of clocks between two images in steady state: about one per
# pixel. The **latency** is the number of clocks from an image's first pixel in to its last mask pixel out.
# Both were measured by the bench and agree with what the design states. Adders and register bits count the
# multiplier-free cores and their pipelines; `synth=True` adds LUTs, flip-flops and Fmax from yosys and
# nextpnr (several minutes on this design).

# %%
hw = run.hardware
print(f"architecture: {hw['io']['architecture']} ({hw['io']['chosen_by']})")
print(f"latency {hw['latency_cycles']} clocks, initiation interval {hw['initiation_interval']} clocks per image "
      f"of 1024 pixels: {1e6 / (hw['initiation_interval'] * hw['clock_period_ns']):.0f} thousand images per "
      f"second at {hw['clock_period_ns']} ns per clock")  # fmt: skip
print("measured by the bench:", run.verification["timing"]["measured"])
print(f"{hw['adders']} adders, {hw['register_bits']} register bits")

# %% [markdown]
# ## The verdict

# %%
assert run.passed
print(f"{run.outdir}: BIT-EXACT on {run.verification['samples']} verification images and the "
      f"{len(x_test)} test images; Dice float {dice_float:.3f}, hardware {dice_hw:.3f}; "
      f"report: {run.outdir / 'report.html'}")  # fmt: skip
print(f"notebook time: {time.perf_counter() - started:.0f} s")
