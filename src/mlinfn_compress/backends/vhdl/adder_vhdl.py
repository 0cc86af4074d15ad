"""An adder graph and its schedule as the statements of one clocked process.

Every node is a variable computed in its stage; every pipeline register is
a variable too, read before it is written (so synthesis makes it a
flip-flop), with the stages written last to first so that each stage reads
the values its registers held before the clock edge.  One process and no
internal signals keep GHDL fast.  Values that fit VHDL integers are
constrained integers of exactly their range; wider ones are
``ieee.numeric_std`` signed vectors of exactly their width, converted where
an operation mixes the two.  Shifts are ``* 2**k`` on integers (wiring after
synthesis) and ``shift_left`` on vectors; no weight is ever a factor, except
the DSP products of ``--dsp``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlinfn_compress.backends.vhdl.adders import AdderGraph, AdderNode, Kind
from mlinfn_compress.backends.vhdl.requant import INT_SHIFT_MAX, fits_int, signed_bits, signed_literal
from mlinfn_compress.backends.vhdl.schedule import Schedule


@dataclass
class CoreText:
    """What the core template lays out."""

    variables: list[dict[str, str]] = field(default_factory=list)  # of the clocked process
    stages: list[dict[str, Any]] = field(default_factory=list)  # the clocked stages, last stage first
    requants: list[dict[str, Any]] = field(default_factory=list)


def _is_int(n: AdderNode) -> bool:
    return fits_int(n.lo, n.hi)


def _int(v: int) -> str:
    return f"({v})" if v < 0 else str(v)


def _vtype(n: AdderNode) -> str:
    if _is_int(n):
        return f"integer range {n.lo} to {n.hi}"
    return f"signed({signed_bits(n.lo, n.hi) - 1} downto 0)"


class _Writer:
    def __init__(self, g: AdderGraph, s: Schedule, y_int: bool, y_width: int) -> None:
        self.g, self.s = g, s
        self.y_int, self.y_width = y_int, y_width
        self.text = CoreText()
        self.requant_fn: dict[tuple[Any, ...], str] = {}

    def ref(self, i: int, k: int) -> str:
        """Node i's value during stage k."""
        n = self.g.nodes[i]
        if n.kind == Kind.CONST:
            return str(n.const) if _is_int(n) else signed_literal(n.const, signed_bits(n.lo, n.hi))
        if k > self.s.stage[i]:
            return f"r{i}_{k}"
        if n.kind == Kind.INPUT:
            return f"x({n.const})"
        return f"n{i}"

    def operand(self, i: int, shift: int, k: int, width: int | None) -> str:
        """Operand i shifted left, as an integer expression (width None) or a ``width``-bit vector."""
        n, text = self.g.nodes[i], self.ref(i, k)
        if width is None:
            return f"{text} * 2**{shift}" if shift else text
        if n.kind == Kind.CONST:
            return signed_literal(n.const << shift, width)
        v = f"to_signed({text}, {width})" if _is_int(n) else f"resize({text}, {width})"
        return f"shift_left({v}, {shift})" if shift else v

    def int_ok(self, n: AdderNode, parts: list[tuple[int, int]]) -> bool:
        """Integer arithmetic is exact when the result and every shifted operand fit integers."""
        if not _is_int(n):
            return False
        for i, shift in parts:
            m = self.g.nodes[i]
            if shift > INT_SHIFT_MAX or not fits_int(m.lo << shift, m.hi << shift):
                return False
        return True

    def statement(self, i: int, k: int) -> str:
        """The assignment of node i's variable in stage k."""
        n = self.g.nodes[i]
        if n.kind != Kind.CLAMP:
            return f"n{i} := {self.expr(i, k)};"
        a = self.g.nodes[n.a]
        if self.int_ok(n, [(n.a, n.sa)]):
            v, w = self.operand(n.a, n.sa, k, None), None
        else:
            w = max(signed_bits(a.lo << n.sa, a.hi << n.sa), signed_bits(n.lo, n.hi))
            v = self.operand(n.a, n.sa, k, w)
        lo, hi = n.bounds
        branches = []
        if lo is not None:
            branches.append((f"{v} < {self.const(lo, w)}", self.literal(n, lo)))
        if hi is not None:
            branches.append((f"{v} > {self.const(hi, w)}", self.literal(n, hi)))
        text = ""
        for cond, value in branches:
            text += f"{'if' if not text else ' elsif'} {cond} then n{i} := {value};"
        return text + f" else n{i} := {self.finish(n, v, w) if w is not None else v}; end if;"

    @staticmethod
    def const(v: int, w: int | None) -> str:
        return _int(v) if w is None else signed_literal(v, w)

    def expr(self, i: int, k: int) -> str:
        n, g = self.g.nodes[i], self.g
        if n.kind == Kind.REQUANT:
            assert n.rq is not None
            return f"{self.requant(n.rq)}({self.ref(n.a, k)})"
        if n.kind == Kind.MUL:
            factor = g.nodes[n.a]
            if self.int_ok(n, [(n.a, 0)]) and fits_int(n.const, n.const):
                return f"{self.ref(n.a, k)} * {_int(n.const)}"
            wa, wc = signed_bits(factor.lo, factor.hi), signed_bits(n.const, n.const)
            prod = f"{self.operand(n.a, 0, k, wa)} * {signed_literal(n.const, wc)}"
            return self.finish(n, prod, wa + wc)
        parts = [(n.a, n.sa)] + ([(n.b, n.sb)] if n.kind == Kind.ADD else [])
        if self.int_ok(n, parts) and (n.kind != Kind.CONST_ADD or fits_int(n.const, n.const)):
            a = self.operand(n.a, n.sa, k, None)
            if n.kind == Kind.ADD:
                return f"{a} {'-' if n.sub else '+'} {self.operand(n.b, n.sb, k, None)}"
            if n.sub:
                return f"{n.const} - {a}"
            return f"{a} - {-n.const}" if n.const < 0 else f"{a} + {n.const}"
        w = max(
            [signed_bits(n.lo, n.hi)]
            + [signed_bits(g.nodes[i].lo << s, g.nodes[i].hi << s) for i, s in parts]
            + [signed_bits(n.const, n.const)]
        )
        a = self.operand(n.a, n.sa, k, w)
        if n.kind == Kind.ADD:
            body = f"{a} {'-' if n.sub else '+'} {self.operand(n.b, n.sb, k, w)}"
        else:
            c = signed_literal(n.const, w)
            body = f"{c} - {a}" if n.sub else f"{a} + {c}"
        return self.finish(n, body, w)

    def finish(self, n: AdderNode, body: str, w: int) -> str:
        """A ``w``-bit vector expression as the node's own type."""
        if _is_int(n):
            return f"to_integer({body})"
        nw = signed_bits(n.lo, n.hi)
        return f"resize({body}, {nw})" if nw != w else body

    def literal(self, n: AdderNode, v: int) -> str:
        return str(v) if _is_int(n) else signed_literal(v, signed_bits(n.lo, n.hi))

    def requant(self, rq: dict[str, Any]) -> str:
        key = tuple((k, str(v)) for k, v in sorted(rq.items()) if k != "fn")
        if key not in self.requant_fn:
            name = f"requant_{len(self.requant_fn)}"
            self.requant_fn[key] = name
            self.text.requants.append(dict(rq, fn=name))
        return self.requant_fn[key]

    def output(self, i: int, k: int) -> str:
        """Node i as an element of the core's result vector."""
        n, text = self.g.nodes[i], self.ref(i, k)
        if n.kind == Kind.CONST:
            return str(n.const) if self.y_int else signed_literal(n.const, self.y_width)
        if self.y_int:
            return text  # the node's range lies inside the result type's
        return f"to_signed({text}, {self.y_width})" if _is_int(n) else f"resize({text}, {self.y_width})"

    def write(self) -> CoreText:
        g, s, text = self.g, self.s, self.text
        lines: list[list[str]] = [[] for _ in range(s.latency)]
        for i, n in enumerate(g.nodes):
            if n.kind == Kind.CONST:
                continue
            if n.kind != Kind.INPUT:
                text.variables.append({"name": f"n{i}", "type": _vtype(n)})
                lines[s.stage[i]].append(self.statement(i, s.stage[i]))
            for k in range(s.stage[i] + 1, min(s.last[i], s.latency - 1) + 1):
                init = self.literal(n, self.g.at_zero(i))
                text.variables.append({"name": f"r{i}_{k}", "type": f"{_vtype(n)} := {init}"})
                lines[k - 1].append(f"r{i}_{k} := {self.ref(i, k - 1)};")
        for j, i in enumerate(g.outputs):
            lines[s.latency - 1].append(f"y({j}) <= {self.output(i, s.latency - 1)};")
        for k in reversed(range(s.latency)):
            text.stages.append({"index": k, "lines": lines[k]})
        return text


def core_text(g: AdderGraph, s: Schedule, y_int: bool, y_width: int) -> CoreText:
    """The declarations and per-stage statements of the core's process; the inputs ``x(i)`` and
    results ``y(j)`` are integers or vectors as their tensors' element types are."""
    return _Writer(g, s, y_int, y_width).write()
