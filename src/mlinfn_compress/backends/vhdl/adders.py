"""Adder graphs: a constant matrix-vector product as additions of shifted signals.

An :class:`AdderGraph` computes ``requantise(x @ W + b)`` for one input vector
of integers with operations that need no multiplier: additions and
subtractions of signals shifted left by constant amounts, a constant added
per output, and the output re-quantisation.  With ``--dsp`` a few products
``x_i * w`` (kind ``MUL``) take the weights that would need many adders.

Every node knows the exact range of its values: a linear node is a linear
form of the inputs (its coefficient vector), and over the box of input
ranges the lowest and highest values of a linear form are the sums of the
per-input extremes, so the ranges are exact, not interval estimates.  The
coefficient vectors also prove the graph right: the outputs' coefficients
must equal the matrix's columns, or the translation stops with an error.

The adders come from da4ml's CMVM solver (common subexpressions shared
across outputs); :func:`from_solution` translates its solution into this
structure, and :func:`csd_graph` is the plain canonical-signed-digit
decomposition used where the solver cannot take a matrix exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl.requant import half_constant
from mlinfn_compress.compress.fixed import requantize


class Kind(StrEnum):
    INPUT = "input"  # x_i
    ADD = "add"  # (a << sa) + (b << sb), or minus
    CONST_ADD = "const_add"  # (a << sa) + c, or c - (a << sa)
    CONST = "const"  # c (an output whose column is all zeros)
    MUL = "mul"  # x_i * c (a DSP product, --dsp only)
    REQUANT = "requant"  # the re-quantisation of a to a type
    CLAMP = "clamp"  # min(max(a << sa, lo), hi): the clip of a relu fused into the output


@dataclass
class AdderNode:
    kind: Kind
    a: int = -1  # operand node (ADD, CONST_ADD, MUL, REQUANT)
    sa: int = 0  # left shift of a
    b: int = -1  # second operand (ADD)
    sb: int = 0  # left shift of b
    sub: bool = False  # ADD: a - b; CONST_ADD: c - a
    const: int = 0  # CONST_ADD, CONST, MUL; INPUT: the input index
    lo: int = 0  # exact range of the node's values
    hi: int = 0
    rq: dict[str, Any] | None = None  # REQUANT: what the requant function needs
    bounds: tuple[int | None, int | None] = (None, None)  # CLAMP: lower and upper bound


@dataclass
class AdderGraph:
    """Nodes in topological order; ``outputs[j]`` is the node holding result j."""

    n_in: int
    in_lo: list[int]
    in_hi: list[int]
    nodes: list[AdderNode] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    coef: list[np.ndarray] = field(default_factory=list, repr=False)  # linear nodes: coefficients
    offset: list[int] = field(default_factory=list, repr=False)  # linear nodes: constant part
    _index: dict[tuple[Any, ...], int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lo = np.array([int(v) for v in self.in_lo], dtype=object)
        self._hi = np.array([int(v) for v in self.in_hi], dtype=object)
        for i in range(self.n_in):
            self._linear(Kind.INPUT, _unit(self.n_in, i), 0, const=i)

    # ---- building ----

    def _linear(self, kind: Kind, coef: np.ndarray, offset: int, **kw: Any) -> int:
        key: tuple[Any, ...] = (kind, kw.get("a", -1), kw.get("sa", 0), kw.get("b", -1), kw.get("sb", 0),
                                kw.get("sub", False), kw.get("const", 0))  # fmt: skip
        if key in self._index:
            return self._index[key]
        a, c = coef * self._lo, coef * self._hi
        lo = int(np.minimum(a, c).sum()) + offset if self.n_in else offset
        hi = int(np.maximum(a, c).sum()) + offset if self.n_in else offset
        self.nodes.append(AdderNode(kind, lo=lo, hi=hi, **kw))
        self.coef.append(coef)
        self.offset.append(offset)
        self._index[key] = len(self.nodes) - 1
        return len(self.nodes) - 1

    def add(self, a: int, sa: int, b: int, sb: int, sub: bool) -> int:
        if not sub and (b, sb) < (a, sa):  # one node for a + b and b + a
            a, sa, b, sb = b, sb, a, sa
        coef = (self.coef[a] << sa) + (-1 if sub else 1) * (self.coef[b] << sb)
        off = (self.offset[a] << sa) + (-1 if sub else 1) * (self.offset[b] << sb)
        return self._linear(Kind.ADD, coef, off, a=a, sa=sa, b=b, sb=sb, sub=sub)

    def const_add(self, a: int, sa: int, c: int, negate: bool) -> int:
        """(a << sa) + c, or c - (a << sa) when ``negate``."""
        sign = -1 if negate else 1
        coef = sign * (self.coef[a] << sa)
        off = sign * (self.offset[a] << sa) + c
        return self._linear(Kind.CONST_ADD, coef, off, a=a, sa=sa, sub=negate, const=c)

    def constant(self, c: int) -> int:
        return self._linear(Kind.CONST, _zeros(self.n_in), c, const=c)

    def mul(self, i: int, c: int) -> int:
        return self._linear(Kind.MUL, self.coef[i] * c, 0, a=i, const=c)

    def requant(self, a: int, rq: dict[str, Any]) -> int:
        t = rq["type"]
        return self._nonlinear(AdderNode(Kind.REQUANT, a=a, lo=t.min_int, hi=t.max_int, rq=rq))

    def clamp(self, a: int, sa: int, lo: int | None, hi: int | None) -> int:
        n = self.nodes[a]
        v_lo, v_hi = n.lo << sa, n.hi << sa
        if lo is not None:
            v_lo, v_hi = max(v_lo, lo), max(v_hi, lo)
        if hi is not None:
            v_lo, v_hi = min(v_lo, hi), min(v_hi, hi)
        return self._nonlinear(AdderNode(Kind.CLAMP, a=a, sa=sa, lo=v_lo, hi=v_hi, bounds=(lo, hi)))

    def _nonlinear(self, node: AdderNode) -> int:
        self.nodes.append(node)
        self.coef.append(_zeros(self.n_in))
        self.offset.append(0)
        return len(self.nodes) - 1

    # ---- facts ----

    @property
    def adders(self) -> int:
        """Additions and subtractions, the output constants included (a shift is wiring)."""
        return sum(1 for n in self.nodes if n.kind in (Kind.ADD, Kind.CONST_ADD))

    @property
    def multipliers(self) -> int:
        return sum(1 for n in self.nodes if n.kind == Kind.MUL)

    def operands(self, n: AdderNode) -> list[int]:
        return [i for i in (n.a, n.b) if i >= 0]

    def run(self, x: np.ndarray) -> np.ndarray:
        """The outputs for integer input rows (N, n_in), computed node by node as the hardware
        does (exact Python integers): the graph's own reference, beside the golden model."""
        rows = np.asarray(x).astype(object).reshape(-1, self.n_in)
        values: list[np.ndarray] = []
        for n in self.nodes:
            if n.kind == Kind.INPUT:
                v = rows[:, n.const]
            elif n.kind == Kind.CONST:
                v = np.full(len(rows), n.const, dtype=object)
            elif n.kind == Kind.ADD:
                a, b = values[n.a] * (1 << n.sa), values[n.b] * (1 << n.sb)
                v = a - b if n.sub else a + b
            elif n.kind == Kind.CONST_ADD:
                a = values[n.a] * (1 << n.sa)
                v = n.const - a if n.sub else a + n.const
            elif n.kind == Kind.MUL:
                v = values[n.a] * n.const
            elif n.kind == Kind.CLAMP:
                v, (lo, hi) = values[n.a] * (1 << n.sa), n.bounds
                v = v if lo is None else np.maximum(v, lo)
                v = v if hi is None else np.minimum(v, hi)
            else:
                v = _requant(n, values[n.a])
            values.append(np.asarray(v, dtype=object))
        return np.stack([values[i] for i in self.outputs], axis=1) if self.outputs else np.zeros((len(rows), 0))

    def at_zero(self, i: int) -> int:
        """Node i's value when every input is zero (registers start with it, so that the values
        in the pipeline are consistent from the first clock edge, and within their ranges)."""
        n = self.nodes[i]
        if n.kind == Kind.CLAMP:
            lo, hi = n.bounds
            v = self.at_zero(n.a) << n.sa
            v = v if lo is None else max(v, lo)
            return v if hi is None else min(v, hi)
        if n.kind != Kind.REQUANT:
            return int(self.offset[i])
        return int(_requant(n, np.array([self.at_zero(n.a)], dtype=object))[0])


