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
# # BondMachine: trading area for latency with small shared cores
#
# A fully parallel design (the **dataflow** architecture, the default) gives every weight its own hardware:
# a new jet enters at every clock, and the whole network is on the chip at once. That is what a Level-1
# trigger needs, and it is also the most expensive way to build a network. **BondMachine**, developed at
# INFN, compiles a network into many tiny processors instead, each trimmed to the operations its program
# uses, joined by point-to-point links ("bonds") with valid/received handshakes.
#
# `arch="bondmachine"` (the command's `--arch bondmachine`) builds that kind of design in VHDL:
#
# - each dense layer becomes a set of small **cores**: one multiply-accumulate unit each, with a weight ROM
#   that holds only the non-zero weights of the neurons the core serves, and only as wide as they need;
# - a core serves `reuse` (R) neurons in turn: larger R, fewer cores (less area), more clocks per jet;
# - layers are joined by **handshakes**, so any layer can stall and no value is lost.
#
# This tutorial builds the jet tagger of the first tutorial once as a dataflow design and then as
# BondMachine-style designs at several R, verifies every one of them bit for bit, plots the trade-off, and
# finally writes the network in the format BondMachine's own toolchain (`neuralbond`) reads.

# %%
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import mlinfn_compress as mc
from mlinfn_compress import datasets

keras = mc.tf_keras()  # tf_keras (Keras 2 objects, as QKeras needs), TensorFlow started quietly
import tensorflow as tf  # started by the line above

keras.utils.set_random_seed(0)
tf.config.experimental.enable_op_determinism()
OUT = Path("out") / "bondmachine"
started = time.perf_counter()

# %% [markdown]
# ## The tagger as a dataflow design
#
# The 16-64-32-32-5 tagger on the hls4ml LHC jet features (or, offline, on the synthetic stand-in
# `datasets.synthetic_jets`: the next line says which), pruned by 70 % and trained quantisation-aware with
# 6-bit weights and activations, exactly as in the jet-tagging tutorial, and emitted as the dataflow design.

# %%
data = datasets.jets(n=10_000)
print("data:", data.source)
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
model.fit(data.x_train, data.y_train, epochs=6, batch_size=256, verbose=0)

dataflow = mc.compress(
    model,
    OUT / "dataflow",
    prune=0.7,
    qat=True,
    bits=6,
    epochs=5,
    data=(data.x_train, data.y_train, data.x_test, data.y_test),
    simulate=500,
)
assert dataflow.passed
print(dataflow.summary())

# %% [markdown]
# Now the same compression with `arch="bondmachine"` at several R. Pruning and QAT are seeded (`seed=0`, the
# default), so every run trains the same network from the same float model: every design below computes
# exactly the same integers, and their costs compare fairly.

# %%
COMPRESSION = dict(prune=0.7, qat=True, bits=6, epochs=5, data=(data.x_train, data.y_train, data.x_test, data.y_test))
REUSE = (1, 2, 4, 8, 16)
designs = {}
for r in REUSE:
    designs[r] = mc.compress(model, OUT / f"bondmachine_r{r}", arch="bondmachine", reuse=r, simulate=300, **COMPRESSION)
    hw = designs[r].hardware
    print(f"R = {r:>2}: {hw['cores']:>3} cores, latency {hw['latency_cycles']:>4} cycles, "
          f"a new jet every {hw['initiation_interval']:>3} cycles, verified: {designs[r].passed}")  # fmt: skip
    assert designs[r].passed

# %% [markdown]
# Each run was verified like every design of the toolkit: the GHDL test bench fed every verification input
# through the handshakes and compared every output with the golden model (0 mismatches), and cocotb drove the
# design with gaps in `in_valid` and `out_ready` held low at random, checking that no jet is lost,
# duplicated or reordered. The latency and initiation interval printed above are the ones the bench
# measured, equal to those the design states.
#
# And the designs compute the same thing: on the test jets, the hardware outputs of every R equal the
# dataflow design's, integer for integer.

# %%
reference = mc.simulate(dataflow.outdir, data.x_test[:300])
for r, run in designs.items():
    assert np.array_equal(mc.simulate(run.outdir, data.x_test[:300]), reference), r
print("all designs agree on", len(reference), "test jets")

