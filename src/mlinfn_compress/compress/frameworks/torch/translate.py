"""The calls of a PyTorch model translated into IR nodes: values, layouts and the operations that move data.

PyTorch keeps tensors channels first, (C, L) or (C, H, W); the IR keeps them
channels last.  Every torch value is tracked as a ``Value``: the IR tensor
holding it and where each of its elements lies in that tensor.  Operations
over windows and channels take their input channels last; a flatten only
records the order, which the next Linear absorbs by permuting its weight
rows, so no data moves; where an order cannot be absorbed a ``Transpose``
node moves it.  The arithmetic layers are in ``layers.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.frameworks.torch.trace import SUPPORTED, Call, Shape, Traced
from mlinfn_compress.compress.ir import (
    INPUT,
    Add,
    Concat,
    Crop,
    Graph,
    IRError,
    Maximum,
    Merge,
    Minimum,
    Node,
    Pad,
    Reshape,
    Transpose,
    UniqueNames,
    Upsample,
)
from mlinfn_compress.compress.passes.batchnorm import fold_batchnorm
from mlinfn_compress.errors import UnsupportedLayer

FINAL_ACTIVATIONS = ("softmax", "sigmoid")


def channels_last(cf: Shape) -> Shape:
    """The IR's shape of a channels-first torch shape: (C, L) -> (L, C), (C, H, W) -> (H, W, C)."""
    return (*cf[1:], cf[0])


def natural_order(cf: Shape) -> np.ndarray:
    """For each element of the channels-last tensor (row-major), its flat index in the channels-first one."""
    n = len(cf)
    return np.arange(math.prod(cf)).reshape(cf).transpose(*range(1, n), 0).ravel()


@dataclass(eq=False)
class Value:
    """A torch tensor (without batch axis) and the IR tensor holding its elements.

    ``order[j]`` is the torch (row-major) index of the IR tensor's flat element j;
    None when both orders agree.  ``cf`` names the channels-first shape whose
    channels-last transposition ``order`` is, when it is one.
    """

    tensor: str
    shape: Shape
    order: np.ndarray | None = None
    cf: Shape | None = None
    frac: int | None = None  # fractional bits of the Brevitas scale of this value, when known

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def same_order(self, other: Value) -> bool:
        a = self.order if self.order is not None else np.arange(self.size)
        b = other.order if other.order is not None else np.arange(other.size)
        return a.shape == b.shape and bool(np.all(a == b))


