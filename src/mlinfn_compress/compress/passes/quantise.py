"""The quantisation pass: give every tensor of the IR a fixed-point type.

Formats fixed by the source model (QKeras quantisers, Brevitas fixed-point
quantisers) are kept as they are.  Everything else is quantised
post-training: weights to ``weight_bits`` with integer bits from their range,
activations to ``act_bits`` with integer bits from the ranges seen on
calibration inputs.  Accumulators are sized from the integer weights and the
input range so that they can never overflow; operations that only move data
keep their input's type; where a model fixes its formats, every other type is
chosen so that nothing is rounded (the exact type of the result).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlinfn_compress.compress.fixed import FixedType, integer_bits_for, quantize, to_float
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
    Softmax,
    Table,
    Transpose,
    Upsample,
)
from mlinfn_compress.compress.ir.dispatch import OpTable
from mlinfn_compress.errors import UserError

DEFAULT_INPUT_TYPE = "fixed<16,6,RND_CONV,SAT>"
PARAM_ROUNDING = ("RND_CONV", "SAT")  # how float parameters are rounded
MODEL_QUANTISED = ("qkeras", "brevitas")  # frameworks whose models carry their own formats
ACT_ROUNDING = ("RND_CONV", "SAT")  # as QKeras and Brevitas round: a framework twin can match
TABLE_BITS = 10  # entries of a lookup table: 2**TABLE_BITS
TABLE_DOMAIN = {"sigmoid": 8.0, "tanh": 4.0}  # index range [-d, d): the function is flat beyond
EXACT_TABLE_BITS = 12  # a table the model's formats fix is indexed by its whole input up to this width


@dataclass
class QuantConfig:
    weight_bits: int = 8
    act_bits: int = 16
    input_type: FixedType = FixedType.parse(DEFAULT_INPUT_TYPE)
    table_bits: int = TABLE_BITS

    def check(self) -> None:
        if not 2 <= self.weight_bits <= 24:
            raise UserError(f"--weight-bits must be between 2 and 24, got {self.weight_bits}")
        if not 2 <= self.act_bits <= 24:
            raise UserError(f"--act-bits must be between 2 and 24, got {self.act_bits}")
        if self.input_type.width > 24:
            raise UserError(f"--input-type {self.input_type}: at most 24 bits are supported")


def default_inputs(n: int, size: int | tuple[int, ...], seed: int = 0) -> np.ndarray:
    """The documented default input distribution: standard normal features."""
    shape = (size,) if isinstance(size, int) else tuple(size)
    return np.random.default_rng(seed).standard_normal((n, *shape))


def float_ranges(graph: Graph, x: np.ndarray) -> dict[str, tuple[float, float]]:
    """(lowest, highest) float value of every node's output on inputs ``x``."""
    values = graph.run_float(x)
    return {
        n.name: (float(np.min(values[n.name])), float(np.max(values[n.name]))) if values[n.name].size else (0.0, 0.0)
        for n in graph.nodes
    }


def _param_type(values: np.ndarray, bits: int, max_frac: int | None = None) -> FixedType:
    i = integer_bits_for(float(np.max(np.abs(values))) if values.size else 0.0, signed=True)
    frac = bits - i
    if max_frac is not None and frac > max_frac:
        frac = max_frac
    if i + frac < 2:  # every value lies below half a step of the grid: a sign and one bit hold what rounds to
        i = 2 - frac
    return FixedType(i + frac, i, True, *PARAM_ROUNDING)


def softmax_formats(node: Softmax, x_t: FixedType, n: int, cfg: QuantConfig) -> None:
    """Formats and tables of a lookup-table softmax over ``n`` values of type ``x_t`` (types already set are kept).

    The differences max(x) - x_i are rounded to log2(exp_table_size) bits
    covering [0, 2**I), I the fewest integer bits beyond which exp(-d) rounds
    to 0 in the ``act_bits``-bit exp table (or the input's integer bits, when
    fewer); the sum of the n exponentials (each at most 1) is exact in the
    accumulator; log2(inv_table_size) bits of it index the inverse table;
    probabilities have ``act_bits`` bits and one integer bit (1.0 is
    representable).  Every rounding is to nearest even, every
    overflow saturates.
    """
    e = cfg.act_bits
    top = n.bit_length()  # integer bits that hold a sum of n values of at most 1
    reach = math.ceil(math.log2((e + 1) * math.log(2)))  # exp(-d) < 2**-e for d >= 2**reach
    if node.inp_norm_type is None:
        i = max(1, min(x_t.integer, reach))
        node.inp_norm_type = FixedType(_log2(node.exp_table_size), i, False, *ACT_ROUNDING)
    node.exp_table_type = node.exp_table_type or FixedType(e, 1, False, *ACT_ROUNDING)
    exp_t = node.exp_table_type
    node.accum_type = node.accum_type or FixedType(exp_t.width - exp_t.integer + top, top, False, "TRN", "SAT")
    node.inv_inp_type = node.inv_inp_type or FixedType(_log2(node.inv_table_size), top, False, *ACT_ROUNDING)
    node.inv_table_type = node.inv_table_type or FixedType(e, 1, False, *ACT_ROUNDING)
    node.result_type = node.result_type or FixedType(e, 1, False, *ACT_ROUNDING)
    node.check()
    node.compute_tables()


