"""A hand-built graph with every IR operation, shared by the tests of each target and twin."""

from __future__ import annotations

import numpy as np

from mlinfn_compress.compress.ir import (
    Add,
    Clip,
    Concat,
    Crop,
    Graph,
    LeakyRelu,
    Linear,
    Pad,
    Pool,
    Reshape,
    Table,
    Upsample,
    Window,
)

H, W, C = 6, 6, 2


def window(k: int, s: int, pad: int) -> Window:
    return Window((k, k), (s, s), ((pad, pad), (pad, pad)))


def every_op_graph(rng: np.random.Generator) -> Graph:
    """Convolution, pooling, up-sampling, a concatenated skip, an added branch, tables, padding, a dense head."""
    nodes = [
        Linear(name="conv", inputs=["input"], weight=rng.normal(0, 0.5, (9 * C, 4)), bias=rng.normal(0, 0.1, 4),
               window=window(3, 1, 1), label="conv2d"),
        Clip(name="relu", inputs=["conv"]),
        Pool(name="pool", inputs=["relu"], mode="max", window=window(2, 2, 0)),
        Upsample(name="up", inputs=["pool"], factors=(2, 2)),
        Concat(name="cat", inputs=["up", "relu"]),
        Linear(name="conv2", inputs=["cat"], weight=rng.normal(0, 0.5, (8, 3)), bias=rng.normal(0, 0.1, 3),
               window=window(1, 1, 0), label="conv2d"),
        Linear(name="skip", inputs=["input"], weight=rng.normal(0, 0.5, (C, 3)), bias=np.zeros(3)),
        Add(name="add", inputs=["conv2", "skip"]),
        Pool(name="avg", inputs=["add"], mode="avg", window=window(3, 2, 1)),
        Table(name="tanh", inputs=["avg"], function="tanh"),
        LeakyRelu(name="leaky", inputs=["tanh"], alpha=0.25),
        Clip(name="relu6", inputs=["leaky"], lo=0.0, hi=0.5, label="relu6"),
        Pad(name="pad", inputs=["relu6"], pads=((1, 0), (0, 1))),
        Crop(name="crop", inputs=["pad"], crops=((0, 1), (1, 0))),
        Reshape(name="flat", inputs=["crop"], target=(27,), label="flatten"),
        Linear(name="dense", inputs=["flat"], weight=rng.normal(0, 0.3, (27, 5)), bias=rng.normal(0, 0.1, 5)),
    ]  # fmt: skip
    g = Graph("every_op", "keras", "hand-built", (H, W, C), nodes)
    g.infer_shapes()
    return g
