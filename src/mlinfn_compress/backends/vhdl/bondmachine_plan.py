"""What the BondMachine-style architecture builds from a graph: layers, cores, weight ROMs, timing.

A dense layer and the element-wise nodes after it (clip, cast, leaky relu,
lookup table) form one *layer* of the design.  Its neurons with at least one
non-zero weight are shared out among ``ceil(active / R)`` processing cores,
each serving at most ``R`` of them in turn; a core's ROM holds, neuron after
neuron, only the non-zero weights with the index of the input each one
multiplies and a flag on the neuron's last weight.  Neurons go to cores
longest first, each to the least loaded core with a free place, so that the
cores finish at about the same time.  A neuron without any non-zero weight
needs no core: its output is a constant.

The layer's control (``bm_layer.vhd.j2``), modelled here clock by clock:
an idle layer takes an input vector (``in_ready`` is ``not busy``), steps
its cores through ``steps`` clocks, then, at the next clock edge where its
output buffer is free or being emptied, moves the results into it
(``out_valid``) and becomes idle again.  A layer thus takes an input every
``steps + 2`` clocks at best, and a layer that cannot hand its output over
stalls, holding everything, until it can.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mlinfn_compress.backends.vhdl.design import VHDL_INT_MAX
from mlinfn_compress.compress.ir import INPUT, Cast, Clip, Graph, LeakyRelu, Linear, Node, Table
from mlinfn_compress.errors import UserError

ELEMENTWISE = (Clip, Cast, LeakyRelu, Table)
# Clocks from the step that reads a neuron's last ROM entry to its result in the layer's
# result register, without element-wise nodes: ROM read, input select, multiply, accumulate,
# bias and re-quantisation, write.  Each element-wise node adds one.
CORE_PIPELINE = 5
MODEL_SAMPLES = 6


@dataclass
class Core:
    """One processing core: the neurons it serves (in turn) and its ROM."""

    index: int
    neurons: list[int]  # neuron indices of the layer, in the order the core computes them
    inputs: list[int] = field(default_factory=list)  # ROM: input index of each entry
    weights: list[int] = field(default_factory=list)  # ROM: the non-zero integer weight of each entry
    last: list[bool] = field(default_factory=list)  # ROM: the entry is its neuron's last

    @property
    def entries(self) -> int:
        return len(self.weights)


@dataclass
class Layer:
    """A dense node, the element-wise nodes computed on each of its results, and its cores."""

    linear: Linear
    ops: list[Node]
    cores: list[Core]
    constants: dict[int, int]  # neuron -> its output, for neurons without a non-zero weight
    steps: int  # clocks the cores run per input vector

    @property
    def output(self) -> str:
        """The tensor the layer hands over."""
        return (self.ops[-1] if self.ops else self.linear).name

    @property
    def period(self) -> int:
        """Clocks between two inputs the layer takes when nothing stalls it."""
        return self.steps + 2


@dataclass
class Timing:
    latency: int
    initiation_interval: int
    steady_from: int  # samples fed back to back after which every interval is the initiation interval


def _refuse(graph: Graph, node: Node, why: str) -> UserError:
    return UserError(
        f"{graph.source_path}: layer '{node.name}' ({node.kind}) {why}; --arch bondmachine takes dense layers on "
        "flat vectors with clip (relu), cast, leaky relu or lookup-table layers after them; use --arch dataflow "
        "for this model"
    )


def chain(graph: Graph) -> list[tuple[Linear, list[Node]]]:
    """The graph as (dense node, element-wise nodes after it) pairs; a UserError naming the first
    node the architecture does not take.  Needs shapes, not quantisation."""
    if len(graph.input_shape) != 1:
        raise UserError(
            f"{graph.source_path}: the input has shape {graph.input_shape}; --arch bondmachine takes a flat vector "
            "of features; use --arch dataflow for this model"
        )
    pairs: list[tuple[Linear, list[Node]]] = []
    tensor = INPUT
    for node in graph.nodes:
        if node.inputs != [tensor]:
            raise _refuse(graph, node, "does not read the previous layer alone (the architecture is a chain)")
        if isinstance(node, Linear):
            if node.window is not None or len(node.shape) != 1:
                raise _refuse(graph, node, "is not a dense layer on a flat vector")
            pairs.append((node, []))
        elif isinstance(node, ELEMENTWISE):
            if not pairs:
                raise _refuse(graph, node, "comes before the first dense layer")
            pairs[-1][1].append(node)
        else:
            raise _refuse(graph, node, "has no bondmachine core")
        tensor = node.name
    if not pairs:
        raise UserError(f"{graph.source_path}: the model has no dense layer; use --arch dataflow for this model")
    return pairs


def assign(counts: list[int], reuse: int) -> list[list[int]]:
    """Neurons (by their non-zero weight counts; those with none left out) shared among
    ceil(active / reuse) cores of at most ``reuse`` neurons: longest first, each to the least
    loaded core with a free place.  Each core's neurons in index order."""
    active = [j for j, c in enumerate(counts) if c > 0]
    n_cores = math.ceil(len(active) / reuse)
    cores: list[list[int]] = [[] for _ in range(n_cores)]
    load = [0] * n_cores
    for j in sorted(active, key=lambda j: (-counts[j], j)):
        k = min((k for k in range(n_cores) if len(cores[k]) < reuse), key=lambda k: (load[k], k))
        cores[k].append(j)
        load[k] += counts[j]
    return [sorted(c) for c in cores]