class Translator:
    """Builds the IR graph from the calls, one value at a time."""

    def __init__(self, path: Path, traced: Traced, shapes: dict[str, Shape]) -> None:
        self.path = path
        self.traced = traced
        self.shapes = shapes  # torch shape of every value, from the probe
        self.nodes: list[Node] = []
        self.ir_shapes: dict[str, Shape] = {}
        self.names = UniqueNames({INPUT})
        self.values: dict[str, Value] = {}
        self.cache: dict[tuple[str, str, Shape], str] = {}
        self.exact = True  # every format comes from the model
        self.brevitas = False
        self.parameters = 0
        self.call: Call | None = None  # the call being translated
        self._final_kind = ""

    # ---- messages ----

    def where(self, call: Call | None = None) -> str:
        call = call or self.call
        assert call is not None
        what = "module" if call.is_module else "operation"
        return f"{self.path.name}: {what} '{call.name}' ({call.cls})"

    def reject(self, what: str = "is not supported", call: Call | None = None) -> UnsupportedLayer:
        return UnsupportedLayer(f"{self.where(call)} {what}; supported: {SUPPORTED}")

    # ---- building ----

    def add(self, node: Node, base: str | None = None) -> str:
        """Append ``node`` (named uniquely after ``base`` or its own name); returns its tensor's name."""
        raw = (base or (self.call.name if self.call is not None else node.name)).replace(".", "_")
        node.name = self.names(raw if raw[:1].isalpha() else f"layer_{raw}")
        try:
            node.check_arity()
            node.shape = tuple(int(s) for s in node.infer_shape([self.ir_shapes[i] for i in node.inputs]))
        except IRError as e:
            raise UnsupportedLayer(f"{self.where()} cannot be translated: {e}") from e
        self.nodes.append(node)
        self.ir_shapes[node.name] = node.shape
        return node.name

    # ---- layouts ----

    def reshape(self, tensor: str, shape: Shape, label: str = "reshape") -> str:
        """``tensor`` with the IR shape ``shape`` (same row-major order); no node when it has it already."""
        if self.ir_shapes[tensor] == tuple(shape):
            return tensor
        key = (tensor, "reshape", tuple(shape))
        if key not in self.cache:
            node = Reshape(name="", inputs=[tensor], target=tuple(shape), label=label, source="view")
            self.cache[key] = self.add(node, f"{tensor}_{label}")
        return self.cache[key]

    def transpose(self, tensor: str, axes: tuple[int, ...]) -> str:
        key = (tensor, "transpose", axes)
        if key not in self.cache:
            node = Transpose(name="", inputs=[tensor], axes=axes, source="channels-first order")
            self.cache[key] = self.add(node, f"{tensor}_transpose")
        return self.cache[key]

    def flat(self, v: Value) -> Value:
        """``v`` held in a 1-D IR tensor (its order kept, for a Linear to absorb)."""
        return Value(self.reshape(v.tensor, (v.size,), "flatten"), v.shape, v.order, v.cf, v.frac)

    def plain(self, v: Value) -> Value:
        """``v`` in torch's own order and shape: IR shape == torch shape, no reordering."""
        if v.order is None or v.same_order(Value("", v.shape)):
            return Value(self.reshape(v.tensor, v.shape), v.shape, None, None, v.frac)
        if v.cf is None:
            raise self.reject(f"needs its input in torch's order, and the input's elements were concatenated "
                              f"from differently ordered tensors; its shape {v.shape}")  # fmt: skip
        n = len(v.cf)
        t = self.transpose(self.reshape(v.tensor, channels_last(v.cf)), (n - 1, *range(n - 1)))
        return Value(self.reshape(t, v.shape), v.shape, None, None, v.frac)

    def natural(self, v: Value) -> Value:
        """``v`` (of shape (C, *spatial)) channels last: IR shape (*spatial, C)."""
        if len(v.shape) < 2:
            raise self.reject(f"needs an input with channels and 1 or 2 spatial axes, got shape {v.shape}")
        want = natural_order(v.shape)
        if v.same_order(Value("", v.shape, want)):
            return Value(self.reshape(v.tensor, channels_last(v.shape)), v.shape, want, v.shape, v.frac)
        p = self.plain(v)
        n = len(v.shape)
        t = self.transpose(p.tensor, (*range(1, n), 0))
        return Value(t, v.shape, want, v.shape, v.frac)

    def spatial_dims(self, v: Value, dims: int | None = None) -> int:
        """The number of spatial axes of a (C, *spatial) value (checked against ``dims`` when given)."""
        n = len(v.shape) - 1
        if n not in (1, 2) or (dims is not None and n != dims):
            want = f"{dims} spatial axes" if dims is not None else "1 or 2 spatial axes"
            raise self.reject(f"needs an input (channels, {want}); got shape {v.shape}")
        return n

    def out_value(self, v: Value, tensor: str, shape: Shape | None = None, frac: int | None = None) -> Value:
        """The value of an operation keeping ``v``'s layout, held in ``tensor``."""
        return Value(tensor, shape or v.shape, v.order, v.cf, frac)

    def natural_value(self, tensor: str, frac: int | None = None) -> Value:
        """A channels-last IR tensor as the channels-first torch value it holds."""
        cf = channels_last_inverse(self.ir_shapes[tensor])
        return Value(tensor, cf, natural_order(cf), cf, frac)

    # ---- the walk ----

    def input_value(self, shape: Shape) -> Value:
        """The model's input; channels last when its first layers work over channels or windows."""
        if len(shape) >= 2 and not self._only_linear_reads_input():
            self.ir_shapes[INPUT] = channels_last(shape)
            return Value(INPUT, shape, natural_order(shape), shape)
        self.ir_shapes[INPUT] = shape
        return Value(INPUT, shape)

    def _only_linear_reads_input(self) -> bool:
        """Whether every first non-element-wise reader of the input is a Linear (over its last axis)."""
        from mlinfn_compress.compress.frameworks.torch.trace import ELEMENTWISE

        seen, first = {self.traced.input}, set()
        for call in self.traced.calls:
            if any(i in seen for i in call.inputs):
                if call.kind in ELEMENTWISE:
                    seen.add(call.out)
                elif call.kind != "meta":  # x.size(0) reads no data
                    first.add(call.kind)
        return first == {"linear"}

    def run(self, handlers: dict[str, Callable[[Translator, Call, list[Value]], Value]]) -> tuple[Value, str | None]:
        """Translate every call; returns the output value and the final activation removed (or None)."""
        tr = self.traced
        final, out_name = self._final_activation()
        for call in tr.calls:
            self.call = call
            if call.out == final:
                continue
            if call.kind == "meta":
                if call.out in self.shapes:  # indexing or slicing a tensor
                    raise self.reject()
                continue  # a size or shape: read by views, which take their shape from the probe
            tensors = [i for i in call.inputs if i in self.values]
            if len(tensors) != len(call.inputs) and call.kind != "reshape" or not tensors:
                raise self.reject("computes with sizes or values that are not tensors of the network")
            handler = handlers.get(call.kind)
            if handler is None:
                if call.kind == "softmax":
                    raise self.reject("is only supported as the model's last operation (over dim 1)")
                raise self.reject()
            value = handler(self, call, [self.values[i] for i in tensors[: 1 if call.kind == "reshape" else None]])
            self._check(call, value)
            self.values[call.out] = value
        self.call = None
        if out_name not in self.values:
            raise UnsupportedLayer(f"{self.path.name}: the model returns its input unchanged; nothing to translate")
        return self.values[out_name], (None if final is None else self._final_kind)

    def _final_activation(self) -> tuple[str | None, str]:
        """(the final softmax / sigmoid call's value, the value the network returns before it)."""
        tr = self.traced
        by_out = {c.out: c for c in tr.calls}
        out = tr.output
        while out in by_out and by_out[out].kind == "identity":
            out = by_out[out].inputs[0]
        last = by_out.get(out)
        self._final_kind = ""
        if last is None or last.kind not in FINAL_ACTIVATIONS:
            return None, tr.output
        if last.kind == "softmax":
            dim = last.param("dim", last.params.get("arg1"))
            if dim not in (None, 1, -1) or len(self.shapes.get(last.inputs[0], ())) != 1:
                self.call = last
                raise self.reject("over a dim other than the features of a flat output is not supported (use dim=1)")
        self._final_kind = last.kind
        return last.out, last.inputs[0]

    def _check(self, call: Call, v: Value) -> None:
        """The translated value has torch's shape (from the probe) and fits its IR tensor."""
        want = self.shapes.get(call.out)
        if want is not None and v.shape != want:
            raise UnsupportedLayer(f"{self.where(call)}: translated to shape {v.shape}, but torch computes {want}")
        if math.prod(self.ir_shapes[v.tensor]) != v.size:
            raise UnsupportedLayer(f"{self.where(call)}: its IR tensor does not hold its {v.size} elements")

    def output(self, v: Value) -> tuple[Value, np.ndarray | None]:
        """The network's output tensor: torch's own shape, channels last, or flat; and its order."""
        if v.order is None:
            v = Value(self.reshape(v.tensor, v.shape), v.shape, None, None, v.frac)
        elif v.cf == v.shape:
            v = Value(self.reshape(v.tensor, channels_last(v.shape)), v.shape, v.order, v.cf, v.frac)
        else:
            v = self.flat(v)
        if v.tensor == INPUT:
            raise UnsupportedLayer(f"{self.path.name}: the model returns its input unchanged; nothing to translate")
        return v, v.order

    def graph(self, name: str, framework: str, input_shape: Shape, output: str, final: str | None) -> Graph:
        g = Graph(
            name=name,
            framework=framework,
            source_path=str(self.path),
            input_shape=input_shape,
            nodes=self.nodes,
            output_name=output,
            output_activation=final,
            parameters=self.parameters,
        )
        g.prune_unused()
        g.infer_shapes()
        fold_batchnorm(g)
        return g


