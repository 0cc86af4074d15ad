"""The CMVM core of a Linear node: ``y = requantise(W x + b)`` for one input vector.

Every dense layer, convolution window and batch norm of the IR is a Linear
node; its core is one entity with ports ``x`` (the K inputs of one window)
and ``y`` (the N results), a fixed latency and no valid signal (the top
level carries valid).  ``render_core`` returns the entity and its latency.

The default rendering (``--arith shift-add``) is an adder graph of shifted
signals (``lower``), pipelined to the clock period (``schedule``) and
written as one clocked process (``adder_vhdl``).  The naive rendering
(``--arith naive``) is a sum of products per output, computed in one clock;
a layer whose sums do not fit 32-bit VHDL integers is then rendered in
``ieee.numeric_std`` signed arithmetic instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np

from mlinfn_compress.backends.vhdl.adder_vhdl import core_text
from mlinfn_compress.backends.vhdl.delay import delay_model
from mlinfn_compress.backends.vhdl.design import VHDL_INT_MAX, ArithOptions
from mlinfn_compress.backends.vhdl.lower import lower_linear
from mlinfn_compress.backends.vhdl.requant import (
    requant_spec,
    signed_bits,
    signed_literal,
    type_fits_int,
    wide_requant_spec,
)
from mlinfn_compress.backends.vhdl.schedule import schedule
from mlinfn_compress.compress.fixed import bits_for_range, requantize
from mlinfn_compress.compress.ir import Cast, Clip, Graph, Linear
from mlinfn_compress.errors import UserError


@dataclass
class Core:
    """A rendered core and what it costs."""

    text: str
    latency: int  # clock cycles from x to y
    adders: int
    multipliers: int  # DSP products (--dsp) or, naive, the generic constant products
    register_bits: int
    stage_ns: float | None = None  # the longest stage by the delay model (None: not pipelined, naive)


def render_core(
    env: jinja2.Environment, graph: Graph, node: Linear, ctx: dict[str, Any], options: ArithOptions | None = None
) -> tuple[str, int]:
    """The core entity's VHDL and its latency in clock cycles."""
    core = build_core(env, graph, node, ctx, options or ArithOptions())
    return core.text, core.latency


def build_core(
    env: jinja2.Environment,
    graph: Graph,
    node: Linear,
    ctx: dict[str, Any],
    options: ArithOptions,
    then: Clip | Cast | None = None,
) -> Core:
    """The core entity of ``node`` rendered with ``options``, and its costs; with ``then`` (shift-add
    only) the core also computes that clip or cast of its results."""
    if options.arith == "naive":
        text, latency = _render_naive(env, graph, node, ctx)
        out_t = node.result_type
        assert out_t is not None
        bits = node.n_out * signed_bits(out_t.min_int, out_t.max_int)
        return Core(text, latency, 0, node.multipliers(), bits)
    x_t = graph.in_type(node)
    g = lower_linear(node, x_t, options.dsp, then)
    s = schedule(g, options.clock_period_ns, delay_model(options.family))
    out_t = (then or node).result_type
    assert out_t is not None
    body = core_text(g, s, type_fits_int(out_t), signed_bits(out_t.min_int, out_t.max_int))
    zeros = int(np.count_nonzero(np.asarray(node.weight_int) == 0))
    ctx = dict(
        ctx,
        node=node,
        then=then,
        zeros=zeros,
        n_in=node.n_in,
        n_out=node.n_out,
        adders=g.adders,
        multipliers=g.multipliers,
        period=options.clock_period_ns,
        family=options.family,
        latency=s.latency,
        register_bits=s.register_bits,
        critical=round(s.critical_ns, 2),
        **body.__dict__,
    )
    text = env.get_template("cmvm_adders.vhd.j2").render(ctx)
    return Core(
        text,
        s.latency,
        g.adders,
        g.multipliers,
        s.register_bits,
        round(s.critical_ns + delay_model(options.family).register_ns, 3),
    )


