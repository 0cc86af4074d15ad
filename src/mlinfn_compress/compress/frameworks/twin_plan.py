"""What a framework twin computes for every node, and why float64 computes it exactly.

Both twins (QKeras, Brevitas) carry every tensor as its real value in
float64: an integer ``q`` of a fixed-point type with ``frac`` fractional bits
is the float ``q * 2**-frac``.  ``plan`` walks the quantised graph and, for
every node, says which re-quantisations the twin needs (before the operation,
on its accumulator, after it) and proves that float64 reproduces the golden
model exactly; it raises ValueError naming the node where it cannot.

The proof rests on one fact about IEEE arithmetic: an addition, subtraction,
multiplication or division whose exact result is a float64 value returns that
value.  Values on a grid ``2**-frac`` below ``2**53`` grid steps in magnitude
are float64 values, so it suffices that every sum, product and quotient
stays below ``2**53`` steps of its grid:

* a CMVM (dense, convolution, batch norm): every partial sum, in any order,
  is bounded by the sum of the largest magnitudes of its terms (``Linear.bounds``);
* an addition of tensors: likewise on the finest of their grids;
* a leaky relu: the product of the largest input and ``alpha``;
* an average: the window's sum on the accumulator's grid, and its quotient
  truncated toward zero (``trunc(fl(a / d))`` equals ``trunc(a / d)`` for
  integers ``|a| < 2**53`` and ``d >= 1``);
* a re-quantisation: scaling by a power of two, ``floor``, comparisons and
  the wrap-around ``r - 2**W * floor(r / 2**W)`` are exact for any float;
  only the bounds of a saturating type must be float64 values (at most 53
  magnitude bits).

Comparisons (max pooling, clipping) and data movement are always exact.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

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
    Table,
    Transpose,
    Upsample,
)
from mlinfn_compress.compress.ir.dispatch import OpTable

FLOAT64_BITS = 53  # significand of float64, implicit bit included
MAX_FRAC = 120  # grids 2**-frac with |frac| beyond this are refused (far from float64's exponent limits)
MOVES = (Reshape, Transpose, Pad, Crop, Upsample)
T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """Every integer in [lo, hi] on the grid 2**-frac: the values a tensor can take."""

    lo: int
    hi: int
    frac: int

    @staticmethod
    def of(t: FixedType) -> Range:
        return Range(t.min_int, t.max_int, t.frac)

    @property
    def bits(self) -> int:
        """Magnitude bits of the largest value."""
        return max(abs(self.lo), abs(self.hi)).bit_length()

    def type(self) -> FixedType:
        """The smallest fixed-point type holding every value of the range."""
        return FixedType.for_range(min(self.lo, -1) if self.lo < 0 else 0, max(self.hi, 1), self.frac)

    def with_zero(self) -> Range:
        return Range(min(self.lo, 0), max(self.hi, 0), self.frac)


@dataclass(frozen=True)
class Requant:
    """Converting values of ``src`` (None: any float) to ``dst``, with ``dst``'s rounding and overflow."""

    src: Range | None
    dst: FixedType
    rounds: bool  # whether a value can fall between two values of dst
    overflows: bool  # whether a value can lie outside dst's range


def lowest(t: FixedType) -> int:
    """The smallest integer of ``t`` that its overflow mode produces."""
    return -t.max_int if t.overflow == "SAT_SYM" and t.signed else t.min_int


def conversion(src: Range, dst: FixedType) -> tuple[bool, bool]:
    """(whether converting values of ``src`` to ``dst`` can round, whether it can overflow)."""
    shift = dst.frac - src.frac
    if shift < 0:  # any rounding gives the floor or the ceiling
        lo, hi, rounds = src.lo >> -shift, -((-src.hi) >> -shift), True
    else:
        lo, hi, rounds = src.lo << shift, src.hi << shift, False
    return rounds, lo < lowest(dst) or hi > dst.max_int


def requant(src: Range | None, dst: FixedType, where: str) -> Requant | None:
    """The re-quantisation of ``src`` to ``dst``; None when every value is already a value of ``dst``."""
    rounds, overflows = (True, True) if src is None else conversion(src, dst)
    if not rounds and not overflows:
        return None
    if overflows and max(-dst.min_int, dst.max_int).bit_length() > FLOAT64_BITS:
        raise ValueError(f"{where}: the bounds of {dst} need more than {FLOAT64_BITS} bits; float64 cannot hold them")
    return Requant(src, dst, rounds, overflows)


