"""The QKeras framework twin: a tf_keras model whose inference equals the golden model bit for bit.

``build_twin`` turns any quantised IR graph into a tf_keras functional model
with float64 layers, channels-last like the IR: an input quantiser, then per
node the layers ``plan`` asks for.  Framework layers are used wherever they
compute the node exactly: ``QDense`` (a dense layer, also over the last axis
of an N-D tensor, and a standalone batch norm), ``ZeroPadding`` +
``QConv1D``/``QConv2D`` (weights exactly on their grids), ``QActivation``
quantisers, ``Activation("relu")`` / ``ReLU(max_value=...)``, ``LeakyReLU``,
``MaxPooling``, ``Add`` (``Maximum``, ``Minimum``), ``Concatenate``, ``Reshape``, ``ZeroPadding``,
``Cropping``, ``UpSampling`` and ``Flatten``; the twin's own layers
(``twin_layers``) do the rest: re-quantisation in rounding or overflow modes
QKeras lacks, clamps other than relu, lookup tables, padding with a constant
for max pooling, and the truncating average.  The final softmax, when the
graph has one, is the last layer.

Exactness rests on these facts about QKeras 0.9 (checked by the tests):

* ``quantized_bits(bits, integer, alpha=1)`` computes
  ``clip(tf.round(x * 2**f), lo, hi) * 2**-f`` in the backend's float type
  (``K.cast_to_floatx``), i.e. round-half-even (RND_CONV) with saturation,
  and returns it through the straight-through ``x + stop_gradient(-x + xq)``,
  which is exact when ``x`` and ``xq`` together span at most 53 bits (or, for
  the input quantiser, whenever ``|x|`` is below ``2**53`` steps of the input
  grid); elsewhere the twin's ``FixedQuant`` re-quantises.
* float32 holds only 24 significant bits, too few for accumulators, so the
  twin is built and run with ``floatx`` float64 (53 bits) and float64
  layers; ``float64_backend()`` sets that and restores the old value.
* ``quantized_relu`` always computes in float32; it is used only where a
  float32 value is exact, otherwise the same function is expressed as an
  unsigned ``quantized_bits`` (round, then clip at 0 and at the maximum).
* QKeras cannot use a negative ``integer`` (it evaluates ``2 ** integer`` on
  integers).  Parameter quantisers, which only need to leave the exact grid
  values unchanged, are widened to ``integer=0``; an unsigned activation with
  negative integer bits is rounded with ``integer=0`` and clipped by a
  ``ReLU(max_value=...)``; a signed one goes to ``FixedQuant``.
* ``LeakyReLU`` keeps ``alpha`` in float32: exact for an alpha of up to 24 bits.

On a GPU, TensorFlow lets cuDNN choose the convolution algorithm (FFT-based
ones are not exact), so a twin with convolutions runs on the CPU.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.frameworks.keras import layers
from mlinfn_compress.compress.frameworks.keras.tfkeras import qkeras_objects, tf_keras
from mlinfn_compress.compress.frameworks.twin_plan import (
    FLOAT64_BITS,
    NodePlan,
    Range,
    Requant,
    below,
    kernel,
    value,
    walk,
)
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
    Pad,
    Pool,
    Reshape,
    Table,
    Transpose,
    UniqueNames,
    Upsample,
)
from mlinfn_compress.compress.ir.dispatch import OpTable

FLOAT32_BITS = 24
QKERAS_MAX_BITS = 32  # quantized_bits computes NaN with more bits (2**bits overflows its 32-bit integers)
SOFTMAX_LAYER = "softmax"


@contextmanager
def float64_backend() -> Iterator[None]:
    """Run with tf_keras's ``floatx`` set to float64 (QKeras quantisers compute in floatx)."""
    backend = tf_keras().backend
    saved = backend.floatx()
    backend.set_floatx("float64")
    try:
        yield
    finally:
        backend.set_floatx(saved)


# ---- which conversions a QKeras quantiser expresses exactly ----


def _fits(a: FixedType, b: FixedType, bits: int) -> bool:
    """Whether values of ``a``, of ``b`` and their differences are exact in a ``bits``-bit significand."""
    return max(a.integer, b.integer) + max(a.frac, b.frac) <= bits


