"""Pipelining an adder graph to a clock period: the register placement over a delay model.

The delay model (``delay.py``, one per device family) estimates how long
the logic between two registers takes (nanoseconds).  A path through a
stage costs the sum of its nodes' logic levels plus the longest carry chain
on it, counted once, because the carry chains of adders in series overlap
(each adder's low bits are ready long before its high bits):

* an adder or subtractor: one adder level and its carry chain;
* a shift is wiring (0 ns), and so is a constant output;
* a DSP product (``--dsp``): a multiplier;
* the output re-quantisation: an adder level when its rounding adds a
  constant it could not share with the bias adder or increments; a LUT level
  to round a tie to even; two LUT levels when it saturates (the bits above
  the result's, then a multiplexer), a comparison (an adder level and its
  carry chain) and a multiplexer for the other overflow modes; a clip fused
  into the core costs a comparison and a multiplexer;
* every register costs the model's register time of the period.

With the xc7 model at the default 4.2 ns (240 MHz) a stage holds four
adders of up to 32 bits in series.  Nodes are placed as soon as possible (a
node joins the stage of its latest operand while the path still fits
``period - register``, else it starts the next stage), which gives the
fewest stages; then, keeping that latency, nodes move to later stages
wherever that saves register bits, or the latest placement is taken when it
needs fewer.  Every value is delayed by registers to each stage that reads
it and every output to the last stage, so all paths have the same latency;
the results are registered at the end.  A node longer than the budget on
its own still gets a stage of its own (the design then misses the period;
``critical_ns`` shows it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlinfn_compress.backends.vhdl.adders import AdderGraph, AdderNode, Kind
from mlinfn_compress.backends.vhdl.delay import XC7, DelayModel
from mlinfn_compress.backends.vhdl.design import DEFAULT_CLOCK_NS
from mlinfn_compress.compress.fixed import bits_for_range


def carry_ns(width: int, model: DelayModel = XC7) -> float:
    return model.carry4_ns * math.ceil(width / 4)


def width(n: AdderNode) -> int:
    """Bits of the node's values as synthesis sizes them (unsigned when never negative)."""
    return bits_for_range(n.lo, n.hi)


def node_ns(n: AdderNode, model: DelayModel = XC7) -> tuple[float, float]:
    """The delay model: (logic levels, carry chain) in ns from a node's operands to its result."""
    if n.kind in (Kind.ADD, Kind.CONST_ADD):
        return model.adder_ns, carry_ns(width(n), model)
    if n.kind == Kind.MUL:
        return model.multiplier_ns, 0.0
    if n.kind == Kind.REQUANT:
        assert n.rq is not None
        rq, levels, chain = n.rq, 0.0, 0.0
        if rq["add"] or rq["increment"]:  # an adder for the rounding
            levels, chain = model.adder_ns, carry_ns(rq["in_w"], model)
        if rq["tie_even"] and not rq["increment"]:
            levels += model.lut_ns
        if rq["check_range"] and rq["overflow"] == "SAT":  # the bits above the result's checked, a multiplexer
            levels += 2 * model.lut_ns
        elif rq["check_range"]:  # comparisons with the limits and a multiplexer
            levels, chain = levels + model.adder_ns + model.lut_ns, max(chain, carry_ns(rq["q_w"], model))
        return levels, chain
    if n.kind == Kind.CLAMP:  # comparisons and a multiplexer
        return model.adder_ns + model.lut_ns, carry_ns(width(n), model)
    return 0.0, 0.0  # inputs, constants


@dataclass
class Schedule:
    stage: list[int]  # per node: the stage that computes it
    last: list[int]  # per node: the last stage that reads it (latency: the output register)
    latency: int  # clock cycles from x to y (the number of stages)
    register_bits: int  # flip-flops: pipeline and balancing registers and the output register
    period_ns: float
    critical_ns: float  # the longest path inside a stage, by the delay model


def _asap(g: AdderGraph, budget: float, model: DelayModel) -> tuple[list[int], list[float]]:
    """Every node in the earliest stage its operands and the budget allow; (stages, arrival ns)."""
    n = len(g.nodes)
    stage, level, carry = [0] * n, [0.0] * n, [0.0] * n
    for i, node in enumerate(g.nodes):
        ops = g.operands(node)
        if not ops:
            continue
        d_level, d_carry = node_ns(node, model)
        s = max(stage[k] for k in ops)
        lv = max((level[k] for k in ops if stage[k] == s), default=0.0) + d_level
        cw = max([carry[k] for k in ops if stage[k] == s] + [d_carry])
        if lv > d_level and lv + cw > budget:  # the stage is full: start the next one
            s, lv, cw = s + 1, d_level, d_carry
        stage[i], level[i], carry[i] = s, lv, cw
    return stage, [lv + cw for lv, cw in zip(level, carry, strict=True)]