def check_supported(path: Path, traced: Traced, handlers: dict[str, Any]) -> None:
    """UnsupportedLayer naming the first call no handler translates."""
    for call in traced.calls:
        if call.kind not in handlers and call.kind not in ("softmax", "meta"):
            what = "module" if call.is_module else "operation"
            raise UnsupportedLayer(
                f"{path.name}: {what} '{call.name}' ({call.cls}) is not supported; supported: {SUPPORTED}"
            )


def channels_last_inverse(shape: Shape) -> Shape:
    return (shape[-1], *shape[:-1])


# ---- operations that move data ----


def identity(tr: Translator, call: Call, xs: list[Value]) -> Value:
    return xs[0]


def reshape(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """view / reshape / flatten: the elements keep their order; the shape comes from the probe."""
    (v,) = xs
    return Value(v.tensor, tr.shapes[call.out], v.order, v.cf, v.frac)


# torch kind -> the IR merge, its verb, what a call the translation refuses does, and what it supports
MERGES: dict[str, tuple[type[Merge], str, str, str]] = {
    "add": (Add, "adds", "adds a constant or scales a term", "the sum"),
    "maximum": (Maximum, "compares", "compares with a constant", "the maximum"),
    "minimum": (Minimum, "compares", "compares with a constant", "the minimum"),
}


def merge(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """torch.add, torch.maximum, torch.minimum (and ``+``) of two tensors of one shape."""
    node_class, verb, refused, supported = MERGES[call.kind]
    extra = {k: v for k, v in call.params.items() if (k, v) not in (("alpha", 1), ("out", None))}
    if len(xs) != 2 or extra:
        raise tr.reject(f"{refused}; only {supported} of two tensors of one shape is supported")
    a, b = xs
    if a.shape != b.shape:
        raise tr.reject(f"{verb} tensors of shapes {a.shape} and {b.shape}; broadcasting is not supported")
    if not (a.same_order(b) and tr.ir_shapes[a.tensor] == tr.ir_shapes[b.tensor]):
        a, b = (tr.natural(a), tr.natural(b)) if len(a.shape) >= 2 else (tr.plain(a), tr.plain(b))
    frac = a.frac if a.frac == b.frac else None
    node = node_class(name="", inputs=[a.tensor, b.tensor], source=call.cls)
    return tr.out_value(a, tr.add(node, call.name), frac=frac)


def cat(tr: Translator, call: Call, xs: list[Value]) -> Value:
    rank = len(xs[0].shape)
    dim = call.params.get("dim", call.params.get("arg1", 0))
    d = dim + rank + 1 if dim < 0 else dim
    if d == 0 or any(len(v.shape) != rank for v in xs):
        raise tr.reject("concatenates along the batch axis or tensors of different ranks")
    frac = xs[0].frac if all(v.frac == xs[0].frac for v in xs) else None
    if rank == 1:  # flat vectors: the orders concatenate too
        parts = [tr.flat(v) for v in xs]
        offsets = np.cumsum([0] + [v.size for v in parts[:-1]])
        orders = [(v.order if v.order is not None else np.arange(v.size)) + o
                  for v, o in zip(parts, offsets, strict=True)]  # fmt: skip
        node = Concat(name="", inputs=[v.tensor for v in parts], axis=-1, source=call.cls)
        order = np.concatenate(orders)
        shape = (sum(v.size for v in parts),)
        same = bool(np.all(order == np.arange(len(order))))
        return Value(tr.add(node, call.name), shape, None if same else order, None, frac)
    parts = [tr.natural(v) for v in xs]
    axis = -1 if d == 1 else d - 2  # channels, or a spatial axis
    node = Concat(name="", inputs=[v.tensor for v in parts], axis=axis, source=call.cls)
    return tr.natural_value(tr.add(node, call.name), frac)


def pad(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """Zero padding of the spatial axes (negative amounts crop)."""
    (v,) = xs
    value = call.param("value", 0.0)
    mode = call.params.get("mode", "constant")
    if mode != "constant" or (value or 0.0) != 0.0:
        raise tr.reject(f"pads with mode {mode!r} and value {value}; only zero padding is supported")
    dims = tr.spatial_dims(v)
    amounts = call.param("padding") if call.is_module else call.params.get("pad", call.params.get("arg1"))
    amounts = (amounts,) * (2 * dims) if isinstance(amounts, int) else tuple(int(p) for p in amounts)
    if len(amounts) > 2 * dims or len(amounts) % 2:
        raise tr.reject(f"pads {amounts}: only the {dims} spatial axes can be padded")
    amounts = amounts + (0,) * (2 * dims - len(amounts))
    # torch lists (before, after) from the last axis backwards
    pairs = tuple((amounts[2 * i], amounts[2 * i + 1]) for i in reversed(range(dims)))
    x = tr.natural(v)
    t = x.tensor
    if any(a > 0 or b > 0 for a, b in pairs):
        grow = tuple((max(a, 0), max(b, 0)) for a, b in pairs)
        t = tr.add(Pad(name="", inputs=[t], pads=grow, source=call.cls), call.name)
    if any(a < 0 or b < 0 for a, b in pairs):
        cut = tuple((max(-a, 0), max(-b, 0)) for a, b in pairs)
        t = tr.add(Crop(name="", inputs=[t], crops=cut, source=call.cls), f"{call.name}_crop")
    return tr.natural_value(t, v.frac)


def interpolate(tr: Translator, call: Call, xs: list[Value]) -> Value:
    """Nearest-neighbour up-sampling by integer factors."""
    (v,) = xs
    mode = call.param("mode", "nearest")
    if call.kind == "interpolate" and call.cls == "upsample_nearest":
        mode = "nearest"
    if mode not in ("nearest", "nearest-exact"):
        raise tr.reject(f"up-samples with mode {mode!r}; only mode='nearest' is supported")
    dims = tr.spatial_dims(v)
    out = tr.shapes[call.out]
    factors = tuple(o // i for o, i in zip(out[1:], v.shape[1:], strict=True))
    if any(f < 1 or f * i != o for f, i, o in zip(factors, v.shape[1:], out[1:], strict=True)) or len(factors) != dims:
        raise tr.reject(f"resizes {v.shape} to {out}; only integer up-sampling factors are supported")
    x = tr.natural(v)
    node = Upsample(name="", inputs=[x.tensor], factors=factors, source=call.cls)
    return tr.natural_value(tr.add(node), v.frac)


STRUCTURAL = {
    "identity": identity,
    "reshape": reshape,
    **dict.fromkeys(MERGES, merge),
    "cat": cat,
    "pad": pad,
    "interpolate": interpolate,
}
