"""The quantisation pass: give every tensor of the IR a fixed-point type.

Formats fixed by the source model (QKeras quantisers) are kept as they are.
Everything else is quantised post-training: weights to ``weight_bits`` with
integer bits from their range, activations to ``act_bits`` with integer bits
from the ranges seen on calibration inputs.  Accumulators are sized from the
integer weights and the input range so that they can never overflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .fixed import FixedType, integer_bits_for, quantize, to_float
from .ir import Graph, Node

DEFAULT_INPUT_TYPE = "fixed<16,6,RND_CONV,SAT>"
PARAM_ROUNDING = ("RND_CONV", "SAT")  # how float parameters are rounded
MODEL_QUANTISED = ("qkeras", "brevitas")  # frameworks whose models carry their own formats
ACT_ROUNDING = ("RND_CONV", "SAT")  # as QKeras and Brevitas round: a framework twin can match


@dataclass
class QuantConfig:
    weight_bits: int = 8
    act_bits: int = 16
    input_type: FixedType = FixedType.parse(DEFAULT_INPUT_TYPE)

    def check(self) -> None:
        if not 2 <= self.weight_bits <= 24:
            raise UserError(f"--weight-bits must be between 2 and 24, got {self.weight_bits}")
        if not 2 <= self.act_bits <= 24:
            raise UserError(f"--act-bits must be between 2 and 24, got {self.act_bits}")
        if self.input_type.width > 24:
            raise UserError(f"--input-type {self.input_type}: at most 24 bits are supported")


def default_inputs(n: int, size: int, seed: int = 0) -> np.ndarray:
    """The documented default input distribution: standard normal features."""
    return np.random.default_rng(seed).standard_normal((n, size))


def float_ranges(graph: Graph, x: np.ndarray) -> dict[str, float]:
    """Largest absolute value of every node's float output on inputs ``x``."""
    values: dict[str, np.ndarray] = {"input": np.asarray(x, dtype=np.float64)}
    ranges: dict[str, float] = {}
    for node in graph.nodes:
        v = values[node.inputs[0]]
        if node.op == "dense":
            assert node.weight is not None and node.bias is not None
            v = v @ node.weight + node.bias
        elif node.op == "relu":
            v = np.maximum(v, 0.0)
        values[node.name] = v
        ranges[node.name] = float(np.max(np.abs(v))) if v.size else 0.0
    return ranges


def _param_type(values: np.ndarray, bits: int, max_frac: int | None = None) -> FixedType:
    i = integer_bits_for(float(np.max(np.abs(values))) if values.size else 0.0, signed=True)
    frac = bits - i
    if max_frac is not None and frac > max_frac:
        frac = max_frac
    return FixedType(i + frac, i, True, *PARAM_ROUNDING)


def accumulator_bounds(graph: Graph, node: Node, frac: int) -> tuple[int, int, int]:
    """(lowest, highest) accumulator value over all inputs, and the largest partial-sum magnitude."""
    assert node.weight_int is not None and node.bias_int is not None
    assert node.weight_type is not None and node.bias_type is not None
    x_t = graph.in_type(node)
    sw = frac - (x_t.frac + node.weight_type.frac)
    sb = frac - node.bias_type.frac
    w = np.asarray(node.weight_int).astype(object) * (1 << sw)
    b = np.asarray(node.bias_int).astype(object) * (1 << sb)
    a, c = w * x_t.min_int, w * x_t.max_int
    hi = np.maximum(a, c).sum(axis=0) + b
    lo = np.minimum(a, c).sum(axis=0) + b
    mag = np.maximum(abs(a), abs(c)).sum(axis=0) + abs(b)
    return int(min(lo)), int(max(hi)), int(max(mag))


def quantise(graph: Graph, cfg: QuantConfig, calibration: np.ndarray) -> list[str]:
    """Fill in every type and integer parameter of ``graph`` (in place).

    Returns the names of the nodes whose formats were chosen here rather than
    taken from the model (empty for a fully QKeras-quantised model).
    """
    cfg.check()
    graph.input_type = cfg.input_type
    x_q = to_float(quantize(calibration, cfg.input_type), cfg.input_type.frac)
    ranges = float_ranges(graph, x_q)
    model_defined = graph.framework in MODEL_QUANTISED
    chosen: list[str] = []
    consumers = {n.inputs[0]: n for n in graph.nodes}
    for node in graph.nodes:
        x_t = graph.in_type(node)
        if node.op == "dense":
            assert node.weight is not None and node.bias is not None
            prod_frac = x_t.frac + (node.weight_type.frac if node.weight_type else 0)
            if node.weight_type is None:
                node.weight_type = _param_type(node.weight, cfg.weight_bits)
                prod_frac = x_t.frac + node.weight_type.frac
                chosen.append(node.name)
            if node.bias_type is None:
                bits = cfg.act_bits if not model_defined else 32
                node.bias_type = _param_type(node.bias, bits, max_frac=prod_frac)
                if not model_defined:
                    chosen.append(node.name)
            node.weight_int = quantize(node.weight, node.weight_type)
            node.bias_int = quantize(node.bias, node.bias_type)
            frac = max(prod_frac, node.bias_type.frac)
            lo, hi, _ = accumulator_bounds(graph, node, frac)
            node.accum_type = FixedType.for_range(min(lo, -1), hi, frac)
            if node.result_type is None:
                nxt = consumers.get(node.name)
                if model_defined or (nxt is not None and nxt.op == "relu"):
                    node.result_type = node.accum_type
                else:
                    i = integer_bits_for(ranges[node.name], signed=True)
                    node.result_type = FixedType(cfg.act_bits, i, True, *ACT_ROUNDING)
                    chosen.append(node.name)
        elif node.op == "relu" and node.result_type is None:
            if model_defined:  # exact: a relu output needs no sign bit
                node.result_type = FixedType(x_t.width - 1, x_t.integer - 1, False) if x_t.signed else x_t
            else:
                i = integer_bits_for(ranges[node.name], signed=False)
                node.result_type = FixedType(cfg.act_bits, i, False, *ACT_ROUNDING)
                chosen.append(node.name)
        elif node.result_type is None:
            raise UserError(f"layer '{node.name}': no output format")
    return sorted(set(chosen))
