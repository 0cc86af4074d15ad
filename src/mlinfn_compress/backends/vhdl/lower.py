"""A Linear node lowered to an adder graph: ``requantise(x @ W + b)`` without multipliers.

The integer matrix goes to da4ml's CMVM solver (``da4ml.cmvm.solve``), which
shares common subexpressions across the outputs; its solution is translated
into an :class:`~.adders.AdderGraph` and checked against the matrix.  The
bias, the output's re-quantisation and, with ``dsp``, the products given to
DSP multipliers are added here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl.adders import AdderGraph, Ref, csd_digits, csd_graph, from_solution, tree_sum
from mlinfn_compress.backends.vhdl.requant import ADD_HALF, half_constant, requant_spec, shifted_range
from mlinfn_compress.compress.fixed import FixedType, bits_for_range, requantize
from mlinfn_compress.compress.ir import Cast, Clip, Linear
from mlinfn_compress.compress.ir.elementwise import const_int
from mlinfn_compress.errors import UserError

# --dsp: a weight whose canonical signed digits number at least this many (two or more
# adders as shift-and-add) is cheaper as one DSP product.
DSP_MIN_DIGITS = 3
FLOAT32_EXACT = 2**24  # integers the solver's float32 kernel holds exactly


def dsp_mask(w: np.ndarray) -> np.ndarray:
    """The weights that ``--dsp`` maps to DSP multiplications."""
    digits = np.vectorize(lambda v: len(csd_digits(int(v))), otypes=[np.int64])(w) if w.size else w
    return np.asarray(digits >= DSP_MIN_DIGITS, dtype=bool).reshape(w.shape)


def solve(g: AdderGraph, w: np.ndarray) -> list[Ref | None]:
    """The columns of ``w`` as adder-graph references, by da4ml's solver where it can take the matrix."""
    if not any(int(v) for v in w.ravel()):
        return [None] * w.shape[1]
    if max(abs(int(v)) for v in w.ravel()) >= FLOAT32_EXACT or max(abs(v) for v in (*g.in_lo, *g.in_hi)) >= 2**53:
        return csd_graph(g, w)  # beyond what the solver's float arithmetic holds exactly
    from da4ml.cmvm import solve as da4ml_solve

    qintervals = [(float(lo), float(hi), 1.0) for lo, hi in zip(g.in_lo, g.in_hi, strict=True)]
    # adder_size=1: cost in bits; carry_size=-1: one unit of latency per adder (da4ml's defaults).
    # One matrix decomposition instead of a search over all: ten times faster, as cheap on these layers.
    solution = da4ml_solve(
        w.astype(np.float32), qintervals=qintervals, adder_size=1, carry_size=-1, search_all_decompose_dc=False
    )
    return from_solution(g, solution)


def lower_linear(node: Linear, x_t: FixedType, dsp: bool = False, then: Clip | Cast | None = None) -> AdderGraph:
    """The node's adder graph for inputs of type ``x_t``; its outputs are the node's results, or,
    with ``then`` (the clip or cast that alone consumes them), that node's results."""
    assert node.quantised and node.accum_type is not None and node.result_type is not None
    assert node.weight_int is not None and node.bias_int is not None
    acc_t = node.accum_type
    w = np.array([[int(v) for v in row] for row in np.asarray(node.weight_int)], dtype=object).reshape(
        node.n_in, node.n_out
    )
    sw, sb = node.shifts(x_t)
    bias = [int(b) << sb for b in np.asarray(node.bias_int).ravel()]
    lo, hi, _ = node.column_bounds(x_t)
    if min(lo, default=0) < acc_t.min_int or max(hi, default=0) > acc_t.max_int:
        raise UserError(
            f"layer '{node.name}': its sums reach [{min(lo)}, {max(hi)}], beyond its accumulator {acc_t}; "
            "the VHDL backend needs accumulators that cannot overflow (quantise the model again)"
        )
    g = AdderGraph(node.n_in, [x_t.min_int] * node.n_in, [x_t.max_int] * node.n_in)
    mask = dsp_mask(w) if dsp else np.zeros(w.shape, dtype=bool)
    refs = solve(g, np.where(mask, 0, w))
    for j in range(node.n_out):
        products = [Ref(g.mul(int(i), int(w[i, j]))) for i in np.flatnonzero(mask[:, j])]
        if products:
            refs[j] = tree_sum(g, [r for r in [refs[j], *products] if r is not None])
        _check_column(g, refs[j], w[:, j], node.name, j)
    out = _Output(g, node.result_type, acc_t.frac, sw, then)
    g.outputs = [out.build(refs[j], bias[j]) for j in range(node.n_out)]
    return g


def _check_column(g: AdderGraph, r: Ref | None, column: np.ndarray, name: str, j: int) -> None:
    """The adder graph must compute exactly the matrix column (the translation's proof)."""
    got: list[int | None]
    if r is None:
        got = [0] * len(column)
    else:
        c = g.coef[r.node] * (-1 if r.neg else 1)
        got = [int(v) << r.exp if r.exp >= 0 else _exact_shr(int(v), -r.exp) for v in c]
    if got != [int(v) for v in column] or (r is not None and g.offset[r.node] != 0):
        raise RuntimeError(f"layer '{name}': the adder graph of output {j} does not compute its matrix column")


