"""Per-node entities of the dataflow architecture: element-wise operations, pooling, data movement.

Each renderer returns the entity's VHDL and its latency in clock cycles
(0 for wiring, 1 for a registered stage).  Index tables computed here from
the IR's own window and movement definitions tell the VHDL which input
element every output reads, so the hardware and the golden model share one
definition of every window, padding and copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2
import numpy as np

from mlinfn_compress.backends.vhdl.design import int_table
from mlinfn_compress.backends.vhdl.requant import (
    check_int,
    fits_int,
    requant_spec,
    signed_bits,
    signed_literal,
    type_fits_int,
    wide_requant_spec,
)
from mlinfn_compress.compress.fixed import FixedType, bits_for_range
from mlinfn_compress.compress.ir import (
    Cast,
    Clip,
    Concat,
    Graph,
    LeakyRelu,
    Linear,
    Merge,
    Node,
    Pool,
    Shape,
    Softmax,
    Table,
    patches,
)
from mlinfn_compress.compress.ir.dispatch import OpTable
from mlinfn_compress.compress.ir.elementwise import const_int
from mlinfn_compress.compress.ir.movement import Movement
from mlinfn_compress.errors import UserError


@dataclass
class Rendered:
    text: str
    latency: int


def linear_sources(graph: Graph, node: Linear) -> tuple[int, list[int]]:
    """(positions, table): for every position and matrix input, the flat input index it reads (-1: padding)."""
    shape = graph.shape_of(node.inputs[0])
    idx = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(1, *shape) + 1
    rows = node.rows(idx, 0) - 1
    table = rows.reshape(-1).tolist()
    return len(table) // node.n_in, table


def pool_sources(graph: Graph, node: Pool) -> tuple[int, int, list[int], list[int]]:
    """(positions, taps, table of flat spatial input indices or -1, divisor per position)."""
    shape = graph.shape_of(node.inputs[0])
    assert node.window is not None
    spatial = shape[:-1]
    idx = np.arange(int(np.prod(spatial)), dtype=np.int64).reshape(1, *spatial, 1) + 1
    p = patches(idx, node.window, 0)[..., 0] - 1  # (1, *out_spatial, taps)
    taps = node.window.taps
    table = p.reshape(-1).tolist()
    return len(table) // taps, taps, table, [int(d) for d in np.ravel(node.divisors(shape))]


def render_elementwise(
    env: jinja2.Environment, graph: Graph, node: Node, base: dict[str, Any], n: int | None = None
) -> Rendered:
    """Clip, cast, leaky relu, lookup table and the merges: one function per element, one register stage.

    ``n``: how many elements the entity takes (default: the whole tensor; a stream: one pixel).  The
    op's statements are its template ``elementwise/<node.op>.vhd.j2``; its entry in ``ELEMENTWISE``
    computes the data that template needs (one entry serves a family: every merge).
    """
    res = node.result_type
    assert res is not None
    types = graph.in_types(node)
    describe = [f"input {', '.join(map(str, types))}, result {res}."]
    data = ELEMENTWISE[node]
    ctx = dict(base, node=node, n=node.size if n is None else n, describe=describe, requants=[], variable=None,
               table=None, op=node.op)  # fmt: skip
    data(ctx, node, types)
    return Rendered(env.get_template("elementwise.vhd.j2").render(ctx), 1)


def _where(node: Node) -> str:
    return f"layer '{node.name}' ({node.kind})"


def _cast(ctx: dict[str, Any], node: Cast, types: list[FixedType]) -> None:
    x_t, res = types[0], node.result_type
    assert res is not None
    ctx["requants"].append(requant_spec(x_t.frac, x_t.min_int, x_t.max_int, res))


def _clip(ctx: dict[str, Any], node: Clip, types: list[FixedType]) -> None:
    """``v := x << s``, clamped to the bounds, then re-quantised; in integers, or numeric_std where
    the values are wider."""
    x_t, res = types[0], node.result_type
    assert res is not None
    lo, hi, frac = node.bounds_int(x_t)
    s = frac - x_t.frac
    bounds = [const_int(v, frac) if v is not None else None for v in (node.lo, node.hi)]
    v_lo, v_hi = x_t.min_int << s, x_t.max_int << s
    width = 0
    if not (fits_int(v_lo, v_hi) and all(b is None or fits_int(b, b) for b in bounds)):
        width = max(signed_bits(v_lo, v_hi), *(signed_bits(b, b) for b in bounds if b is not None))
    ctx.update(variable=f"signed({width - 1} downto 0)" if width else "integer", width=width,
               x_fits=type_fits_int(x_t), shift=s)  # fmt: skip
    ctx["bounds"] = [
        {"compare": cmp, "literal": signed_literal(b, width) if width else str(b)}
        for b, cmp in zip(bounds, ("<", ">"), strict=True)
        if b is not None
    ]
    ctx["requants"].append(requant_spec(frac, lo, hi, res))
    ctx["describe"].append(f"clip to [{node.lo}, {node.hi}], then re-quantise")


def _leaky_relu(ctx: dict[str, Any], node: LeakyRelu, types: list[FixedType]) -> None:
    x_t, res = types[0], node.result_type
    assert node.alpha_type is not None and node.alpha_int is not None and res is not None
    fa, a = node.alpha_type.frac, int(node.alpha_int)
    ends = [x_t.max_int << fa, x_t.min_int << fa, x_t.min_int * a, x_t.max_int * a, 0]
    check_int(max(abs(e) for e in ends), _where(node))
    ctx.update(variable="integer", alpha=a, alpha_frac=fa)
    lo = min(0, x_t.min_int * a) if a >= 0 else min(0, x_t.max_int * a)
    ctx["requants"].append(requant_spec(x_t.frac + fa, lo, max(ends), res))
    ctx["describe"].append(f"alpha = {a} * 2^-{fa} ({node.alpha_type})")


def _table(ctx: dict[str, Any], node: Table, types: list[FixedType]) -> None:
    x_t, res = types[0], node.result_type
    assert node.index_type is not None and node.table_int is not None and res is not None
    check_int(max(abs(res.min_int), abs(res.max_int)), _where(node))
    idx_t = node.index_type
    ctx["requants"].append(requant_spec(x_t.frac, x_t.min_int, x_t.max_int, idx_t, fn="to_index"))
    ctx["index_min"] = idx_t.min_int
    ctx["table"] = [int(v) for v in node.table_int]
    ctx["table_text"] = int_table(ctx["table"], 16)
    ctx["describe"].append(f"{node.function} table of {len(ctx['table'])} entries indexed by {idx_t}")


def _merge(ctx: dict[str, Any], node: Merge, types: list[FixedType]) -> None:
    """Inputs shifted to the finest grid, combined in integers, re-quantised."""
    res = node.result_type
    assert res is not None
    check_int(node.magnitude(types), _where(node))
    lo, hi, frac = node.exact_range(types)
    ctx["shifts"] = node.shifts(types)
    ctx["requants"].append(requant_spec(frac, lo, hi, res))


# op -> the function computing the data its statements (template elementwise/<op>.vhd.j2) need
ELEMENTWISE: OpTable[Callable[..., None]] = OpTable(
    "the VHDL element-wise entity",
    {Cast: _cast, Clip: _clip, LeakyRelu: _leaky_relu, Table: _table, Merge: _merge},
)


def pool_requant(graph: Graph, node: Pool, taps: int) -> tuple[int, dict[str, Any]]:
    """(extra, requant): the left shift that puts an input on the average's accumulator grid (0 for
    max) and the re-quantisation of the pooled value, for windows of ``taps`` cells."""
    x_t = graph.in_type(node)
    res = node.result_type
    assert res is not None
    if node.mode != "avg":
        check_int(max(abs(x_t.min_int), abs(x_t.max_int)), f"layer '{node.name}' ({node.kind})")
        return 0, requant_spec(x_t.frac, x_t.min_int, x_t.max_int, res)
    acc = node.accum_type
    assert acc is not None
    extra = acc.frac - x_t.frac
    bound = max(abs(x_t.min_int), abs(x_t.max_int)) * taps << extra
    check_int(bound, f"layer '{node.name}' ({node.kind})")
    lo, hi = (x_t.min_int * taps) << extra, (x_t.max_int * taps) << extra
    return extra, requant_spec(acc.frac, min(lo, 0), max(hi, 0), res)


def render_pool(
    env: jinja2.Environment, graph: Graph, node: Pool, base: dict[str, Any], window_only: bool = False
) -> Rendered:
    """Every position of the pooling at once; ``window_only``: one window (taps x channels) on ``x``,
    padding already filled in, and the divisor of an average on port ``d`` where it varies."""
    assert node.window is not None
    positions, taps, src, div = pool_sources(graph, node)
    if window_only:
        positions, src, div = 1, list(range(taps)), div[:1] if len(set(div)) == 1 else []
    channels = graph.shape_of(node.inputs[0])[-1]
    ctx = dict(base, node=node, positions=positions, taps=taps, channels=channels, window=node.window)
    ctx["src_table"] = int_table(src)
    extra, rq = pool_requant(graph, node, taps)
    ctx.update(extra=extra, rq=rq, div_table=int_table(div) if div else None, lowest=graph.in_type(node).min_int)
    return Rendered(env.get_template("pool.vhd.j2").render(ctx), 1)


def render_move(env: jinja2.Environment, graph: Graph, node: Movement, base: dict[str, Any]) -> Rendered:
    if graph.in_type(node) != node.result_type:
        raise UserError(f"layer '{node.name}' ({node.kind}): data movement must keep its input's type")
    src = node.source_index(graph.shape_of(node.inputs[0])).tolist()
    zero = "0" if type_fits_int(node.result_type) else "(others => '0')"
    ctx = dict(base, node=node, n_out=node.size, src_table=int_table(src), padded=min(src, default=0) < 0, zero=zero)
    return Rendered(env.get_template("move.vhd.j2").render(ctx), 0)


def render_concat(
    env: jinja2.Environment, graph: Graph, node: Concat, base: dict[str, Any], shapes: list[Shape] | None = None
) -> Rendered:
    """The concatenation of the input tensors (or of tensors of ``shapes``: a stream's pixels)."""
    res = node.result_type
    assert res is not None
    types = graph.in_types(node)
    shapes = graph.in_shapes(node) if shapes is None else shapes
    which = [np.full((1, *s), k, dtype=np.int64) for k, s in enumerate(shapes)]
    index = [np.arange(int(np.prod(s)), dtype=np.int64).reshape(1, *s) for s in shapes]
    axis = 1 + (node.axis if node.axis >= 0 else len(shapes[0]) + node.axis)
    from_input = np.concatenate(which, axis=axis).ravel().tolist()
    from_index = np.concatenate(index, axis=axis).ravel().tolist()
    registered = any(t != res for t in types)
    requants = [requant_spec(t.frac, t.min_int, t.max_int, res, fn=f"requant_{k}") for k, t in enumerate(types)]
    ctx = dict(
        base,
        node=node,
        n_out=len(from_input),
        registered=registered,
        requants=requants if registered else [],
        from_input=int_table(from_input),
        from_index=int_table(from_index),
    )
    return Rendered(env.get_template("concat.vhd.j2").render(ctx), 1 if registered else 0)


def _top_bits(value: str, t: FixedType, bits: int) -> str:
    """A VHDL expression of the top ``bits`` of ``value``'s raw two's-complement pattern in type ``t``."""
    raw = value if not t.signed else f"({value}) mod {2**t.width}"
    shift = t.width - bits
    return f"({raw}) / {2**shift}" if shift else raw


def sum_tree(leaves: list[str], lines: list[str]) -> str:
    """Statements adding ``leaves`` in hls4ml's ``reduce`` order (each sum re-quantised by ``acc_add``)
    into ``t(k)``; appends them to ``lines`` and returns the expression of the total."""
    n = len(leaves)
    if n == 1:
        return leaves[0]
    left = 1 << ((n - 1).bit_length() - 1) if n > 2 else 1
    a, b = sum_tree(leaves[:left], lines), sum_tree(leaves[left:], lines)
    lines.append(f"t({len(lines)}) := acc_add({a} + {b});")
    return f"t({len(lines) - 1})"


def render_softmax(env: jinja2.Environment, graph: Graph, node: Softmax, base: dict[str, Any]) -> Rendered:
    """The lookup-table softmax: both tables as constants, the golden model's steps in one register stage."""
    assert node.quantised and node.exp_table_int is not None and node.inv_table_int is not None
    norm, exp_t, acc, inv_inp, inv_t = (node.inp_norm_type, node.exp_table_type, node.accum_type, node.inv_inp_type,
                                        node.inv_table_type)  # fmt: skip
    assert norm and exp_t and acc and inv_inp and inv_t and node.result_type
    x_t = graph.in_type(node)
    where = f"layer '{node.name}' (softmax)"
    check_int(x_t.max_int - x_t.min_int, where)
    exp_vals, inv_vals = [int(v) for v in node.exp_table_int], [int(v) for v in node.inv_table_int]
    for v in exp_vals + inv_vals:
        check_int(v, where)
    n = node.shape[-1]
    sums: list[str] = []
    total = sum_tree([f"e({i})" for i in range(n)], sums)
    e_w, inv_w = acc.width + 1, bits_for_range(min(min(inv_vals), -1), max(inv_vals))
    requants = [
        requant_spec(x_t.frac, 0, x_t.max_int - x_t.min_int, norm, fn="to_norm"),
        requant_spec(exp_t.frac, min(exp_vals), max(exp_vals), acc, fn="to_acc"),
        requant_spec(acc.frac, 2 * acc.min_int, 2 * acc.max_int, acc, fn="acc_add"),
        requant_spec(acc.frac, acc.min_int, acc.max_int, inv_inp, fn="to_inv_inp"),
    ]
    lo = min(acc.min_int * v for v in (min(inv_vals), max(inv_vals)))
    hi = max(acc.max_int * v for v in (min(inv_vals), max(inv_vals)))
    out_rq = wide_requant_spec(acc.frac + inv_t.frac, lo, hi, node.result_type, e_w + inv_w, "to_result")
    exp_bits, inv_bits = node.exp_table_size.bit_length() - 1, node.inv_table_size.bit_length() - 1
    ctx = dict(
        base,
        node=node,
        n=n,
        outer=node.size // n,
        requants=requants,
        out_rq=out_rq,
        exp_size=node.exp_table_size,
        inv_size=node.inv_table_size,
        exp_table=int_table(exp_vals, 16),
        inv_table=int_table(inv_vals, 16),
        exp_bits=exp_bits,
        inv_bits=inv_bits,
        exp_index=_top_bits(f"to_norm(m - x(k * {n} + i))", norm, exp_bits),
        inv_index=_top_bits("s", inv_inp, inv_bits),
        sums=sums,
        total=total,
        e_w=e_w,
        inv_w=inv_w,
    )
    return Rendered(env.get_template("softmax.vhd.j2").render(ctx), 1)