# %% [markdown]
# ## The trade-off
#
# A core is one multiplier (which synthesis may map onto one DSP block) and a small ROM. The dataflow
# design instead has one adder graph per layer with no multiplier at all, but it is much larger: every
# non-zero weight is wired in. Latency (clocks from a jet in to its tag out) and the initiation interval
# (clocks between two jets) grow with R, roughly as the number of weights each core must go through.

# %%
cores = [designs[r].hardware["cores"] for r in REUSE]
latency = [designs[r].hardware["latency_cycles"] for r in REUSE]
interval = [designs[r].hardware["initiation_interval"] for r in REUSE]
rom = [sum(sum(row.get("rom_entries", [])) for row in designs[r].layers) for r in REUSE]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(REUSE, cores, "o-", label="cores (multipliers)")
ax1.set_xscale("log", base=2)
ax1.set_xlabel("reuse R (neurons per core)")
ax1.set_ylabel("cores")
ax1.set_title("area: cores fall as 1/R")
ax1.grid(True, alpha=0.3)
ax2.plot(REUSE, latency, "o-", label="latency")
ax2.plot(REUSE, interval, "s--", label="initiation interval")
ax2.axhline(dataflow.hardware["latency_cycles"], color="grey", ls=":", label="dataflow latency")
ax2.set_xscale("log", base=2)
ax2.set_yscale("log")
ax2.set_xlabel("reuse R (neurons per core)")
ax2.set_ylabel("clock cycles")
ax2.set_title("time: latency and interval grow with R")
ax2.grid(True, which="both", alpha=0.3)
ax2.legend()
plt.show()

print(f"{'design':<16}{'cores':>6}{'ROM words':>10}{'latency':>9}{'II':>6}")
hw = dataflow.hardware
print(f"{'dataflow':<16}{'-':>6}{'-':>10}{hw['latency_cycles']:>9}{hw['initiation_interval']:>6}"
      f"   ({hw['adders']} adders, {hw['register_bits']} register bits, no multiplier)")  # fmt: skip
for r, c, w, lat, ii in zip(REUSE, cores, rom, latency, interval, strict=True):
    print(f"{'bondmachine R=' + str(r):<16}{c:>6}{w:>10}{lat:>9}{ii:>6}")

# %% [markdown]
# The ROM words are the same for every R: each non-zero weight is stored once, in the core of its neuron.
# What R changes is how many cores share them out.
#
# LUTs, flip-flops and DSPs come from synthesis: `synth=True` (the command's `--synth`) runs `ghdl --synth`,
# yosys and nextpnr, several minutes per design for this tagger, so it is off here. BENCHMARKS.md in the
# repository has the measured curve (LUT, FF, DSP, latency, II for R = 1 to 16 against the dataflow design).

# %% [markdown]
# ## Export for the BondMachine toolchain
#
# BondMachine's own flow starts from a model description read by its `neuralbond` tool. `target="bondmachine"`
# writes the quantised network in that format (`modelBM.json`: nodes with their layer, position, type and
# bias; weights with their layer, positions and value), the fixed-point formats beside it, and a README
# saying how to build it with the BondMachine toolchain (which is not installed here: nothing of it is run).
# The export is read back and every value compared with the quantised network.
# Zero weights are left out; the final softmax becomes a `softmax` layer joined to the last dense layer by
# weights of 1, and an `output` layer closes the network: hence a few more weights than the ROM words above.

# %%
export = mc.compress(model, OUT / "export", target="bondmachine", simulate=300, **COMPRESSION)
assert export.passed
files = sorted(p.relative_to(export.outdir) for p in (export.outdir / "bondmachine").rglob("*") if p.is_file())
print("written:", *files, sep="\n  ")
bm = json.loads(next((export.outdir / "bondmachine").rglob("modelBM.json")).read_text())
print(f"{len(bm['Nodes'])} nodes and {len(bm['Weights'])} weights; the first weight: {bm['Weights'][0]}")

# %% [markdown]
# ## The verdict

# %%
runs = {"dataflow": dataflow, **{f"bondmachine R={r}": run for r, run in designs.items()}, "export": export}
for name, run in runs.items():
    print(f"{name:<18} {'BIT-EXACT' if run.passed else 'MISMATCH'}  ({run.outdir})")
assert all(run.passed for run in runs.values())
print(f"notebook time: {time.perf_counter() - started:.0f} s")