def _alap(g: AdderGraph, budget: float, latency: int, model: DelayModel) -> list[int]:
    """Every node in the latest stage its consumers and the budget allow (outputs in the last)."""
    n = len(g.nodes)
    consumers: list[list[int]] = [[] for _ in range(n)]
    for i, node in enumerate(g.nodes):
        for k in g.operands(node):
            consumers[k].append(i)
    outputs = set(g.outputs)
    stage, level, carry = [latency - 1] * n, [0.0] * n, [0.0] * n  # level, carry: from the node to its stage's end
    for i in reversed(range(n)):
        node = g.nodes[i]
        if node.kind == Kind.INPUT:
            stage[i] = 0
            continue
        d_level, d_carry = node_ns(node, model)
        users = consumers[i]
        s = min([stage[c] for c in users] + ([latency - 1] if i in outputs or not users else []))
        lv = max((level[c] for c in users if stage[c] == s), default=0.0) + d_level
        cw = max([carry[c] for c in users if stage[c] == s] + [d_carry])
        if lv > d_level and lv + cw > budget:
            s, lv, cw = s - 1, d_level, d_carry
        stage[i], level[i], carry[i] = s, lv, cw
    return stage


def _register_bits(g: AdderGraph, stage: list[int], latency: int) -> tuple[list[int], int]:
    """(last stage reading each node, flip-flops) for a placement."""
    last = list(stage)
    for i, node in enumerate(g.nodes):
        for k in g.operands(node):
            last[k] = max(last[k], stage[i])
    for k in g.outputs:
        last[k] = latency
    bits = 0
    for i, node in enumerate(g.nodes):
        if node.kind == Kind.CONST:
            stage[i] = last[i] = latency - 1  # a constant is wiring: it needs no register
            continue
        bits += width(node) * (last[i] - stage[i])
    return last, bits


def _arrivals(g: AdderGraph, stage: list[int], model: DelayModel, only: int | None = None) -> dict[int, float]:
    """ns after the clock edge at which each node (of stage ``only``, or all) settles."""
    level: dict[int, float] = {}
    carry: dict[int, float] = {}
    for i, node in enumerate(g.nodes):
        if only is not None and stage[i] != only:
            continue
        d_level, d_carry = node_ns(node, model)
        same = [k for k in g.operands(node) if stage[k] == stage[i] and k in level]
        level[i] = max((level[k] for k in same), default=0.0) + d_level
        carry[i] = max([carry[k] for k in same] + [d_carry])
    return {i: level[i] + carry[i] for i in level}


def _retime(g: AdderGraph, stage: list[int], latency: int, budget: float, model: DelayModel) -> None:
    """Move nodes to later stages wherever that saves register bits and the stage still fits."""
    n = len(g.nodes)
    consumers: list[list[int]] = [[] for _ in range(n)]
    for i, node in enumerate(g.nodes):
        for k in set(g.operands(node)):
            consumers[k].append(i)
    outputs = set(g.outputs)
    last, _ = _register_bits(g, stage, latency)
    moved = True
    while moved:
        moved = False
        for i in reversed(range(n)):
            node = g.nodes[i]
            if node.kind in (Kind.INPUT, Kind.CONST):
                continue
            s = stage[i]
            limit = min([stage[c] for c in consumers[i]] + ([latency - 1] if i in outputs else [latency - 1]))
            if s >= limit:
                continue
            ops = set(g.operands(node))
            gain = width(node) - sum(width(g.nodes[k]) for k in ops if last[k] == s)
            if gain <= 0:
                continue
            stage[i] = s + 1
            if max(_arrivals(g, stage, model, s + 1).values(), default=0.0) > budget:
                stage[i] = s
                continue
            for k in ops:
                last[k] = max(last[k], s + 1)
            moved = True


def schedule(g: AdderGraph, period_ns: float = DEFAULT_CLOCK_NS, model: DelayModel = XC7) -> Schedule:
    """Place every node of ``g`` in a pipeline stage for a clock of ``period_ns``: as few stages
    as the delay model allows; of the earliest placement improved by moving nodes later and the
    latest placement, the one with fewer register bits."""
    budget = period_ns - model.register_ns
    stage, _ = _asap(g, budget, model)
    latency = max((stage[k] for k in g.outputs if g.nodes[k].kind != Kind.CONST), default=0) + 1
    _retime(g, stage, latency, budget, model)
    last, bits = _register_bits(g, stage, latency)
    late = _alap(g, budget, latency, model)
    if min(late, default=0) >= 0:
        late_last, late_bits = _register_bits(g, late, latency)
        if late_bits < bits:
            stage, last, bits = late, late_last, late_bits
    critical = max(_arrivals(g, stage, model).values(), default=0.0)
    return Schedule(stage, last, latency, bits, period_ns, critical)
