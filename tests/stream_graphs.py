"""Hand-built networks for the streaming architecture's tests and benchmark (small random weights)."""

from __future__ import annotations

import numpy as np

from mlinfn_compress.compress.ir import Clip, Concat, Graph, Linear, Node, Pool, Reshape, Upsample, Window


def conv(
    name: str,
    src: str,
    rng: np.random.Generator,
    k: int,
    c_in: int,
    c_out: int,
    dims: int = 2,
    stride: int = 1,
    pad: int | None = None,
) -> Linear:
    """A convolution; ``pad`` None: "same" padding for stride 1 (k // 2 on each side)."""
    p = k // 2 if pad is None else pad
    window = Window((k,) * dims, (stride,) * dims, ((p, p),) * dims)
    return Linear(name=name, inputs=[src], weight=rng.normal(0, 1.0 / np.sqrt(k**dims * c_in), (k**dims * c_in, c_out)),
                  bias=rng.normal(0, 0.1, c_out), window=window, label=f"conv{dims}d")  # fmt: skip


def pool(name: str, src: str, k: int, dims: int = 2, mode: str = "max") -> Pool:
    return Pool(name=name, inputs=[src], mode=mode, window=Window((k,) * dims, (k,) * dims, ((0, 0),) * dims))


def unet_graph(rng: np.random.Generator, size: int = 8, channels: int = 1, width: int = 4, classes: int = 2) -> Graph:
    """A two-level U-Net: conv, pool, conv, pool, conv, up-sample, concatenate, conv, up-sample,
    concatenate, a 1x1 convolution to ``classes`` maps."""
    w = width
    nodes: list[Node] = [
        conv("c1", "input", rng, 3, channels, w), Clip(name="r1", inputs=["c1"]),
        pool("p1", "r1", 2),
        conv("c2", "p1", rng, 3, w, 2 * w), Clip(name="r2", inputs=["c2"]),
        pool("p2", "r2", 2),
        conv("c3", "p2", rng, 3, 2 * w, 2 * w), Clip(name="r3", inputs=["c3"]),
        Upsample(name="u2", inputs=["r3"], factors=(2, 2)),
        Concat(name="cat2", inputs=["u2", "r2"]),
        conv("c4", "cat2", rng, 3, 4 * w, w), Clip(name="r4", inputs=["c4"]),
        Upsample(name="u1", inputs=["r4"], factors=(2, 2)),
        Concat(name="cat1", inputs=["u1", "r1"]),
        conv("c5", "cat1", rng, 1, 2 * w, classes),
    ]  # fmt: skip
    g = Graph("unet", "keras", "hand-built", (size, size, channels), nodes)
    g.infer_shapes()
    return g


def autoencoder_1d(rng: np.random.Generator, length: int = 16, channels: int = 2) -> Graph:
    """A Conv1D autoencoder: conv, pool, conv (stride 2), a dense bottleneck on the flattened code,
    back to a sequence, up-sampling and convolutions to the input's channels."""
    code = length // 4
    nodes: list[Node] = [
        conv("enc1", "input", rng, 3, channels, 4, dims=1), Clip(name="er1", inputs=["enc1"]),
        pool("ep1", "er1", 2, dims=1),
        conv("enc2", "ep1", rng, 3, 4, 4, dims=1, stride=2, pad=1), Clip(name="er2", inputs=["enc2"]),
        Reshape(name="flat", inputs=["er2"], target=(code * 4,), label="flatten"),
        Linear(name="bottleneck", inputs=["flat"], weight=rng.normal(0, 0.3, (code * 4, 8)), bias=np.zeros(8)),
        Linear(name="expand", inputs=["bottleneck"], weight=rng.normal(0, 0.3, (8, code * 4)),
               bias=rng.normal(0, 0.1, code * 4)),
        Reshape(name="unflat", inputs=["expand"], target=(code, 4), label="reshape"),
        Upsample(name="up1", inputs=["unflat"], factors=(2,)),
        conv("dec1", "up1", rng, 3, 4, 4, dims=1), Clip(name="dr1", inputs=["dec1"]),
        Upsample(name="up2", inputs=["dr1"], factors=(2,)),
        conv("dec2", "up2", rng, 3, 4, channels, dims=1),
    ]  # fmt: skip
    g = Graph("autoencoder", "keras", "hand-built", (length, channels), nodes)
    g.infer_shapes()
    return g


def digits_cnn(rng: np.random.Generator) -> Graph:
    """A digits-like CNN on 8x8x1 images: conv 3x3 (8), relu, max-pool 2, conv 3x3 (16), relu,
    max-pool 2, flatten, dense 10 (softmax: the hardware gives logits and the arg-max)."""
    nodes: list[Node] = [
        conv("conv1", "input", rng, 3, 1, 8), Clip(name="relu1", inputs=["conv1"]),
        pool("pool1", "relu1", 2),
        conv("conv2", "pool1", rng, 3, 8, 16), Clip(name="relu2", inputs=["conv2"]),
        pool("pool2", "relu2", 2),
        Reshape(name="flatten", inputs=["pool2"], target=(64,), label="flatten"),
        Linear(name="dense", inputs=["flatten"], weight=rng.normal(0, 0.2, (64, 10)), bias=rng.normal(0, 0.1, 10)),
    ]  # fmt: skip
    g = Graph("digits_cnn", "keras", "hand-built", (8, 8, 1), nodes, output_activation="softmax")
    g.infer_shapes()
    return g