def bits_quantizer(t: FixedType, integer_shift: int = 0) -> Any:
    """``quantized_bits`` with the grid and range of ``t`` (``integer_shift`` widens the range)."""
    from qkeras import quantized_bits

    integer = t.integer - (1 if t.signed else 0) + integer_shift
    if t.width + integer_shift > QKERAS_MAX_BITS or integer >= QKERAS_MAX_BITS:
        raise ValueError(f"{t} is beyond QKeras's quantized_bits, which computes NaN past {QKERAS_MAX_BITS} bits")
    return quantized_bits(
        t.width + integer_shift,
        integer,
        symmetric=1 if t.overflow == "SAT_SYM" and t.signed else 0,
        keep_negative=t.signed,
        alpha=1,
    )


def param_quantizer(t: FixedType) -> Any:
    """A quantiser that leaves every value of ``t`` unchanged (rounding modes play no part)."""
    qi = t.integer - (1 if t.signed else 0)
    widen = max(0, -qi)  # QKeras cannot take a negative integer part
    if t.width + widen - t.signed < 1:
        widen += 1
    return bits_quantizer(FixedType(t.width, t.integer, t.signed, "RND_CONV", "SAT"), widen)


def qkeras_expresses(rq: Requant) -> bool:
    """Whether a QKeras quantiser computes ``rq`` exactly (it rounds half to even and saturates)."""
    t = rq.dst
    return (
        t.width - min(t.integer, 0) <= QKERAS_MAX_BITS
        and abs(t.integer) < QKERAS_MAX_BITS
        and (not rq.rounds or t.rounding == "RND_CONV")
        and (not rq.overflows or t.overflow in ("SAT", "SAT_SYM"))
        and t.width - t.signed >= 1  # QKeras treats 1-bit quantisers as binary
        and (rq.src is None or _fits(rq.src.type(), t, FLOAT64_BITS))
        and (t.integer - t.signed >= 0 or not t.signed)
    )