def plan(graph: Graph, reuse: int) -> list[Layer]:
    """The layers of the design with ``reuse`` neurons per core (the graph must be quantised)."""
    layers = []
    for linear, ops in chain(graph):
        x_t = graph.in_type(linear)
        assert linear.weight_int is not None and linear.result_type is not None
        _, _, mag = linear.bounds(x_t)
        if mag > VHDL_INT_MAX:
            raise _refuse(graph, linear, f"has sums up to {mag}, beyond the 32-bit integers of a bondmachine core")
        w = np.asarray(linear.weight_int, dtype=np.int64)
        counts = [int(np.count_nonzero(w[:, j])) for j in range(linear.n_out)]
        cores = []
        for k, neurons in enumerate(assign(counts, reuse)):
            core = Core(k, neurons)
            for j in neurons:
                rows = np.flatnonzero(w[:, j]).tolist()
                core.inputs += rows
                core.weights += [int(w[i, j]) for i in rows]
                core.last += [i == rows[-1] for i in rows]
            cores.append(core)
        constants = _constants(graph, linear, ops, [j for j, c in enumerate(counts) if c == 0])
        steps = max(c.entries for c in cores) + CORE_PIPELINE + len(ops) if cores else 0
        layers.append(Layer(linear, ops, cores, constants, steps))
    return layers


def _constants(graph: Graph, linear: Linear, ops: list[Node], neurons: list[int]) -> dict[int, int]:
    """The outputs of neurons without a non-zero weight: their bias through the layer (the golden
    model's own nodes, on any input)."""
    if not neurons:
        return {}
    v = linear.forward_int([np.zeros((1, linear.n_in), dtype=np.int64)], [graph.in_type(linear)])
    for op in ops:
        v = op.forward_int([v], [graph.in_type(op)])
    return {j: int(v[0, j]) for j in neurons}


def timing(layers: list[Layer], samples: int = MODEL_SAMPLES) -> Timing:
    """Latency and initiation interval of the layers' handshakes, clock by clock, with samples
    offered back to back and ``out_ready`` held high (as the textio bench does).

    Latency: edges from the one that offers a sample to the one that takes its output, on an
    idle design; interval: edges between the outputs of consecutive samples, once steady.
    """
    steps = [layer.steps for layer in layers]
    n = len(steps)
    busy, step, full = [False] * n, [0] * n, [False] * n
    fed, edge = 0, 0
    last: list[int] = []
    while len(last) < samples:
        in_valid = [fed < samples, *full[:-1]]
        in_ready = [not b for b in busy]
        out_ready = [*in_ready[1:], True]
        if in_valid[0] and in_ready[0]:
            fed += 1
        if full[-1]:
            last.append(edge)
        for k in range(n):
            took = full[k] and out_ready[k]
            if not busy[k]:
                if in_valid[k]:
                    busy[k], step[k] = True, 0
                full[k] = full[k] and not took
            elif step[k] < steps[k]:
                step[k] += 1
                full[k] = full[k] and not took
            elif not full[k] or took:
                full[k], busy[k] = True, False
        edge += 1
    gaps = [b - a for a, b in zip(last, last[1:], strict=False)]
    ii = gaps[-1]
    steady = len(gaps)
    while steady > 0 and gaps[steady - 1] == ii:
        steady -= 1
    return Timing(latency=last[0], initiation_interval=ii, steady_from=steady + 2)