def sum_expr(weights: np.ndarray, bias: int) -> str:
    """``b + x(i) * w_i + ...`` over the non-zero weights (a zero weight makes no term)."""
    terms = [str(int(bias))] if bias else []
    for i, w in enumerate(int(v) for v in weights):
        if w == 0:
            continue
        sign = "-" if w < 0 else "+"
        mag = abs(w)
        term = f"x({i})" if mag == 1 else f"x({i}) * {mag}"
        if not terms:
            terms.append(term if w > 0 else f"-{term}")
        else:
            terms.append(f"{sign} {term}")
    return " ".join(terms) if terms else "0"


def _render_naive(env: jinja2.Environment, graph: Graph, node: Linear, ctx: dict[str, Any]) -> tuple[str, int]:
    assert node.accum_type is not None and node.result_type is not None and node.weight_int is not None
    x_t = graph.in_type(node)
    w, b = node.constants(x_t)
    lo, hi, mag = node.bounds(x_t)
    zeros = int(np.count_nonzero(np.asarray(node.weight_int) == 0))
    ctx = dict(ctx, node=node, zeros=zeros, n_in=node.n_in, n_out=node.n_out)
    if mag > VHDL_INT_MAX or node.accum_type.width > 32:
        return _render_wide(env, graph, node, ctx, lo, hi, mag), 1
    sums = [sum_expr(w[:, j], int(b[j])) for j in range(node.n_out)]
    ctx.update(sums=sums, rq=requant_spec(node.accum_type.frac, lo, hi, node.result_type))
    return env.get_template("cmvm_naive.vhd.j2").render(ctx), 1


def _render_wide(
    env: jinja2.Environment, graph: Graph, node: Linear, ctx: dict[str, Any], lo: int, hi: int, mag: int
) -> str:
    """A CMVM in ``numeric_std`` signed arithmetic, for sums wider than VHDL integers."""
    assert node.accum_type is not None and node.result_type is not None and node.weight_int is not None
    x_t = graph.in_type(node)
    _, b = node.constants(x_t)
    shift_w, _ = node.shifts(x_t)
    # Wide enough for the accumulator and for every partial sum: the sum is exact.
    acc_w = max(node.accum_type.width + (0 if node.accum_type.signed else 1), bits_for_range(-mag, mag))
    x_w = x_t.width + (0 if x_t.signed else 1)
    if not type_fits_int(node.result_type):
        raise UserError(
            f"layer '{node.name}': --arith naive cannot write results of type {node.result_type} "
            "(wider than VHDL integers); use the default --arith shift-add"
        )
    rq = wide_requant_spec(node.accum_type.frac, lo, hi, node.result_type, acc_w, "requant")
    weights = np.asarray(node.weight_int)
    sums = []
    for j in range(node.n_out):
        terms = [signed_literal(int(b[j]), acc_w)] if int(b[j]) else []
        for i, wv in enumerate(int(v) for v in weights[:, j]):
            if wv == 0:
                continue
            if abs(wv) > VHDL_INT_MAX:
                raise UserError(
                    f"layer '{node.name}': weight {wv} does not fit the 32-bit integers of the VHDL backend"
                )
            term = f"resize(to_signed(x({i}), {x_w}) * to_signed({wv}, {bits_for_range(min(wv, -1), wv)}), ACC_W)"
            terms.append(f"shift_left({term}, {shift_w})" if shift_w else term)
        if terms[int(b[j]) != 0 :]:
            sums.append("requant(" + "\n        + ".join(terms) + ")")
        else:  # no weights: a constant, folded here (ghdl --synth cannot fold numeric_std calls)
            const = requantize(np.array([int(b[j])], dtype=object), node.accum_type.frac, node.result_type)
            sums.append(str(int(const[0])))
    ctx.update(sums=sums, rq=rq, acc_w=acc_w)
    return env.get_template("cmvm_wide.vhd.j2").render(ctx)