def _requant(n: AdderNode, v: np.ndarray) -> np.ndarray:
    """A REQUANT node's results: the golden re-quantisation of its operand (less the rounding
    constant the operand already holds when the node is folded)."""
    assert n.rq is not None
    rq = n.rq
    if rq["folded"]:
        v = v - half_constant(rq["rounding"], rq["shift"])
    return requantize(v, rq["frac_in"], rq["type"])


def _unit(n: int, i: int) -> np.ndarray:
    v = _zeros(n)
    v[i] = 1
    return v


def _zeros(n: int) -> np.ndarray:
    return np.array([0] * n, dtype=object)


# ---- signed references while translating: value = (-1)**neg * node * 2**exp ----


@dataclass(frozen=True)
class Ref:
    node: int
    exp: int = 0
    neg: bool = False


def combine(g: AdderGraph, r0: Ref | None, r1: Ref | None, sub: bool) -> Ref | None:
    """The reference to ``r0 + r1`` (``r0 - r1`` when ``sub``); None stands for zero."""
    if r1 is None:
        return r0
    if sub:
        r1 = Ref(r1.node, r1.exp, not r1.neg)
    if r0 is None:
        return r1
    e = min(r0.exp, r1.exp)
    if r0.neg and not r1.neg:  # -a + b = b - a
        r0, r1 = r1, r0
    neg = r0.neg and r1.neg  # -a - b = -(a + b)
    node = g.add(r0.node, r0.exp - e, r1.node, r1.exp - e, sub=r0.neg != r1.neg)
    return Ref(node, e, neg)


