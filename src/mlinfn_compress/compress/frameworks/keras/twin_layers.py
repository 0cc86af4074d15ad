"""The QKeras twin's own layers, for what no QKeras or tf_keras layer computes exactly.

Each computes in its layer's float type (float64 in the twin) and is exact
there by the reasoning of ``plan``: a fixed-point re-quantiser with every
rounding and overflow mode, a clamp, a lookup table, padding with a constant,
and the average of a window truncated toward zero on the accumulator's grid.
Importing this module starts TensorFlow: import it inside functions only.
"""

from __future__ import annotations

import itertools
from typing import Any

from mlinfn_compress.compress.fixed.rounding import quantise, tensorflow_namespace
from mlinfn_compress.compress.frameworks.keras.tfkeras import tensorflow, tf_keras

tf = tensorflow()
TF = tensorflow_namespace()
Layer = tf_keras().layers.Layer


def fixed_quant(x: Any, t: dict[str, Any]) -> Any:
    """``x`` (any float) converted to the fixed-point type ``t`` (``FixedType.to_dict()``), as ``fixed.quantize``."""
    return quantise(TF, x, int(t["width"]), int(t["integer"]), bool(t["signed"]), t["rounding"], t["overflow"])


class FixedQuant(Layer):
    """Re-quantisation to a fixed-point type, every rounding and overflow mode, exact in float64."""

    def __init__(self, fixed: dict[str, Any], **kw: Any) -> None:
        super().__init__(**kw)
        self.fixed = dict(fixed)

    def call(self, x: Any) -> Any:
        return fixed_quant(x, self.fixed)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"fixed": self.fixed}


class Clamp(Layer):
    """``min(max(x, lo), hi)`` with dyadic bounds (None: no bound)."""

    def __init__(self, lo: float | None, hi: float | None, **kw: Any) -> None:
        super().__init__(**kw)
        self.lo, self.hi = lo, hi

    def call(self, x: Any) -> Any:
        if self.lo is not None:
            x = tf.maximum(x, self.lo)
        if self.hi is not None:
            x = tf.minimum(x, self.hi)
        return x

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"lo": self.lo, "hi": self.hi}


class TableLookup(Layer):
    """``table[q - min]`` where ``q`` is the input quantised to the ``index`` type; the table is a weight."""

    def __init__(self, index: dict[str, Any], size: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.index, self.size = dict(index), int(size)

    def build(self, input_shape: Any) -> None:
        self.table = self.add_weight(name="table", shape=(self.size,), initializer="zeros", trainable=False)
        super().build(input_shape)

    def call(self, x: Any) -> Any:
        frac = int(self.index["width"]) - int(self.index["integer"])
        lowest = -(2 ** (int(self.index["width"]) - 1)) if self.index["signed"] else 0
        position = fixed_quant(x, self.index) * 2.0**frac - float(lowest)  # an exact integer
        return tf.gather(self.table, tf.cast(position, tf.int64))

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"index": self.index, "size": self.size}


def pad_spatial(x: Any, pads: list[list[int]], value: float) -> Any:
    """Pad the spatial axes of a channels-last batch with ``value``."""
    if not any(a or b for a, b in pads):
        return x
    return tf.pad(x, [[0, 0], *[[int(a), int(b)] for a, b in pads], [0, 0]], constant_values=value)


class ConstantPad(Layer):
    """Padding of the spatial axes with a constant (max pooling's padding: below every input value)."""

    def __init__(self, pads: list[list[int]], value: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.pads, self.value = [list(p) for p in pads], float(value)

    def call(self, x: Any) -> Any:
        return pad_spatial(x, self.pads, self.value)

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {"pads": self.pads, "value": self.value}


class TruncAvgPool(Layer):
    """The golden model's average: the window's sum (zero padding) on the accumulator's grid, its overflow
    when ``overflow``, divided by ``divisors`` (one per output position) truncated toward zero."""

    def __init__(
        self,
        kernel: list[int],
        strides: list[int],
        pads: list[list[int]],
        divisors: list[Any],
        accum: dict[str, Any],
        overflow: bool,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.kernel, self.strides, self.pads = list(kernel), list(strides), [list(p) for p in pads]
        self.divisors, self.accum, self.overflow = divisors, dict(accum), bool(overflow)

    def call(self, x: Any) -> Any:
        xp = pad_spatial(x, self.pads, 0.0)
        d = tf.constant(self.divisors, dtype=x.dtype)
        out = d.shape  # output positions
        total = None
        for offsets in itertools.product(*(range(k) for k in self.kernel)):
            index = tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offsets, out, self.strides, strict=True))
            part = xp[(slice(None), *index, slice(None))]
            total = part if total is None else total + part
        if self.overflow:
            total = fixed_quant(total, self.accum)
        frac = int(self.accum["width"]) - int(self.accum["integer"])
        steps = total * 2.0**frac  # exact integers below 2**53
        ratio = steps / d[None, ..., None]
        return tf.where(ratio < 0, tf.math.ceil(ratio), tf.floor(ratio)) * 2.0**-frac

    def get_config(self) -> dict[str, Any]:
        return super().get_config() | {
            "kernel": self.kernel,
            "strides": self.strides,
            "pads": self.pads,
            "divisors": self.divisors,
            "accum": self.accum,
            "overflow": self.overflow,
        }


def custom_objects() -> dict[str, Any]:
    """The twin's own layers by name, for ``load_model``."""
    return {cls.__name__: cls for cls in (FixedQuant, Clamp, TableLookup, ConstantPad, TruncAvgPool)}