class _Builder:
    def __init__(self, graph: Graph) -> None:
        from mlinfn_compress.compress.frameworks.keras import twin_layers as keras_layers

        self.graph = graph
        self.tfk = tf_keras()
        self.own = keras_layers
        self.name = UniqueNames()

    def layer(self, cls: str, base: str, *args: Any, **kw: Any) -> Any:
        """A tf_keras layer ``cls`` in float64 with a unique name."""
        return getattr(self.tfk.layers, cls)(*args, name=self.name(base), dtype="float64", **kw)

    def spatial(self, cls: str, base: str, per_axis: tuple[Any, ...]) -> Callable[[Any], Any]:
        """``ZeroPadding``/``Cropping``/``UpSampling`` over 1 to 3 spatial axes (nothing for none)."""
        if not per_axis:
            return lambda x: x
        dims = len(per_axis)
        return self.layer(f"{cls}{dims}D", base, per_axis[0] if dims == 1 else tuple(per_axis))

    def quant(self, x: Any, rq: Requant | None, base: str) -> Any:
        """Layers that re-quantise ``x`` as ``rq`` says (nothing when ``rq`` is None)."""
        if rq is None:
            return x
        qkeras = self.qkeras_quant(rq, base)
        if qkeras is not None:
            return qkeras(x)
        return self.own.FixedQuant(rq.dst.to_dict(), name=self.name(base), dtype="float64")(x)

    def qkeras_quant(self, rq: Requant, base: str) -> Callable[[Any], Any] | None:
        """QKeras layers computing ``rq`` exactly, or None."""
        from qkeras import QActivation, quantized_relu

        t = rq.dst
        if not qkeras_expresses(rq):
            return None
        if t.integer - t.signed >= 0:
            if not t.signed and rq.src is not None and _fits(rq.src.type(), t, FLOAT32_BITS):
                q = quantized_relu(t.width, t.integer)  # computes in float32: exact here
            else:
                q = bits_quantizer(t)
            return QActivation(q, name=self.name(base), dtype="float64")
        # Unsigned with integer < 0: round on the same grid with integer 0, then clip at the maximum.
        rounding = QActivation(bits_quantizer(t, -t.integer), name=self.name(base), dtype="float64")
        top = self.layer("ReLU", base + "_max", max_value=value(t.max_int, t.frac))
        return lambda x: top(rounding(x))

    def linear(self, x: Any, p: NodePlan) -> Any:
        from qkeras import QConv1D, QConv2D, QDense

        node = p.node
        assert isinstance(node, Linear) and node.weight_type is not None and node.bias_type is not None
        weights, bias = kernel(node)
        try:
            quantisers = {
                "kernel_quantizer": param_quantizer(node.weight_type),
                "bias_quantizer": param_quantizer(node.bias_type),
            }
        except ValueError as e:
            raise ValueError(f"layer '{node.name}': its weight or bias format {e}") from e
        if node.window is None:
            layer = QDense(node.n_out, name=self.name(node.name), dtype="float64", **quantisers)
        else:
            w = node.window
            x = self.spatial("ZeroPadding", node.name + "_pad", w.pads if any(a or b for a, b in w.pads) else ())(x)
            conv = {1: QConv1D, 2: QConv2D}[w.dims]
            layer = conv(node.n_out, w.kernel, w.strides, padding="valid", name=self.name(node.name),
                         dtype="float64", **quantisers)  # fmt: skip
        y = layer(x)
        layer.set_weights([weights, bias])
        y = self.quant(y, p.inner, node.name + "_acc")
        return self.quant(y, p.after, node.name + "_q")

    def clip(self, x: Any, p: NodePlan) -> Any:
        node = p.node
        assert isinstance(node, Clip)
        if node.lo == 0 and node.hi is None:
            return self.relu(x, p)
        if node.lo == 0:
            x = self.layer("ReLU", node.name, max_value=float(node.hi))(x)
        else:
            x = self.own.Clamp(node.lo, node.hi, name=self.name(node.name), dtype="float64")(x)
        return self.quant(x, p.after, node.name + "_q")

    def relu(self, x: Any, p: NodePlan) -> Any:
        """A relu: an unsigned QKeras quantiser clips at zero by itself and takes the relu's place."""
        rq, name = p.after, p.node.name
        if rq is not None and not rq.dst.signed:
            fused = Requant(Range.of(self.graph.in_type(p.node)), rq.dst, rq.rounds, rq.overflows)
            qkeras = self.qkeras_quant(fused, name)
            if qkeras is not None:
                return qkeras(x)
        x = self.layer("Activation", name, "relu")(x)
        return self.quant(x, rq, name + "_q")

    def leaky_relu(self, x: Any, p: NodePlan) -> Any:
        node = p.node
        assert isinstance(node, LeakyRelu) and node.alpha_type is not None and node.alpha_int is not None
        alpha = value(node.alpha_int, node.alpha_type.frac)
        if float(np.float32(alpha)) != alpha:
            raise ValueError(
                f"node '{node.name}' (leaky_relu): alpha {alpha} needs more than {FLOAT32_BITS} bits; "
                "tf_keras's LeakyReLU keeps it in float32"
            )
        x = self.layer("LeakyReLU", node.name, alpha=alpha)(x)
        return self.quant(x, p.after, node.name + "_q")

    def table(self, x: Any, p: NodePlan) -> Any:
        node = p.node
        assert isinstance(node, Table) and node.index_type is not None and node.table_int is not None
        assert node.result_type is not None
        values = to_float(np.asarray(node.table_int), node.result_type.frac)
        layer = self.own.TableLookup(node.index_type.to_dict(), len(values), name=self.name(node.name), dtype="float64")
        y = layer(x)
        layer.set_weights([values])
        return y

    def pool(self, x: Any, p: NodePlan) -> Any:
        node = p.node
        assert isinstance(node, Pool) and node.window is not None
        w, x_t = node.window, self.graph.in_type(node)
        pads = [list(pair) for pair in w.pads]
        if node.mode == "max":
            if any(a or b for a, b in w.pads):
                x = self.own.ConstantPad(pads, below(x_t), name=self.name(node.name + "_pad"), dtype="float64")(x)
            x = self.layer(f"MaxPooling{w.dims}D", node.name, w.kernel, w.strides, padding="valid")(x)
        else:
            assert node.accum_type is not None
            divisors = node.divisors(self.graph.shape_of(node.inputs[0])).tolist()
            x = self.own.TruncAvgPool(list(w.kernel), list(w.strides), pads, divisors, node.accum_type.to_dict(),
                                      p.inner is not None, name=self.name(node.name), dtype="float64")(x)  # fmt: skip
        return self.quant(x, p.after, node.name + "_q")

    def node(self, xs: list[Any], p: NodePlan) -> Any:
        return LAYERS[p.node](self, xs, p)

    def build(self) -> Any:
        g = self.graph
        inp = self.tfk.Input(g.input_shape, name=self.name(INPUT), dtype="float64")
        out = walk(g, inp, self.quant, self.node, "input_q")
        if len(g.output.shape) > 1:
            out = self.layer("Flatten", "flatten")(out)
        if g.has_argmax:
            out = self.layer("Activation", SOFTMAX_LAYER, "softmax")(out)
        return self.tfk.Model(inp, out, name=g.name)


def _axis(axis: int) -> int:
    return axis + 1 if axis >= 0 else axis  # the batch axis comes first in Keras


MERGES = {merge.op: layer for layer, merge in layers.MERGES.items()}  # merge -> its Keras layer (the frontend's)

