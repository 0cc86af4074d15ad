"""The framework twin: a QKeras model whose inference equals the golden model bit for bit.

``build_twin`` turns a fully quantised IR graph into a tf_keras/QKeras model:
an input quantiser, then per node a ``QDense`` (weights exactly on their
grid), a ``QActivation`` for every re-quantisation, and the final softmax
when the graph has one.

Exactness rests on three facts about QKeras 0.9 (checked by the tests):

* ``quantized_bits(bits, integer, alpha=1)`` computes
  ``clip(tf.round(x * 2**f), lo, hi) * 2**-f`` in the backend's float type
  (``K.cast_to_floatx``), i.e. round-half-even (RND_CONV) with saturation.
  Every step is a power-of-two scaling, so it is exact as long as the values
  fit in the float's significand, and so is the straight-through
  ``x + stop_gradient(-x + xq)``: ``x`` and ``xq`` share a sign and a grid,
  so ``-x + xq`` and the sum back are exact.
* float32 holds only 24 significant bits, too few for accumulators, so the
  twin is built and run with ``floatx`` float64 (53 bits) and float64
  layers; ``float64_backend()`` sets that and restores the old value.
* ``quantized_relu`` always computes in float32; it is used only where a
  float32 value is exact, otherwise the same function is expressed as an
  unsigned ``quantized_bits`` (round, then clip at 0 and at the maximum).

QKeras cannot use a negative ``integer`` (it evaluates ``2 ** integer`` on
integers).  Parameter quantisers, which only need to leave the exact grid
values unchanged, are widened to ``integer=0``; an unsigned activation with
negative integer bits is rounded with ``integer=0`` and clipped by a
``ReLU(max_value=...)``; a signed one is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .fixed import FixedType, to_float
from .ir import Cast, Clip, Graph, Linear, Node, UniqueNames
from .quantise import accumulator_bounds
from .tfkeras import qkeras_objects, tf_keras

FLOAT64_BITS = 53  # significand of float64, implicit bit included
FLOAT32_BITS = 24
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


# ---- which fixed-point types QKeras can express, and exactly ----


def _fits(a: FixedType, b: FixedType, bits: int) -> bool:
    """Whether values of ``a``, of ``b`` and their differences are exact in a ``bits``-bit significand."""
    return max(a.integer, b.integer) + max(a.frac, b.frac) <= bits


def _lossless(t_in: FixedType, t_out: FixedType, nonneg: bool = False) -> bool:
    """Whether converting every value of ``t_in`` (only those >= 0 when ``nonneg``) to ``t_out`` is exact."""
    shift = t_out.frac - t_in.frac
    if shift < 0:
        return False
    lo = 0 if nonneg else t_in.min_int
    lo_out = -t_out.max_int if t_out.overflow == "SAT_SYM" and t_out.signed else t_out.min_int
    return (lo << shift) >= lo_out and (t_in.max_int << shift) <= t_out.max_int


def _expressible(t: FixedType, where: str) -> None:
    if t.rounding != "RND_CONV" or t.overflow not in ("SAT", "SAT_SYM"):
        raise ValueError(
            f"{where}: type {t} cannot be expressed by a QKeras quantiser, which rounds half to even "
            "and saturates (needs RND_CONV with SAT or SAT_SYM)"
        )
    if t.width - t.signed < 1:
        raise ValueError(f"{where}: type {t} has no magnitude bits; QKeras treats 1-bit quantisers as binary")


def _check_exact(t_in: FixedType, t_out: FixedType, where: str) -> None:
    if not _fits(t_in, t_out, FLOAT64_BITS):
        raise ValueError(
            f"{where}: converting {t_in} to {t_out} spans more than {FLOAT64_BITS} bits; "
            "float64 inference cannot be exact"
        )


def _bits(t: FixedType, integer_shift: int = 0) -> Any:
    """``quantized_bits`` with the grid and range of ``t`` (``integer_shift`` widens the range)."""
    from qkeras import quantized_bits

    integer = t.integer - (1 if t.signed else 0) + integer_shift
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
    return _bits(FixedType(t.width, t.integer, t.signed, "RND_CONV", "SAT"), widen)


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.tfk = tf_keras()
        self.name = UniqueNames()

    def quantise(self, x: Any, t_in: FixedType | None, t_out: FixedType, where: str, base: str) -> Any:
        """Layers that re-quantise ``x`` (of type ``t_in``; None: any float) to ``t_out``."""
        from qkeras import QActivation, quantized_relu

        _expressible(t_out, where)
        if t_in is not None:
            _check_exact(t_in, t_out, where)
        qi = t_out.integer - (1 if t_out.signed else 0)
        if qi >= 0:
            if not t_out.signed and t_in is not None and _fits(t_in, t_out, FLOAT32_BITS):
                q = quantized_relu(t_out.width, t_out.integer)  # computes in float32: exact here
            else:
                q = _bits(t_out)
            return QActivation(q, name=self.name(base), dtype="float64")(x)
        if t_out.signed:
            raise ValueError(
                f"{where}: type {t_out} needs a negative integer part, which QKeras quantized_bits cannot take"
            )
        # Unsigned with integer < 0: round on the same grid with integer 0, then clip at the maximum.
        x = QActivation(_bits(t_out, -t_out.integer), name=self.name(base), dtype="float64")(x)
        top = float(to_float(np.array([t_out.max_int]), t_out.frac)[0])
        return self.tfk.layers.ReLU(max_value=top, name=self.name(base + "_max"), dtype="float64")(x)

    def dense(self, x: Any, node: Linear) -> Any:
        from qkeras import QDense

        g = self.graph
        where = f"node '{node.name}' (dense)"
        wt, bt, acc, res = node.weight_type, node.bias_type, node.accum_type, node.result_type
        if wt is None or bt is None or acc is None or res is None or node.weight_int is None or node.bias_int is None:
            raise ValueError(f"{where}: not quantised")
        _, _, mag = accumulator_bounds(g, node, acc.frac)
        if mag.bit_length() > FLOAT64_BITS or acc.width > FLOAT64_BITS:
            raise ValueError(f"{where}: accumulator {acc} is too wide for exact float64 inference")
        if node.window is not None:
            raise ValueError(f"{where}: convolutions have no QKeras twin yet")
        layer = QDense(
            node.n_out,
            kernel_quantizer=param_quantizer(wt),
            bias_quantizer=param_quantizer(bt),
            name=self.name(node.name),
            dtype="float64",
        )
        y = layer(x)
        layer.set_weights([to_float(node.weight_int, wt.frac), to_float(node.bias_int, bt.frac)])
        if res == acc or _lossless(acc, res):
            return y
        return self.quantise(y, acc, res, where, node.name + "_q")

    def relu(self, x: Any, node: Node, t_in: FixedType) -> Any:
        res = node.result_type
        assert res is not None
        where = f"node '{node.name}' (relu)"
        if _lossless(t_in, res, nonneg=True):
            return self.tfk.layers.Activation("relu", name=self.name(node.name), dtype="float64")(x)
        if res.signed:
            x = self.tfk.layers.Activation("relu", name=self.name(node.name), dtype="float64")(x)
            return self.quantise(x, t_in, res, where, node.name + "_q")
        return self.quantise(x, t_in, res, where, node.name)

    def build(self) -> Any:
        g = self.graph
        if g.input_type is None:
            raise ValueError("graph is not quantised: no input type")
        tfk = self.tfk
        inp = tfk.Input(g.input_shape, name=self.name("input"), dtype="float64")
        x = self.quantise(inp, None, g.input_type, "input", "input_q")
        prev, t_in = "input", g.input_type
        for node in g.nodes:
            if not node.quantised or node.result_type is None:
                raise ValueError(f"node '{node.name}' ({node.kind}) is not quantised")
            if node.inputs[0] != prev:
                raise ValueError(f"node '{node.name}': the twin supports only a chain of nodes")
            if isinstance(node, Linear):
                x = self.dense(x, node)
            elif isinstance(node, Clip) and node.lo == 0 and node.hi is None:
                x = self.relu(x, node, t_in)
            elif isinstance(node, Cast):
                if not _lossless(t_in, node.result_type):
                    x = self.quantise(x, t_in, node.result_type, f"node '{node.name}' (cast)", node.name)
            else:
                raise ValueError(f"node '{node.name}': {node.kind} has no QKeras twin yet")
            prev, t_in = node.name, node.result_type
        if g.has_argmax:
            x = tfk.layers.Activation("softmax", name=self.name(SOFTMAX_LAYER), dtype="float64")(x)
        return tfk.Model(inp, x, name=g.name)


def build_twin(graph: Graph) -> Any:
    """A QKeras model (float64 layers) whose pre-softmax output equals ``golden.run`` exactly.

    Raises ValueError naming the node whose type QKeras cannot express or
    float64 cannot compute exactly.  Run it under ``float64_backend()`` (as
    ``twin_logits`` does).
    """
    with float64_backend():
        return _Builder(graph).build()


def _logits_model(model: Any) -> Any:
    last = model.layers[-1]
    if type(last).__name__ == "Activation" and getattr(last.activation, "__name__", "") == "softmax":
        return tf_keras().Model(model.inputs, model.layers[-2].output)
    return model


def twin_logits(model: Any, x_float: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Run the twin on float inputs (N, features) without its final softmax; float64 outputs."""
    import tensorflow as tf

    x = np.asarray(x_float, dtype=np.float64)
    with float64_backend():
        sub = _logits_model(model)
        outs = [
            np.asarray(sub(tf.constant(x[i : i + batch], tf.float64), training=False), dtype=np.float64)
            for i in range(0, len(x), batch)
        ]
    if not outs:
        return np.zeros((0, int(model.outputs[0].shape[-1])))
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
        return tf_keras().models.load_model(str(path), custom_objects=qkeras_objects(), compile=False)