def from_solution(g: AdderGraph, pipeline: Any) -> list[Ref | None]:
    """Add da4ml's solution (a ``da4ml.types.Pipeline`` of combinational stages) to ``g``;
    returns a reference per output (None: the column is zero)."""
    refs: list[Ref | None] = [Ref(i) for i in range(g.n_in)]
    for stage in pipeline.solutions:
        buf: list[Ref | None] = []
        for op in stage.ops:
            if op.opcode == -1:  # an input of the stage, scaled by 2**inp_shift
                r = refs[op.id0]
                buf.append(None if r is None else Ref(r.node, r.exp + int(stage.inp_shifts[op.id0]), r.neg))
            elif op.opcode in (0, 1):  # buf[id0] +/- buf[id1] * 2**data
                r1 = buf[op.id1]
                r1 = None if r1 is None else Ref(r1.node, r1.exp + int(op.data), r1.neg)
                buf.append(combine(g, buf[op.id0], r1, sub=op.opcode == 1))
            else:
                raise RuntimeError(f"da4ml's CMVM solution has an operation this backend does not render: {op}")
        refs = []
        for idx, shift, neg in zip(stage.out_idxs, stage.out_shifts, stage.out_negs, strict=True):
            r = buf[idx] if idx >= 0 else None
            refs.append(None if r is None else Ref(r.node, r.exp + int(shift), r.neg != bool(neg)))
    return refs


def csd_digits(w: int) -> list[tuple[int, int]]:
    """Canonical signed digits of an integer: [(shift, +1 or -1)], fewest non-zero digits."""
    out, k = [], 0
    while w:
        if w & 1:
            d = 2 - (w & 3)  # +1 if w = 1 mod 4, -1 if w = 3 mod 4
            out.append((k, d))
            w -= d
        w >>= 1
        k += 1
    return out


def tree_sum(g: AdderGraph, terms: list[Ref]) -> Ref | None:
    """A balanced tree of additions over ``terms`` (None when there are none)."""
    level: list[Ref | None] = list(terms)
    if not level:
        return None
    while len(level) > 1:
        nxt = [combine(g, level[k], level[k + 1], sub=False) for k in range(0, len(level) - 1, 2)]
        level = nxt + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def csd_graph(g: AdderGraph, w: np.ndarray) -> list[Ref | None]:
    """Every column as a balanced sum of the canonical signed digits of its weights (no sharing)."""
    refs = []
    for j in range(w.shape[1]):
        terms = [Ref(i, k, d < 0) for i in range(w.shape[0]) for k, d in csd_digits(int(w[i, j]))]
        refs.append(tree_sum(g, terms))
    return refs