def after(src: Range, rq: Requant | None) -> Range:
    """The values after ``rq`` (within ``src`` when it changes nothing)."""
    if rq is None:
        return src
    if rq.dst.overflow == "SAT_ZERO":
        return Range.of(rq.dst).with_zero()
    return Range.of(rq.dst)


def fits(bits: int, where: str, what: str) -> None:
    if bits > FLOAT64_BITS:
        raise ValueError(f"{where}: {what} spans {bits} bits; float64 inference cannot be exact")


@dataclass
class NodePlan:
    """What the twin computes for one node, in order: ``before`` (per input), the operation,
    ``inner`` (a CMVM's or an average's accumulator overflow), the operation's end, ``after``."""

    node: Node
    before: list[Requant | None] = field(default_factory=list)
    inner: Requant | None = None
    after: Requant | None = None
    pre: Range | None = None  # the operation's own result, before ``after`` (for the framework's choices)


class _Planner:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def where(self, node: Node) -> str:
        return f"node '{node.name}' ({node.kind})"

    def check_types(self, node: Node) -> None:
        for role, t in node.types().items():
            if abs(t.frac) > MAX_FRAC:
                raise ValueError(
                    f"{self.where(node)}: {role} type {t} has a grid 2^{-t.frac} too far from 1 for float64"
                )

    def plan(self, node: Node) -> NodePlan:
        if not node.quantised or node.result_type is None:
            raise ValueError(f"{self.where(node)} is not quantised")
        self.check_types(node)
        res, where = node.result_type, self.where(node)
        in_types = self.graph.in_types(node)
        p = NodePlan(node, before=[None] * len(in_types))
        entry = PLANS.find(node)
        if entry is None:
            raise ValueError(f"{where}: no framework twin for this operation")
        if not entry(self, node, p, in_types, where):
            return p  # the op re-quantises nothing after itself
        p.after = requant(p.pre, res, where)
        return p

    # ---- one entry of PLANS per op: set the plan's ranges; False when nothing is re-quantised after ----

    def _linear(self, node: Linear, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        p.inner, p.pre = self.linear(node, in_types[0], where)
        return True

    def _clip(self, node: Clip, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        lo, hi, frac = node.bounds_int(in_types[0])
        p.pre = Range(lo, hi, frac)
        return True

    def _leaky_relu(self, node: LeakyRelu, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        p.pre = self.leaky_relu(node, in_types[0], where)
        return True

    def _table(self, node: Table, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        assert node.index_type is not None and node.result_type is not None
        requant(Range.of(in_types[0]), node.index_type, where + " index")
        fits(node.result_type.width, where, f"a table of {node.result_type}")
        return False

    def _pool(self, node: Pool, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        p.inner, p.pre = self.pool(node, in_types[0], where)
        return True

    def _merge(self, node: Merge, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        fits(node.magnitude(in_types).bit_length(), where, f"the {node.partial}")
        p.pre = Range(*node.exact_range(in_types))
        return True

    def _move(self, node: Node, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        assert node.result_type is not None
        p.before = [requant(Range.of(t), node.result_type, where) for t in in_types]
        return False

    def _cast(self, node: Cast, p: NodePlan, in_types: list[FixedType], where: str) -> bool:
        p.pre = Range.of(in_types[0])
        return True

    def linear(self, node: Linear, x_t: FixedType, where: str) -> tuple[Requant | None, Range]:
        acc = node.accum_type
        assert acc is not None and node.weight_type is not None and node.bias_type is not None
        for role, t in (("weight", node.weight_type), ("bias", node.bias_type)):
            fits(t.width, where, f"the {role} type {t}")
        lo, hi, mag = node.bounds(x_t)
        if mag.bit_length() > FLOAT64_BITS:
            raise ValueError(f"{where}: accumulator {acc} is too wide for exact float64 inference")
        inner = requant(Range(lo, hi, acc.frac), acc, where + " accumulator")
        return inner, after(Range(lo, hi, acc.frac), inner)

    def leaky_relu(self, node: LeakyRelu, x_t: FixedType, where: str) -> Range:
        assert node.alpha_type is not None and node.alpha_int is not None
        fa, a = node.alpha_type.frac, int(node.alpha_int)
        if fa < 0:
            raise ValueError(f"{where}: alpha type {node.alpha_type} needs fractional bits >= 0")
        fits((x_t.min_int * a).bit_length(), where, "alpha times the input")
        ends = [0, x_t.max_int << fa, x_t.min_int * a]
        return Range(min(ends), max(ends), x_t.frac + fa)

    def pool(self, node: Pool, x_t: FixedType, where: str) -> tuple[Requant | None, Range]:
        assert node.window is not None
        if node.mode == "max":
            # padding never wins: it is one step below the input's range (a window of padding alone gives it)
            empty = bool(np.any(node.counts(self.graph.shape_of(node.inputs[0])) == 0))
            values = Range(x_t.min_int - 1 if empty else x_t.min_int, x_t.max_int, x_t.frac)
            fits(Range(x_t.min_int - 1, x_t.max_int, x_t.frac).bits, where, f"the padding value below {x_t}")
            return None, values
        acc = node.accum_type
        assert acc is not None
        extra = acc.frac - x_t.frac
        if extra < 0:
            raise ValueError(f"{where}: the accumulator {acc} has fewer fractional bits than the input {x_t}")
        taps = node.window.taps
        total = Range(min(x_t.min_int * taps, 0) << extra, max(x_t.max_int * taps, 0) << extra, acc.frac)
        fits(total.bits, where, "the window's sum")
        inner = requant(total, acc, where + " accumulator")
        return inner, after(total, inner).with_zero()  # a quotient truncated toward zero lies between 0 and the sum


# op -> how its twin computes it exactly (the ranges and re-quantisations the framework's layers must meet)
PLANS: OpTable[Callable[..., bool]] = OpTable(
    "the framework twin",
    {
        Linear: _Planner._linear,
        Clip: _Planner._clip,
        LeakyRelu: _Planner._leaky_relu,
        Table: _Planner._table,
        Pool: _Planner._pool,
        Merge: _Planner._merge,
        **dict.fromkeys((Concat, *MOVES), _Planner._move),
        Cast: _Planner._cast,
    },
)


def needed(graph: Graph) -> list[Node]:
    """The nodes whose tensors reach the output, in order (the graph itself is left as it is)."""
    view = copy.copy(graph)
    view.prune_unused()
    return view.nodes


def input_requant(graph: Graph) -> Requant:
    """The twin's first step: any float input quantised to the graph's input type."""
    if graph.input_type is None:
        raise ValueError("graph is not quantised: no input type")
    t = graph.input_type
    if abs(t.frac) > MAX_FRAC:
        raise ValueError(f"input: type {t} has a grid 2^{-t.frac} too far from 1 for float64")
    rq = requant(None, t, INPUT)
    assert rq is not None
    return rq


def plan(graph: Graph) -> list[NodePlan]:
    """Every node reaching the output, with its re-quantisations; ValueError naming a node float64 cannot
    compute exactly."""
    planner = _Planner(graph)
    return [planner.plan(n) for n in needed(graph)]


def walk(
    graph: Graph,
    x: T,
    quant: Callable[[T, Requant | None, str], T],
    render: Callable[[list[T], NodePlan], T],
    input_name: str,
) -> T:
    """Build a twin: ``x`` (the framework's input) through the input quantiser (named ``input_name``), then
    every node's input re-quantisations (``quant``) and the node itself (``render``); returns the output."""
    tensors = {INPUT: quant(x, input_requant(graph), input_name)}
    for p in plan(graph):
        sources = zip(p.node.inputs, p.before, strict=True)
        xs = [quant(tensors[src], rq, f"{p.node.name}_in{i}") for i, (src, rq) in enumerate(sources)]
        tensors[p.node.name] = render(xs, p)
    return tensors[graph.output.name]


# ---- the float64 constants of a node ----


def value(q: int, frac: int) -> float:
    """The integer ``q`` with ``frac`` fractional bits as a float (exact)."""
    return math.ldexp(float(int(q)), -frac)


def kernel(node: Linear) -> tuple[np.ndarray, np.ndarray]:
    """(weights, bias) as float64: weights (K, N) for a matrix on the last axis, (*kernel, in, out) for a window."""
    assert node.weight_int is not None and node.bias_int is not None
    assert node.weight_type is not None and node.bias_type is not None
    w = to_float(node.weight_int, node.weight_type.frac)
    if node.window is not None:
        w = w.reshape(*node.window.kernel, node.n_in // node.window.taps, node.n_out)
    return w, to_float(node.bias_int, node.bias_type.frac)


def below(t: FixedType) -> float:
    """One step below the range of ``t``: max pooling's padding, which never wins over an input."""
    return value(t.min_int - 1, t.frac)