def _exact_shr(v: int, k: int) -> int | None:
    return v >> k if v % (1 << k) == 0 else None


_SATURATING = ("SAT", "SAT_SYM")


class _Output:
    """The operations after a column's sum: its bias, the node's re-quantisation and the fused
    clip or cast, as adder-graph nodes."""

    def __init__(self, g: AdderGraph, t: FixedType, frac: int, sw: int, then: Clip | Cast | None) -> None:
        self.g, self.t, self.frac, self.sw, self.then = g, t, frac, sw, then

    def reference(self, acc: int) -> int:
        """What the golden model makes of an accumulator value (for a column of zeros)."""
        v = requantize(np.array([acc], dtype=object), self.frac, self.t)
        if self.then is not None:
            v = self.then.forward_int([v], [self.t])
        return int(np.asarray(v).ravel()[0])

    def steps(self, f: int, lo: int, hi: int) -> list[tuple[Any, ...]]:
        """("requant", type) and ("clamp", frac, lo, hi) from a sum in [lo, hi] with ``f`` fractional bits."""
        out: list[tuple[Any, ...]] = []
        if not requant_spec(f, lo, hi, self.t)["identity"]:
            out.append(("requant", self.t))
        c = self.then
        if isinstance(c, Clip):
            assert c.result_type is not None
            _, _, cf = c.bounds_int(self.t)
            rt = c.result_type
            bounds = []
            sat_lo = -rt.max_int if rt.overflow == "SAT_SYM" and rt.signed else rt.min_int
            for v, limit in ((c.lo, sat_lo), (c.hi, rt.max_int)):
                b = None if v is None else const_int(v, cf)
                implied = b is not None and rt.overflow in _SATURATING and self._rq(b, cf, rt) == limit
                bounds.append(None if implied else b)
            if bounds != [None, None]:
                out.append(("clamp", cf, *bounds))
            out.append(("requant", rt))
        elif isinstance(c, Cast):
            assert c.result_type is not None
            out.append(("requant", c.result_type))
        return out

    @staticmethod
    def _rq(v: int, frac: int, t: FixedType) -> int:
        return int(requantize(np.array([v], dtype=object), frac, t)[0])

    def build(self, r: Ref | None, bias: int) -> int:
        """The node holding the output of a column ``r`` (None: all zeros) with its ``bias``."""
        g = self.g
        if r is None:
            return g.constant(self.reference(bias))
        e = r.exp + self.sw  # the column's value is (-1)**neg * node * 2**e on the accumulator grid
        sa, c, f = (e, bias, self.frac) if e >= 0 else (0, bias << -e, self.frac - e)
        n = g.nodes[r.node]
        lo, hi = (c - (n.hi << sa), c - (n.lo << sa)) if r.neg else ((n.lo << sa) + c, (n.hi << sa) + c)
        steps = self.steps(f, lo, hi)
        if steps and steps[0][0] == "requant":
            t = steps[0][1]
            shift = f - t.frac
            if shift > 0 and t.rounding in ADD_HALF:  # the rounding constant joins the bias: no adder of its own
                c += half_constant(t.rounding, shift)
                steps[0] = ("requant", t, True)
        if c == 0 and not r.neg:
            a, f = r.node, f - sa  # a shift is wiring: use the node itself, on a coarser grid
            if not steps and sa:
                steps = [("requant", self.t)]  # a left shift (wiring) onto the result's grid
        else:
            a = g.const_add(r.node, sa, c, negate=r.neg)
        for step in steps:
            if step[0] == "requant":
                a = _requant(g, a, f, step[1], folded=len(step) > 2)
                f = step[1].frac
            else:
                _, cf, b_lo, b_hi = step
                a, f = g.clamp(a, cf - f, b_lo, b_hi), cf
        return a


def _requant(g: AdderGraph, a: int, f: int, t: FixedType, folded: bool) -> int:
    """Node ``a`` (``f`` fractional bits) re-quantised to ``t``.  A saturation that follows a rounding
    with logic of its own (an adder, an increment, a tie to even) is a re-quantisation node of its own, so
    that the pipeline can cut between the two: rounding first, then the saturation."""
    node = g.nodes[a]
    rq = requant_spec(f, node.lo, node.hi, t, folded=folded)
    if rq["identity"]:
        return a
    rounds = rq["add"] or rq["increment"] or rq["tie_even"]
    if not (rq["check_range"] and rounds and t.overflow in _SATURATING):
        return g.requant(a, rq)
    # the rounded value on t's grid, wide enough to never overflow, then its saturation to t
    lo, hi = shifted_range(node.lo, node.hi, rq["shift"])
    width = bits_for_range(min(lo, -1), max(hi, 0))
    wide = FixedType(width, width - t.frac, True, t.rounding, "WRAP")
    rounded = g.requant(a, requant_spec(f, node.lo, node.hi, wide, folded=folded))
    return g.requant(rounded, requant_spec(t.frac, g.nodes[rounded].lo, g.nodes[rounded].hi, t))
