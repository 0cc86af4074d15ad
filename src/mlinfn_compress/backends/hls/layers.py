"""hls4ml layers for every IR node, with every precision taken from the IR.

``layer_specs(graph)`` turns the quantised graph into hls4ml's layer list
(what its converters produce, ``ModelGraph.from_layer_list`` takes it) and
says, for every hls4ml layer, which precisions it must end up with.  Most
nodes become one layer; some need a few, each of them exact:

* a lookup table (``Table``) is a linear ``Activation`` casting to the index
  type, then a ``UnaryLUT`` whose table is ordered by the index's raw bit
  pattern (hls4ml's ``unary_lut`` indexes by ``x(x.width - 1, 0)``);
* a merge (``Add``, ``Maximum``, ``Minimum``) or ``Concat`` of more than two
  tensors is a chain of two-input layers (the partial results in types that
  hold them exactly);
* a ``Clip`` that is not relu, relu6, relu1 or hard tanh is
  ``hi - relu((hi - lo) - relu(x - lo))``: batch norms of scale +-1 and
  relus, every intermediate value exact, the last batch norm rounding once to
  the node's result type;
* data movement whose result type differs from its input's is a cast, then
  the move.

How hls4ml computes each layer (io_parallel, Latency strategy, checked
against the golden model in its C simulation): a dense or convolution layer
casts every product and the bias to ``accum_t``, adds in ``accum_t`` and
casts the sum to ``result_t``; a batch norm computes ``x * scale + bias``
exactly and casts it to ``result_t``; average pooling adds in ``accum_t``
and divides with ``accum_t /= count`` (truncation toward zero on
``accum_t``'s grid); max pooling returns the largest input through
``accum_t``; the merges, concatenation and the activations cast their exact result
to ``result_t``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlinfn_compress.backends.hls.project import DOUBLE_BITS, INPUT_LAYER, hls_type
from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.ir import (
    INPUT,
    Cast,
    Clip,
    Concat,
    Crop,
    Graph,
    LeakyRelu,
    Linear,
    Merge,
    Node,
    Pad,
    Pool,
    Reshape,
    Softmax,
    Table,
    Transpose,
    UniqueNames,
    Upsample,
)
from mlinfn_compress.compress.ir.dispatch import OpTable
from mlinfn_compress.compress.ir.elementwise import const_int

_RESERVED = {"input", "output_t", "result_t", "input_t", INPUT_LAYER}
# Roles hls4ml reads from a layer's "Precision" configuration; the others are layer attributes "<role>_t".
_PRECISION_ROLES = {"result", "accum", "weight", "bias", "scale", "param", "table"}
IDENTITY = "identity cast (same type in and out): hls4ml removes the linear activation"
NO_OP_RESHAPE = "a reshape moves no data in io_parallel: hls4ml drops it or aliases its input"
ONE = FixedType(2, 2, True)  # holds the batch-norm scales +1 and -1 exactly


class UnsupportedNode(ValueError):
    """A node (or a type of it) that the HLS backend cannot express exactly."""


@dataclass
class LayerSpec:
    """One hls4ml layer: its entry in the layer list, its configuration and the precisions it must keep."""

    name: str
    class_name: str
    ir_node: str
    inputs: list[str]
    precisions: dict[str, FixedType]
    attrs: dict[str, Any] = field(default_factory=dict)
    removable: str | None = None  # why hls4ml may drop the layer without changing the result
    unwritten: tuple[str, ...] = ()  # roles hls4ml's model holds but its C++ never declares (unused by the layer)

    def layer(self) -> dict[str, Any]:
        d: dict[str, Any] = {"class_name": self.class_name, "name": self.name}
        if self.inputs:
            d["inputs"] = list(self.inputs)
        return d | self.attrs

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Precision": {}}
        for role, t in self.precisions.items():
            if role in _PRECISION_ROLES:
                out["Precision"][role] = hls_type(t)
            if role not in ("result", "accum", "weight", "bias") and not role.endswith("_prec"):
                out[f"{role}_t"] = hls_type(t)
        return out


def c_names(graph: Graph) -> tuple[dict[str, str], UniqueNames]:
    """A C identifier for every IR node, unique ignoring case (hls4ml lower-cases names in lookups)."""
    unique = UniqueNames(set(_RESERVED), fold_case=True)
    names = {}
    for node in graph.nodes:
        base = re.sub(r"\W", "_", node.name).strip("_") or "layer"
        names[node.name] = unique(base if base[0].isalpha() else "l_" + base)
    return names, unique


def exact_type(lo: int, hi: int, frac: int) -> FixedType:
    """The smallest type holding every integer in [lo, hi] on the grid 2**-frac (TRN, WRAP: nothing rounds)."""
    return FixedType.for_range(lo, max(hi, 1), frac) if lo >= 0 else FixedType.for_range(lo, hi, frac)


def _check_wrap_free(node: Node, accum: FixedType, magnitude: int) -> None:
    """hls4ml adds terms one by one into ``accum_t``: with a saturating accumulator, partial sums must fit."""
    if accum.overflow != "WRAP" and magnitude > accum.max_int:
        raise UnsupportedNode(f"node '{node.name}': partial sums may overflow {accum}, which saturates")


class _Builder:
    """Walks the graph in order, turning each node into its hls4ml layer(s)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names, self.unique = c_names(graph)
        self.out: dict[str, str] = {INPUT: INPUT_LAYER}  # IR tensor -> the hls4ml layer that computes it
        self.specs: list[LayerSpec] = []

    # ---- helpers ----

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.graph.shape_of(tensor))

    def layer(
        self,
        node: Node,
        class_name: str,
        inputs: list[str],
        precisions: dict[str, FixedType],
        step: str | None = None,
        **kw: Any,
    ) -> str:
        """Append a layer for ``node`` reading hls4ml tensors ``inputs``; returns its name.

        The layer that computes the node's tensor carries the node's name; the
        steps before it (``step`` set) are named after the node and the step.
        """
        name = self.names[node.name] if step is None else self.unique(f"{self.names[node.name]}_{step}")
        removable, unwritten = kw.pop("removable", None), kw.pop("unwritten", ())
        self.specs.append(LayerSpec(name, class_name, node.name, inputs, precisions, kw, removable, unwritten))
        return name

    def cast_to(self, node: Node, src: str, t_in: FixedType, t_out: FixedType, step: str | None) -> str:
        removable = IDENTITY if t_in == t_out else None
        # table_t is unused by a linear activation: set so that no hls4ml default is left in the project.
        return self.layer(
            node, "Activation", [src], {"result": t_out, "table": t_out}, step, activation="linear", removable=removable
        )

    def source(self, node: Node, k: int = 0) -> str:
        return self.out[node.inputs[k]]

    def moved_input(self, node: Node) -> str:
        """The input of a data-movement node, cast first to the node's type when it differs."""
        x_t, res = self.graph.in_type(node), node.result_type
        assert res is not None
        src = self.source(node)
        return src if x_t == res else self.cast_to(node, src, x_t, res, "cast")

    # ---- the nodes ----

    def build(self) -> list[LayerSpec]:
        rules: OpTable[Callable[[Any], None]] = OpTable("the hls4ml writer", {  # each rule takes its node class
            Linear: self.linear,
            Clip: self.clip,
            LeakyRelu: self.leaky_relu,
            Cast: self.cast,
            Table: self.table,
            Pool: self.pool,
            Merge: self.merge,
            Concat: self.concat,
            Reshape: self.reshape,
            Pad: self.pad,
            Crop: self.crop,
            Upsample: self.upsample,
            Transpose: self.transpose,
            Softmax: self.softmax,
        })  # fmt: skip
        for node in self.graph.nodes:
            rule = rules.find(node)
            if rule is None:
                raise UnsupportedNode(f"node '{node.name}': {node.kind} has no hls4ml layer")
            self.check_widths(node)
            rule(node)
            self.out[node.name] = self.specs[-1].name
        return self.specs

    def check_widths(self, node: Node) -> None:
        for role, t in node.types().items():
            if role in ("weight", "bias", "alpha") and t.width > DOUBLE_BITS:
                raise UnsupportedNode(f"node '{node.name}': {role} type {t} is wider than {DOUBLE_BITS} bits")

    def linear(self, node: Linear) -> None:
        assert node.weight_type and node.bias_type and node.accum_type and node.result_type
        assert node.weight_int is not None and node.bias_int is not None
        x_t = self.graph.in_type(node)
        shape = self.shape(node.inputs[0])
        w = to_float(np.asarray(node.weight_int), node.weight_type.frac)
        b = to_float(np.asarray(node.bias_int), node.bias_type.frac)
        lo, hi, mag = node.bounds(x_t)
        if node.label == "batchnorm" and node.window is None and self._diagonal(node):
            if not np.any(b) and np.all(np.diag(w) == 1.0):  # hls4ml removes a batch norm that does nothing
                self.cast_to(node, self.source(node), x_t, node.result_type, None)
                return
            if node.accum_type.min_int <= lo and hi <= node.accum_type.max_int:
                # hls4ml's batch norm computes x * scale + bias exactly: right while the accumulator cannot overflow
                prec = {"scale": node.weight_type, "bias": node.bias_type, "result": node.result_type}
                n = shape[-1]
                self.layer(node, "BatchNormalization", [self.source(node)], prec, n_in=math.prod(shape), n_filt=n,
                           scale_data=np.diag(w).copy(), bias_data=b)  # fmt: skip
                return
        _check_wrap_free(node, node.accum_type, mag)
        prec = {"weight": node.weight_type, "bias": node.bias_type, "accum": node.accum_type}
        prec["result"] = node.result_type
        common: dict[str, Any] = {"weight_quantizer": None, "bias_quantizer": None, "data_format": "channels_last",
                                  "bias_data": b}  # fmt: skip
        if node.window is None and len(shape) == 1:
            self.layer(node, "Dense", [self.source(node)], prec, n_in=node.n_in, n_out=node.n_out, weight_data=w,
                       use_bias=True, **common)  # fmt: skip
            return
        if node.window is None:  # a matrix on the last axis of a 2-D or 3-D tensor: a 1x1 convolution
            dims = len(shape) - 1
            if dims not in (1, 2):
                raise UnsupportedNode(f"node '{node.name}': a dense layer over a {len(shape)}-axis tensor")
            kernel, strides, pads = (1,) * dims, (1,) * dims, ((0, 0),) * dims
        else:
            kernel, strides, pads = node.window.kernel, node.window.strides, node.window.pads
        weights = w.reshape(*kernel, shape[-1], node.n_out)  # rows of the IR matrix: (kernel..., channel)
        attrs = self._window_attrs(shape, node.shape, kernel, strides, pads, "filt")
        attrs.update(n_chan=shape[-1], n_filt=node.n_out, weight_data=weights, **common)
        self.layer(node, f"Conv{len(kernel)}D", [self.source(node)], prec, **attrs)

    @staticmethod
    def _diagonal(node: Linear) -> bool:
        m = np.asarray(node.weight_int)
        return m.shape[0] == m.shape[1] and not np.any(m - np.diag(np.diag(m)))

    @staticmethod
    def _window_attrs(
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        kernel: tuple[int, ...],
        strides: tuple[int, ...],
        pads: tuple[tuple[int, int], ...],
        what: str,
    ) -> dict[str, Any]:
        """hls4ml's window attributes (``filt_width`` or ``pool_width``, strides, paddings, sizes)."""
        axes = ("width",) if len(kernel) == 1 else ("height", "width")
        edges = {"height": ("top", "bottom"), "width": ("left", "right")}
        attrs: dict[str, Any] = {}
        for i, axis in enumerate(axes):
            attrs[f"{what}_{axis}"] = kernel[i]
            attrs[f"stride_{axis}"] = strides[i]
            attrs[f"pad_{edges[axis][0]}"], attrs[f"pad_{edges[axis][1]}"] = pads[i]
            attrs[f"in_{axis}"], attrs[f"out_{axis}"] = in_shape[i], out_shape[i]
        return attrs

    def clip(self, node: Clip) -> None:
        x_t, res = self.graph.in_type(node), node.result_type
        assert res is not None
        src = self.source(node)
        natives: dict[tuple[float | None, float | None], str] = {(0.0, None): "relu", (0.0, 6.0): "relu6",
                                                                 (0.0, 1.0): "relu1"}  # fmt: skip
        native = natives.get((node.lo, node.hi))
        if native:
            self.layer(node, "Activation", [src], {"result": res, "table": res}, activation=native)
            return
        if (node.lo, node.hi) == (-1.0, 1.0):
            # hard_tanh: 2 * clip(x / 2 + 1/2, 0, 1) - 1, exact with slope and shift 1/2
            half = FixedType(1, 0, False)
            prec = {"result": res, "table": res, "slope": half, "shift": half, "slope_prec": half, "shift_prec": half}
            self.layer(node, "HardActivation", [src], prec,
                       activation="hard_tanh", slope=0.5, shift=0.5, slope_prec=_hls4ml_type(half),
                       shift_prec=_hls4ml_type(half), unwritten=("table", "slope_prec", "shift_prec"))  # fmt: skip
            return
        self._clip_chain(node, src, x_t, res)

    def _clip_chain(self, node: Clip, src: str, x_t: FixedType, res: FixedType) -> None:
        """``hi - relu((hi - lo) - relu(x - lo))`` (one bound: ``lo + relu(x - lo)``, ``hi - relu(hi - x)``)."""
        _, _, frac = node.bounds_int(x_t)
        s = frac - x_t.frac
        lo_v, hi_v = x_t.min_int << s, x_t.max_int << s  # the input's range on the clip's grid
        steps: list[tuple[int, int]] = []  # (scale, bias) of each batch norm; a relu follows all but the last
        if node.lo is not None:
            lo = const_int(node.lo, frac)
            steps.append((1, -lo))
            if node.hi is not None:
                steps.append((-1, const_int(node.hi, frac) - lo))
                steps.append((-1, const_int(node.hi, frac)))
            else:
                steps.append((1, lo))
        else:
            assert node.hi is not None
            hi = const_int(node.hi, frac)
            steps += [(-1, hi), (-1, hi)]
        if steps[0] == (1, 0):  # lo = 0: the first step is an identity (hls4ml would remove it)
            steps = steps[1:]
            src = self.layer(node, "Activation", [src], {"result": x_t, "table": x_t}, "relu0", activation="relu")
            lo_v, hi_v = max(lo_v, 0), max(hi_v, 0)
        n = math.prod(self.shape(node.inputs[0]))
        for k, (scale, bias) in enumerate(steps):
            lo_v, hi_v = sorted((scale * lo_v + bias, scale * hi_v + bias))
            last = k == len(steps) - 1
            out_t = res if last else exact_type(lo_v, hi_v, frac)
            prec = {"scale": ONE, "bias": exact_type(min(bias, 0), max(bias, 0), frac), "result": out_t}
            src = self.layer(node, "BatchNormalization", [src], prec, None if last else f"affine{k + 1}", n_in=n,
                             n_filt=-1, scale_data=np.full(n, float(scale)),
                             bias_data=np.full(n, math.ldexp(bias, -frac)))  # fmt: skip
            if not last:
                lo_v, hi_v = max(lo_v, 0), max(hi_v, 0)
                t = exact_type(lo_v, hi_v, frac)
                relu = {"result": t, "table": t}
                src = self.layer(node, "Activation", [src], relu, f"relu{k + 1}", activation="relu")

    def leaky_relu(self, node: LeakyRelu) -> None:
        assert node.alpha_type is not None and node.alpha_int is not None and node.result_type is not None
        if node.alpha_type.frac < 0:
            raise UnsupportedNode(f"node '{node.name}': alpha type {node.alpha_type} needs fractional bits >= 0")
        alpha = math.ldexp(int(node.alpha_int), -node.alpha_type.frac)
        prec = {"param": node.alpha_type, "result": node.result_type, "table": node.result_type}
        self.layer(node, "LeakyReLU", [self.source(node)], prec, activation="leaky_relu", activ_param=alpha)

    def cast(self, node: Cast) -> None:
        assert node.result_type is not None
        self.cast_to(node, self.source(node), self.graph.in_type(node), node.result_type, None)

    def table(self, node: Table) -> None:
        assert node.index_type is not None and node.table_int is not None and node.result_type is not None
        idx = node.index_type
        if idx.width > 20:
            raise UnsupportedNode(f"node '{node.name}': a table indexed by {idx.width} bits is too large")
        src = self.cast_to(node, self.source(node), self.graph.in_type(node), idx, "index")
        raw = np.arange(1 << idx.width)
        value = np.where(raw > idx.max_int, raw - (1 << idx.width), raw)  # two's complement of a signed index
        ordered = np.asarray(node.table_int)[value - idx.min_int]
        res = node.result_type
        self.layer(node, "UnaryLUT", [src], {"table": res, "result": res},
                   activation="unary_lut", table_data=to_float(ordered, res.frac))  # fmt: skip

    def pool(self, node: Pool) -> None:
        assert node.window is not None and node.result_type is not None
        x_t = self.graph.in_type(node)
        shape = self.shape(node.inputs[0])
        w = node.window
        accum = node.accum_type if node.mode == "avg" else x_t  # max pooling returns its value through accum_t
        assert accum is not None
        if node.mode == "avg":
            extra = accum.frac - x_t.frac
            if extra < 0:
                raise UnsupportedNode(f"node '{node.name}': accumulator {accum} is coarser than the input {x_t}")
            _check_wrap_free(node, accum, max(abs(x_t.min_int), x_t.max_int) * w.taps << extra)
        prec = {"accum": accum, "result": node.result_type}
        op = "Max" if node.mode == "max" else "Average"
        dims = w.dims
        whole = tuple(w.kernel) == shape[:-1] and not any(a or b for a, b in w.pads)
        if whole:
            attrs: dict[str, Any] = {"n_filt": shape[-1], "data_format": "channels_last"}
            if dims == 1:
                attrs["n_in"] = shape[0]
            else:
                attrs.update(in_height=shape[0], in_width=shape[1])
            self.layer(node, f"Global{op}Pooling{dims}D", [self.source(node)], prec, **attrs)
            return
        attrs = self._window_attrs(shape, node.shape, w.kernel, w.strides, w.pads, "pool")
        if dims == 1:  # hls4ml's 1-D pooling names its sizes n_in and n_out
            attrs["n_in"], attrs["n_out"] = attrs.pop("in_width"), attrs.pop("out_width")
        attrs.update(n_filt=shape[-1], count_pad=node.count_pad, data_format="channels_last")
        self.layer(node, f"{op}Pooling{dims}D", [self.source(node)], prec, **attrs)

    def merge(self, node: Merge) -> None:
        """hls4ml's Merge of the same op, two inputs at a time: each partial result in the type that holds it
        exactly, the last cast to the node's result type."""
        assert node.result_type is not None
        types = self.graph.in_types(node)
        frac = max(t.frac for t in types)
        src = self.source(node, 0)
        for k in range(1, len(types)):
            last = k == len(types) - 1
            out_t = node.result_type if last else exact_type(*node.exact_range(types[: k + 1], frac))
            step = None if last else f"{node.partial}{k + 1}"
            src = self.layer(node, "Merge", [src, self.source(node, k)], {"result": out_t}, step, op=node.op)

    def concat(self, node: Concat) -> None:
        assert node.result_type is not None
        rank = len(node.shape)
        if rank > 3:
            raise UnsupportedNode(f"node '{node.name}': hls4ml concatenates tensors of at most 3 axes")
        axis = node._axis(rank) - rank  # negative: the same axis whether or not a batch axis is counted
        src = self.source(node, 0)
        for k in range(1, len(node.inputs)):
            step = None if k == len(node.inputs) - 1 else f"part{k + 1}"
            src = self.layer(node, "Concatenate", [src, self.source(node, k)], {"result": node.result_type}, step,
                             op=f"concatenate{rank}d", axis=axis)  # fmt: skip

    def reshape(self, node: Reshape) -> None:
        src = self.moved_input(node)
        t = self.graph.type_of(node.name)
        self.layer(node, "Reshape", [src], {"result": t}, target_shape=list(node.shape), removable=NO_OP_RESHAPE)

    def transpose(self, node: Transpose) -> None:
        src = self.moved_input(node)
        self.layer(node, "Transpose", [src], {"result": self.graph.type_of(node.name)}, perm=list(node.axes))

    def pad(self, node: Pad) -> None:
        self._move(node, "ZeroPadding", "pad", node.pads)

    def crop(self, node: Crop) -> None:
        self._move(node, "Cropping", "crop", node.crops)

    def _move(self, node: Pad | Crop, kind: str, what: str, amounts: tuple[tuple[int, int], ...]) -> None:
        src = self.moved_input(node)
        shape = self.shape(node.inputs[0])
        dims = len(shape) - 1
        if dims not in (1, 2):
            raise UnsupportedNode(f"node '{node.name}': {node.kind} of a {len(shape)}-axis tensor")
        attrs = self._window_attrs(shape, node.shape, (1,) * dims, (1,) * dims, amounts, "unused")
        attrs = {k.replace("pad_", f"{what}_"): v for k, v in attrs.items() if k.startswith(("pad_", "in_", "out_"))}
        self.layer(node, f"{kind}{dims}D", [src], {"result": self.graph.type_of(node.name)},
                   n_chan=shape[-1], data_format="channels_last", **attrs)  # fmt: skip

    def upsample(self, node: Upsample) -> None:
        src = self.moved_input(node)
        shape = self.shape(node.inputs[0])
        dims = len(shape) - 1
        if dims not in (1, 2):
            raise UnsupportedNode(f"node '{node.name}': up-sampling of a {len(shape)}-axis tensor")
        spatial_in, spatial_out = (1, *shape[:-1])[-2:], (1, *node.shape[:-1])[-2:]
        for n_in, n_out in zip(spatial_in, spatial_out, strict=True):
            # hls4ml's resize_nearest: source = (i * ((n_in << 16) / n_out + 1)) >> 16
            ratio = (n_in << 16) // n_out + 1
            if [(i * ratio) >> 16 for i in range(n_out)] != [i * n_in // n_out for i in range(n_out)]:
                raise UnsupportedNode(f"node '{node.name}': hls4ml's nearest resize differs for {n_in} -> {n_out}")
        self.layer(node, f"UpSampling{dims}D", [src], {"result": self.graph.type_of(node.name)}, algorithm="nearest",
                   in_height=spatial_in[0], in_width=spatial_in[1], out_height=spatial_out[0],
                   out_width=spatial_out[1], n_chan=shape[-1], data_format="channels_last")  # fmt: skip

    def softmax(self, node: Softmax) -> None:
        shape = self.shape(node.inputs[0])
        n = shape[-1]
        prec = node.types()
        self.layer(node, "Softmax", [self.source(node)], dict(prec, table=prec["exp_table"]), activation="softmax",
                   implementation="stable", axis=-1, n_in=math.prod(shape), n_outer=math.prod(shape) // n, n_inner=1,
                   exp_table_size=node.exp_table_size, inv_table_size=node.inv_table_size,
                   table_size=node.exp_table_size, unwritten=("table",))  # fmt: skip


def _hls4ml_type(t: FixedType) -> Any:
    from hls4ml.model.types import FixedPrecisionType

    return FixedPrecisionType(t.width, t.integer, t.signed, t.rounding, t.overflow)


# Layers whose hls4ml implementation differs from the golden model (or is missing) in a backend's C++ library.
_BACKEND_LIMITS = {
    "Quartus": {
        "Softmax": "its writer fills the softmax tables in Python, with signed types only",
        "AveragePooling1D": "its average pooling adds in the input's type and ignores accum_t",
        "AveragePooling2D": "its average pooling adds in the input's type and ignores accum_t",
        "GlobalAveragePooling1D": "its average pooling adds in the input's type and ignores accum_t",
        "GlobalAveragePooling2D": "its average pooling adds in the input's type and ignores accum_t",
        "UnaryLUT": "its library has no unary_lut (lookup tables)",
    },
}


def check_backend(specs: list[LayerSpec], backend: str) -> None:
    """UnsupportedNode for a layer that ``backend``'s hls4ml library does not compute as the golden model does."""
    limits = _BACKEND_LIMITS.get(backend, {})
    for spec in specs:
        if spec.class_name in limits:
            raise UnsupportedNode(
                f"node '{spec.ir_node}': hls4ml's {backend} backend cannot compute it exactly "
                f"({limits[spec.class_name]}); use the Vitis or Vivado backend"
            )


def layer_specs(graph: Graph) -> list[LayerSpec]:
    """The hls4ml layers of a quantised graph, input layer first (UnsupportedNode if a node has none)."""
    assert graph.input_type is not None
    inp = LayerSpec(INPUT_LAYER, "InputLayer", INPUT, [], {"result": graph.input_type})
    inp.attrs["input_shape"] = list(graph.input_shape)
    builder = _Builder(graph)
    return [inp, *builder.build()]