def _log2(size: int) -> int:
    return size.bit_length() - 1


def accumulator_bounds(graph: Graph, node: Linear, frac: int) -> tuple[int, int, int]:
    """(lowest, highest) accumulator value over all inputs, and the largest partial-sum magnitude."""
    return node.bounds(graph.in_type(node), frac)


class _Pass:
    """One quantisation run over a graph: the shared state of the per-op rules."""

    def __init__(self, graph: Graph, cfg: QuantConfig, calibration: np.ndarray) -> None:
        self.graph = graph
        self.cfg = cfg
        x_q = to_float(quantize(calibration, cfg.input_type), cfg.input_type.frac)
        self.ranges = float_ranges(graph, x_q)
        self.model_defined = graph.framework in MODEL_QUANTISED
        self.chosen: list[str] = []

    def act_type(self, node: Node, signed: bool | None = None) -> FixedType:
        """An ``act_bits`` activation type for the calibration range of ``node``'s output."""
        lo, hi = self.ranges[node.name]
        if signed is None:
            signed = lo < 0
        i = integer_bits_for(max(abs(lo), abs(hi)), signed=signed)
        self.chosen.append(node.name)
        return FixedType(self.cfg.act_bits, i, signed, *ACT_ROUNDING)

    def linear(self, node: Linear) -> None:
        g, cfg = self.graph, self.cfg
        assert node.weight is not None and node.bias is not None
        x_t = g.in_type(node)
        # a layer whose weights the model leaves in float is quantised post-training, as in a float model
        model_defined = self.model_defined and node.weight_type is not None
        if node.weight_type is None:
            node.weight_type = _param_type(node.weight, cfg.weight_bits)
            self.chosen.append(node.name)
        prod_frac = x_t.frac + node.weight_type.frac
        if node.bias_type is None:
            bits = cfg.act_bits if not model_defined else 32
            node.bias_type = _param_type(node.bias, bits, max_frac=prod_frac)
            if not model_defined:
                self.chosen.append(node.name)
        node.weight_int = quantize(node.weight, node.weight_type)
        node.bias_int = quantize(node.bias, node.bias_type)
        frac = max(prod_frac, node.bias_type.frac)
        lo, hi, _ = node.bounds(x_t, frac)
        node.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
        if node.result_type is None:
            consumers = g.consumers(node.name)
            feeds_relu = bool(consumers) and all(isinstance(c, Clip) and c.lo == 0 for c in consumers)
            keep = model_defined or (feeds_relu and not self.model_defined)  # the relu rounds the exact sum
            node.result_type = node.accum_type if keep else self.act_type(node, True)

    def clip(self, node: Clip) -> None:
        x_t = self.graph.in_type(node)
        if self.model_defined or (node.lo is not None and node.hi is not None and x_t.frac >= 0):
            lo, hi, frac = node.bounds_int(x_t)
            if node.lo == 0 and node.hi is None and frac == x_t.frac:  # exact: no sign bit
                node.result_type = FixedType(x_t.width - 1, x_t.integer - 1, False) if x_t.signed else x_t
            else:
                node.result_type = FixedType.for_range(lo, max(hi, 1), frac)
            if not self.model_defined and node.result_type.width > self.cfg.act_bits:
                node.result_type = self.act_type(node)
        else:
            node.result_type = self.act_type(node, signed=node.lo is None or node.lo < 0)

    def leaky_relu(self, node: LeakyRelu) -> None:
        x_t = self.graph.in_type(node)
        if node.alpha_type is None:
            node.alpha_type = _param_type(np.array([node.alpha]), self.cfg.weight_bits)
            node.alpha_type = FixedType(node.alpha_type.width, node.alpha_type.integer, True, *PARAM_ROUNDING)
            if node.alpha_type.frac < 0:
                node.alpha_type = FixedType(node.alpha_type.integer, node.alpha_type.integer, True, *PARAM_ROUNDING)
        node.alpha_int = int(quantize(np.array([node.alpha]), node.alpha_type)[0])
        if node.result_type is not None:
            return  # a format the model fixed
        if self.model_defined:
            frac = x_t.frac + node.alpha_type.frac
            a = node.alpha_int
            ends = [x_t.max_int << node.alpha_type.frac, x_t.min_int * a, 0]
            node.result_type = FixedType.for_range(min(min(ends), -1), max(ends), frac)
        else:
            node.result_type = self.act_type(node, True)

    def table(self, node: Table) -> None:
        cfg = self.cfg
        x_t = self.graph.in_type(node)
        if node.index_type is None and self.model_defined and node.result_type is not None:
            # the model fixes the output format: one entry per input value makes the table exact
            if x_t.width <= EXACT_TABLE_BITS:
                node.index_type = x_t
            else:
                self.chosen.append(node.name)
                node.notes.append(
                    f"the input {x_t} has more than 2**{EXACT_TABLE_BITS} values: the table is indexed by fewer, "
                    "so it is not exact against the model's own function"
                )
        if node.index_type is None:
            domain = TABLE_DOMAIN.get(node.function, 8.0)
            i = int(math.log2(domain)) + 1
            node.index_type = FixedType(cfg.table_bits, i, True, "RND_CONV", "SAT")
        if node.result_type is None:
            self.chosen.append(node.name)
            signed = node.function != "sigmoid"
            node.result_type = FixedType(cfg.act_bits, 1 if signed else 0, signed, *ACT_ROUNDING)
        values = node.float_function()(node.index_values())
        node.table_int = quantize(values, node.result_type)

    def pool(self, node: Pool) -> None:
        x_t = self.graph.in_type(node)
        if node.mode == "max":
            node.result_type = x_t
            return
        divisors = {int(d) for d in np.ravel(node.divisors(self.graph.shape_of(node.inputs[0])))}
        exact = all(d & (d - 1) == 0 for d in divisors)
        extra = max(int(d - 1).bit_length() for d in divisors)
        window = node.window.taps if node.window else 1
        frac = x_t.frac + extra
        lo, hi = x_t.min_int * window << extra, x_t.max_int * window << extra
        node.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
        if exact:  # power-of-two divisors: the mean is exact on the finer grid, within the input's range
            node.result_type = FixedType.for_range(x_t.min_int << extra, max(x_t.max_int << extra, 1), frac)
        else:
            node.result_type = self.act_type(node, x_t.signed)

    def merge(self, node: Merge) -> None:
        """The exact type of the combination when it fits the activation width (or the model fixes formats)."""
        lo, hi, frac = node.exact_range(self.graph.in_types(node))
        exact = FixedType.for_range(min(lo, -1) if lo < 0 else 0, max(hi, 1), frac)
        if self.model_defined or exact.width <= self.cfg.act_bits:
            node.result_type = exact
        else:
            node.result_type = self.act_type(node)

    def concat(self, node: Concat) -> None:
        types = self.graph.in_types(node)
        if all(t == types[0] for t in types):
            node.result_type = types[0]
            return
        frac = max(t.frac for t in types)
        lo = min(t.min_int << (frac - t.frac) for t in types)
        hi = max(t.max_int << (frac - t.frac) for t in types)
        node.result_type = FixedType.for_range(lo, max(hi, 1), frac)

    def softmax(self, node: Softmax) -> None:
        softmax_formats(node, self.graph.in_type(node), self.graph.shape_of(node.inputs[0])[-1], self.cfg)

    def passthrough(self, node: Node) -> None:
        node.result_type = self.graph.in_type(node)

    def run(self) -> list[str]:
        rules: OpTable[Callable[[Any], None]] = OpTable("the quantisation pass", {  # each rule takes its node class
            Linear: self.linear,
            Clip: self.clip,
            LeakyRelu: self.leaky_relu,
            Table: self.table,
            Pool: self.pool,
            Merge: self.merge,
            Concat: self.concat,
            Softmax: self.softmax,
            Reshape: self.passthrough,
            Pad: self.passthrough,
            Crop: self.passthrough,
            Upsample: self.passthrough,
            Transpose: self.passthrough,
        })  # fmt: skip
        for node in self.graph.nodes:
            if isinstance(node, Cast):
                if node.result_type is None:
                    raise UserError(f"layer '{node.name}': no output format")
                continue
            if node.quantised and not isinstance(node, (Linear, Table, LeakyRelu, Softmax)):
                continue  # a format the model fixed
            rule = rules.find(node)
            if rule is None:
                raise UserError(f"layer '{node.name}' ({node.kind}): the quantisation pass does not know it")
            rule(node)
        return sorted(set(self.chosen))


def quantise(graph: Graph, cfg: QuantConfig, calibration: np.ndarray) -> list[str]:
    """Fill in every type and integer parameter of ``graph`` (in place).

    Returns the names of the nodes whose formats were chosen here rather than
    taken from the model (empty for a fully QKeras-quantised model).
    """
    cfg.check()
    graph.input_type = cfg.input_type
    assert INPUT == "input"
    return _Pass(graph, cfg, calibration).run()