# op -> the QKeras / tf_keras layers of the twin that compute it
LAYERS: OpTable[Callable[[_Builder, list[Any], NodePlan], Any]] = OpTable(
    "the QKeras twin",
    {
        Linear: lambda b, xs, p: b.linear(xs[0], p),
        Clip: lambda b, xs, p: b.clip(xs[0], p),
        LeakyRelu: lambda b, xs, p: b.leaky_relu(xs[0], p),
        Cast: lambda b, xs, p: b.quant(xs[0], p.after, p.node.name),
        Table: lambda b, xs, p: b.table(xs[0], p),
        Pool: lambda b, xs, p: b.pool(xs[0], p),
        Merge: lambda b, xs, p: b.quant(b.layer(MERGES[p.node.op], p.node.name)(xs), p.after, p.node.name + "_q"),
        Concat: lambda b, xs, p: b.layer("Concatenate", p.node.name, axis=_axis(p.node.axis))(xs),
        Reshape: lambda b, xs, p: b.layer("Reshape", p.node.name, p.node.target)(xs[0]),
        Transpose: lambda b, xs, p: b.layer("Permute", p.node.name, tuple(a + 1 for a in p.node.axes))(xs[0]),
        Pad: lambda b, xs, p: b.spatial("ZeroPadding", p.node.name, p.node.pads)(xs[0]),
        Crop: lambda b, xs, p: b.spatial("Cropping", p.node.name, p.node.crops)(xs[0]),
        Upsample: lambda b, xs, p: b.spatial("UpSampling", p.node.name, p.node.factors)(xs[0]),
    },
)


def build_twin(graph: Graph) -> Any:
    """A QKeras model (float64 layers) whose pre-softmax output equals ``golden.run`` exactly.

    Raises ValueError naming the node float64 cannot compute exactly.  Run it
    under ``float64_backend()`` (as ``twin_logits`` does).
    """
    with float64_backend():
        return _Builder(graph).build()


def has_convolutions(graph: Graph) -> bool:
    return any(isinstance(n, Linear) and n.window is not None for n in graph.nodes)


def _logits_model(model: Any) -> Any:
    last = model.layers[-1]
    if type(last).__name__ == "Activation" and getattr(last.activation, "__name__", "") == "softmax":
        return tf_keras().Model(model.inputs, last.input)
    return model


def twin_logits(model: Any, x_float: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Run the twin without its final softmax on float inputs, (N, *input_shape) or flat rows (N, input_size).

    Returns float64 rows (N, output_size), channels-last.
    """
    import tensorflow as tf

    x = np.asarray(x_float, dtype=np.float64)
    x = x.reshape(len(x), *model.input_shape[1:])
    with float64_backend():
        sub = _logits_model(model)
        outs = [
            np.asarray(sub(tf.constant(x[i : i + batch], tf.float64), training=False), dtype=np.float64)
            for i in range(0, len(x), batch)
        ]
    if not outs:
        return np.zeros((0, int(np.prod(model.outputs[0].shape[1:]))))
    return np.concatenate(outs, axis=0)


def save_twin(graph: Graph, path: Path) -> Path:
    """Build the twin of ``graph`` and save it as HDF5 (load it with ``load_twin``)."""
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        path = path.with_suffix(".h5")
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build_twin(graph)
    with float64_backend():
        model.save(path, include_optimizer=False)
    _drop_layer_dtypes(path)
    return path


def _drop_layer_dtypes(path: Path) -> None:
    """Remove the layers' float64 dtype from a saved model's configuration.

    The layers then take tf_keras's ``floatx`` when the file is loaded: float64
    under ``float64_backend()`` (exact; the weights are stored in float64), and
    the default float32 in any other QKeras program, which can load and run the
    file as an ordinary QKeras model.
    """
    import h5py

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            if "class_name" in obj and isinstance(obj.get("config"), dict):
                obj["config"].pop("dtype", None)
            return {k: strip(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    with h5py.File(path, "r+") as f:
        raw = f.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        f.attrs["model_config"] = json.dumps(strip(config))


def load_twin(path: Path) -> Any:
    """Load a saved twin with float64 layers and the QKeras custom objects (run it with ``twin_logits``)."""
    with float64_backend():
        return tf_keras().models.load_model(str(path), custom_objects=custom_objects(), compile=False)


def custom_objects() -> dict[str, Any]:
    """What tf_keras needs to load a twin: QKeras's objects and the twin's own layers."""
    from mlinfn_compress.compress.frameworks.keras.twin_layers import custom_objects as own

    return qkeras_objects() | own()
