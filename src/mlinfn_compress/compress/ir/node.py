"""The IR's nodes: one operation each, with a shaped output tensor and its fixed-point type.

Every node can run itself at two levels: ``forward_float`` on float arrays
(the unquantised network, used for calibration) and ``forward_int`` on the
integers of its input types (the golden model: this *defines* the
semantics that VHDL, HLS and the framework twins must match bit for bit).
Arrays carry a leading batch axis; shapes here never include it.  Tensors
are channels-last: (features,), (length, channels) or (height, width, channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any, ClassVar

import numpy as np

from mlinfn_compress.compress.fixed import FixedType

Shape = tuple[int, ...]


class IRError(ValueError):
    """An IR that is inconsistent: a shape, an input or a type that does not fit."""


NODE_CLASSES: dict[str, type[Node]] = {}


def register(cls: type[Node]) -> type[Node]:
    """Class decorator: make a node class known to ``node_from_json`` by its ``op``."""
    if cls.op in NODE_CLASSES:
        raise IRError(f"op {cls.op!r} is registered twice: {NODE_CLASSES[cls.op].__name__} and {cls.__name__}")
    NODE_CLASSES[cls.op] = cls
    return cls


@dataclass(kw_only=True)
class Node:
    """One operation of the graph; its output tensor carries the node's name."""

    op: ClassVar[str]  # what the node computes: its name in design.json, one per class
    arity: ClassVar[int | None] = 1  # number of inputs (None: two or more)

    name: str
    inputs: list[str]
    shape: Shape = ()
    source: str = ""  # the layer class in the source framework
    result_type: FixedType | None = None
    notes: list[str] = field(default_factory=list)

    # ---- what every op provides ----

    @property
    def kind(self) -> str:
        """The name people know the operation by (dense, conv2d, relu, max_pool, ...)."""
        return self.op

    def infer_shape(self, in_shapes: list[Shape]) -> Shape:
        """The output shape for the given input shapes (IRError if they do not fit)."""
        raise NotImplementedError

    def forward_float(self, xs: list[np.ndarray]) -> np.ndarray:
        """The float operation on a batch (calibration, reference of the unquantised network)."""
        raise NotImplementedError

    def forward_int(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        """The exact integer operation on a batch: the golden model."""
        raise NotImplementedError

    @property
    def quantised(self) -> bool:
        return self.result_type is not None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def types(self) -> dict[str, FixedType]:
        """Every fixed-point type of the node by role (weight, bias, accum, table, result, ...)."""
        return {"result": self.result_type} if self.result_type is not None else {}

    def sparsity(self) -> float:
        return 0.0

    def multipliers(self) -> int:
        """Constant multiplications that become hardware (zero weights make none)."""
        return 0

    def check_arity(self) -> None:
        n = len(self.inputs)
        if self.arity is not None and n != self.arity:
            raise IRError(f"node '{self.name}' ({self.kind}) takes {self.arity} input(s), got {n}")
        if self.arity is None and n < 2:
            raise IRError(f"node '{self.name}' ({self.kind}) takes two or more inputs, got {n}")

    # ---- serialisation ----

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.op}
        for f in fields(self):
            d[f.name] = to_jsonable(getattr(self, f.name))
        return d

    @classmethod
    def from_fields(cls, d: dict[str, Any]) -> Node:
        kwargs = {}
        for f in fields(cls):
            if f.name in d:
                kwargs[f.name] = from_jsonable(f.name, d[f.name])
        node = cls(**kwargs)
        node.after_load()
        return node

    def after_load(self) -> None:
        """Restore what JSON cannot hold directly (array shapes); called by ``from_fields``."""


def node_from_json(d: dict[str, Any]) -> Node:
    try:
        cls = NODE_CLASSES[d["op"]]
    except (KeyError, TypeError) as e:
        raise IRError(f"unknown op {d.get('op')!r} in node {d.get('name')!r}") from e
    return cls.from_fields(d)


# ---- JSON helpers: fixed types, integer arrays, tuples ----

_TYPE_FIELDS = ("_type",)


def to_jsonable(v: Any) -> Any:
    if isinstance(v, FixedType):
        return {"fixed": v.to_dict()}
    if isinstance(v, np.ndarray):
        if v.dtype == object or v.dtype.kind in "iu":
            return {"ints": [int(a) for a in v.ravel()], "shape": list(v.shape)}
        return {"floats": [float(a) for a in v.ravel()], "shape": list(v.shape)}
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, tuple):
        return [to_jsonable(a) for a in v]
    if isinstance(v, list):
        return [to_jsonable(a) for a in v]
    if hasattr(v, "to_json"):
        return v.to_json()
    return v


def from_jsonable(name: str, v: Any) -> Any:
    if isinstance(v, dict) and "fixed" in v:
        return FixedType.from_dict(v["fixed"])
    if isinstance(v, dict) and "ints" in v:
        return int_array(v["ints"]).reshape(v["shape"])
    if isinstance(v, dict) and "floats" in v:
        return np.array(v["floats"], dtype=np.float64).reshape(v["shape"])
    if name == "shape" and v is not None:
        return tuple(int(a) for a in v)
    return v


def int_array(values: list[int]) -> np.ndarray:
    """Integers as int64, or as Python ints (object array) where they exceed 62 bits."""
    if any(abs(int(v)) >= 2**62 for v in values):
        return np.array([int(v) for v in values], dtype=object)
    return np.array(values, dtype=np.int64)


def wide_ints(a: np.ndarray, wide: bool) -> np.ndarray:
    """``a`` as Python ints (object) when ``wide``, else as int64."""
    a = np.asarray(a)
    if wide:
        return a.astype(object)
    return a.astype(np.int64)
