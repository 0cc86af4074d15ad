"""Random small networks built from every IR operation, for differential testing.

``random_graph(seed)`` draws a graph whose shapes all fit: a flat vector, a
sequence (length x channels) or an image (height x width x channels) goes
through convolutions, pooling, up-sampling, padding, cropping, tables,
clips, side branches joined by a merge (Add, Maximum, Minimum) or
Concatenate, and a flatten into dense layers.  The same seed always gives
the same float graph; quantise it and compare every implementation with the
golden model.  Which merge joins a branch is drawn from a stream of its own,
so a new merge changes only the graphs that have one.
"""

from __future__ import annotations

import math

import numpy as np

from mlinfn_compress.compress.ir import (
    INPUT,
    Add,
    Clip,
    Concat,
    Crop,
    Graph,
    LeakyRelu,
    Linear,
    Maximum,
    Merge,
    Minimum,
    Node,
    Pad,
    Pool,
    Reshape,
    Shape,
    Table,
    Upsample,
    Window,
)

MERGES: tuple[type[Merge], ...] = (Add, Maximum, Minimum)


class _Builder:
    def __init__(self, rng: np.random.Generator, merges: np.random.Generator) -> None:
        self.rng = rng
        self.merges = merges  # which merge joins a same-shape branch
        self.nodes: list[Node] = []
        self.shapes: dict[str, Shape] = {}
        self.count = 0

    def name(self, base: str) -> str:
        self.count += 1
        return f"{base}{self.count}"

    def add(self, node: Node, inputs: list[Shape]) -> str:
        node.shape = node.infer_shape(inputs)
        self.nodes.append(node)
        self.shapes[node.name] = node.shape
        return node.name

    def weights(self, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        w = rng.normal(0.0, 1.0 / math.sqrt(k), (k, n))
        w[rng.random(w.shape) < rng.uniform(0.0, 0.6)] = 0.0
        return w, rng.normal(0.0, 0.2, n)

    def linear(self, src: str, n_out: int, window: Window | None, label: str) -> str:
        shape = self.shapes[src]
        k = shape[-1] * (window.taps if window else 1)
        w, b = self.weights(k, n_out)
        return self.add(
            Linear(name=self.name(label), inputs=[src], weight=w, bias=b, window=window, label=label), [shape]
        )

    def window(self, shape: Shape, max_k: int) -> Window | None:
        """A window that fits the spatial axes of ``shape`` (None if none does)."""
        rng = self.rng
        spatial = shape[:-1]
        k = int(rng.integers(1, max_k + 1))
        s = int(rng.integers(1, 3))
        same = bool(rng.integers(0, 2))
        kernel, strides = (k,) * len(spatial), (s,) * len(spatial)
        pads = Window.same(kernel, strides, spatial) if same else tuple((0, 0) for _ in spatial)
        if any(size + a + b < k for size, (a, b) in zip(spatial, pads, strict=True)):
            return None
        return Window(kernel, strides, pads)

    def elementwise(self, src: str) -> str:
        rng = self.rng
        shape = self.shapes[src]
        choice = int(rng.integers(0, 6))
        if choice == 0:
            return self.add(Clip(name=self.name("relu"), inputs=[src]), [shape])
        if choice == 1:
            return self.add(Clip(name=self.name("relu6"), inputs=[src], lo=0.0, hi=1.5, label="relu6"), [shape])
        if choice == 2:
            node = Clip(name=self.name("hardtanh"), inputs=[src], lo=-1.0, hi=1.0, label="hard_tanh")
            return self.add(node, [shape])
        if choice == 3:
            return self.add(LeakyRelu(name=self.name("leaky"), inputs=[src], alpha=0.1875), [shape])
        function = "tanh" if choice == 4 else "sigmoid"
        return self.add(Table(name=self.name(function), inputs=[src], function=function), [shape])

    def spatial_op(self, src: str) -> str:
        rng = self.rng
        shape = self.shapes[src]
        spatial = shape[:-1]
        choice = int(rng.integers(0, 9))
        if choice in (6, 7):
            choice = 0  # convolutions twice as often
        if choice == 8:
            return self.batchnorm(src)
        if choice <= 1:
            w = self.window(shape, 3)
            if w is not None:
                return self.linear(src, int(rng.integers(1, 4)), w, f"conv{len(spatial)}d")
        if choice == 2:
            w = self.window(shape, 2)
            if w is not None:
                mode = "max" if rng.integers(0, 2) else "avg"
                return self.add(Pool(name=self.name(f"{mode}pool"), inputs=[src], mode=mode, window=w), [shape])
        if choice == 3 and max(spatial) <= 4:
            factors = tuple(int(rng.integers(1, 3)) for _ in spatial)
            return self.add(Upsample(name=self.name("up"), inputs=[src], factors=factors), [shape])
        if choice == 4:
            pads = tuple((int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in spatial)
            return self.add(Pad(name=self.name("pad"), inputs=[src], pads=pads), [shape])
        if choice == 5 and min(spatial) >= 3:
            crops = tuple((int(rng.integers(0, 2)), int(rng.integers(0, 2))) for _ in spatial)
            return self.add(Crop(name=self.name("crop"), inputs=[src], crops=crops), [shape])
        return self.elementwise(src)

    def batchnorm(self, src: str) -> str:
        """A standalone batch norm: a per-channel scale and shift (a diagonal CMVM)."""
        shape = self.shapes[src]
        c = shape[-1]
        w = np.diag(self.rng.uniform(0.5, 1.5, c) * self.rng.choice([-1.0, 1.0], c))
        b = self.rng.normal(0.0, 0.2, c)
        node = Linear(name=self.name("bn"), inputs=[src], weight=w, bias=b, label="batchnorm")
        return self.add(node, [shape])

    def global_pool(self, src: str) -> str:
        shape = self.shapes[src]
        spatial = shape[:-1]
        mode = "max" if self.rng.integers(0, 2) else "avg"
        w = Window(spatial, spatial, tuple((0, 0) for _ in spatial))
        pooled = self.add(
            Pool(name=self.name(f"global{mode}"), inputs=[src], mode=mode, window=w, global_pool=True), [shape]
        )
        return self.add(
            Reshape(name=self.name("flatten"), inputs=[pooled], target=(shape[-1],), label="flatten"),
            [self.shapes[pooled]],
        )

    def branch(self, src: str) -> str:
        """A side branch joined back by a merge (same shape) or Concatenate (along channels)."""
        rng = self.rng
        shape = self.shapes[src]
        if rng.integers(0, 2):
            side = self.linear(src, shape[-1], None, "dense")
            side = self.elementwise(side)
            merge = MERGES[int(self.merges.integers(0, len(MERGES)))]
            node = merge(name=self.name(merge.op), inputs=[src, side])
            return self.add(node, [shape, self.shapes[side]])
        side = self.linear(src, int(rng.integers(1, 3)), None, "dense")
        return self.add(Concat(name=self.name("cat"), inputs=[src, side]), [shape, self.shapes[side]])


def random_graph(seed: int, max_ops: int = 6) -> Graph:
    """A random float graph of at most ``max_ops`` operations before its dense head (same seed, same graph)."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng, np.random.default_rng([seed, 1]))
    rank = int(rng.integers(1, 4))
    if rank == 1:
        input_shape: Shape = (int(rng.integers(2, 9)),)
    elif rank == 2:
        input_shape = (int(rng.integers(3, 9)), int(rng.integers(1, 4)))
    else:
        input_shape = (int(rng.integers(3, 6)), int(rng.integers(3, 6)), int(rng.integers(1, 3)))
    b.shapes[INPUT] = input_shape
    cur = INPUT
    for _ in range(int(rng.integers(1, max_ops + 1))):
        shape = b.shapes[cur]
        pick = rng.random()
        if pick < 0.2:
            cur = b.branch(cur)
        elif len(shape) > 1 and pick < 0.75:
            cur = b.spatial_op(cur)
        elif pick < 0.85 and len(shape) == 1:
            cur = b.linear(cur, int(rng.integers(2, 7)), None, "dense")
        else:
            cur = b.elementwise(cur)
        if math.prod(b.shapes[cur]) > 400:
            break
    if len(b.shapes[cur]) > 1 and rng.random() < 0.3:
        cur = b.global_pool(cur)
    if len(b.shapes[cur]) > 1:
        size = math.prod(b.shapes[cur])
        cur = b.add(Reshape(name=b.name("flatten"), inputs=[cur], target=(size,), label="flatten"), [b.shapes[cur]])
    cur = b.linear(cur, int(rng.integers(2, 6)), None, "dense")
    g = Graph(f"random_{seed}", "keras", f"random graph {seed}", input_shape, b.nodes)
    g.infer_shapes()
    return g
