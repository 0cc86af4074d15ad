"""The streaming architecture's plan: which unit carries each node, and how the units connect.

A tensor of shape (H, W, C) or (L, C) travels one pixel (its C channels)
per word, row-major; a flat vector (N,) travels as one word of N values.
Every node becomes one unit:

* a **scan** walks a grid of steps once per image (the padded input of a
  window, the output of an up-sampling, ...); at each step it may take an
  input pixel and may issue a result, one step per clock at most.  Windows
  come from line buffers; a fixed-latency core (the CMVM core of a Linear
  node, an element-wise or pooling core, or nothing for data movement)
  computes from the captured registers, and an output buffer with credits
  absorbs back-pressure;
* a **collect** gathers words into a block and hands it out as words of
  another size (flatten into a dense head, reshapes), or reduces a whole
  image (global pooling);
* a **wire** passes a stream on unchanged (a reshape that keeps the channels).

A tensor read by several units goes through an eager **fork**; an input of
an Add or Concatenate gets a **FIFO** when its branch must run ahead of the
other one (a U-Net's skip connection), sized from the graph so that the
branches cannot deadlock.  The plan also says, for every output pixel of a
unit, which input pixel it needs last: that is what sizes the FIFOs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl.ops import ELEMENTWISE
from mlinfn_compress.compress.ir import (
    INPUT,
    Concat,
    Crop,
    Graph,
    Linear,
    Node,
    Pad,
    Pool,
    Reshape,
    Shape,
    Softmax,
    Transpose,
    UniqueNames,
    Upsample,
)
from mlinfn_compress.compress.ir.dispatch import OpTable
from mlinfn_compress.errors import UserError

OUTPUT = "output"  # the top level's output port, as a consumer


def pixels(shape: Shape) -> tuple[int, int]:
    """(words per image, values per word) of a streamed tensor."""
    if len(shape) <= 1:
        return 1, int(shape[0]) if shape else 1
    return math.prod(shape[:-1]), int(shape[-1])


def grid(shape: Shape) -> tuple[int, int]:
    """(rows, columns) of a tensor's pixels: a 1-D signal is one row, a flat vector one pixel."""
    if len(shape) <= 1:
        return 1, 1
    if len(shape) == 2:
        return 1, int(shape[0])
    if len(shape) == 3:
        return int(shape[0]), int(shape[1])
    raise UserError(f"tensors of {len(shape) - 1} spatial axes cannot be streamed: {shape}")


@dataclass(frozen=True)
class Cells:
    """The cells ``first + k * step`` (k < count) of an axis."""

    first: int
    count: int
    step: int = 1

    def mask(self, size: int) -> np.ndarray:
        m = np.zeros(size, dtype=bool)
        m[self.first : self.first + self.count * self.step : self.step] = True
        return m

    def expr(self, var: str, size: int) -> str:
        """A VHDL condition on ``var`` (0 .. size-1) that holds exactly on these cells."""
        last = self.first + (self.count - 1) * self.step
        terms = []
        if self.first > 0:
            terms.append(f"{var} >= {self.first}")
        if last < size - 1:
            terms.append(f"{var} <= {last}")
        if self.step > 1:
            terms.append(f"({var} - {self.first}) mod {self.step} = 0" if self.first else f"{var} mod {self.step} = 0")
        return " and ".join(terms) if terms else "true"


@dataclass(frozen=True)
class Axis:
    """One axis of a scan: its size, the cells that take an input pixel, the cells that issue a result."""

    size: int
    take: Cells
    emit: Cells

    @staticmethod
    def plain(size: int) -> Axis:
        return Axis(size, Cells(0, size), Cells(0, size))


@dataclass
class Unit:
    """One unit of the streaming top level, between named links."""

    name: str  # the unit's own name (VHDL label and entity suffix)
    inputs: list[str]  # links it reads
    outputs: list[str]  # links it drives


@dataclass
class Scan(Unit):
    node: Node
    rows: Axis
    cols: Axis
    kernel: tuple[int, int] = (1, 1)
    repeat: tuple[int, int] | None = None  # up-sampling factors
    pad_value: int = 0
    latency: int = 0  # of the core; set when it is rendered (0: no core, the captured pixel itself)

    @property
    def depth(self) -> int:
        """Output buffer entries: enough for one result per clock with credits counted from registers."""
        return self.latency + 3

    def flags(self) -> tuple[np.ndarray, np.ndarray]:
        """(takes, emits): per step of the row-major scan, whether it takes an input and issues a result."""
        take = np.outer(self.rows.take.mask(self.rows.size), self.cols.take.mask(self.cols.size)).ravel()
        emit = np.outer(self.rows.emit.mask(self.rows.size), self.cols.emit.mask(self.cols.size)).ravel()
        return take, emit

    def needs(self) -> np.ndarray:
        """For every result, the index of the last input pixel taken before it is issued (-1: none)."""
        take, emit = self.flags()
        taken = np.cumsum(take) - 1
        return taken[emit]


@dataclass
class Collect(Unit):
    """Gathers ``block`` values from words of ``c_in`` and hands them out as words of ``c_out``;
    ``reduce`` (max/avg) instead folds a whole image into one word (global pooling)."""

    node: Node
    c_in: int
    c_out: int
    block: int
    reduce: str | None = None

    @property
    def words_in(self) -> int:
        return self.block // self.c_in

    @property
    def words_out(self) -> int:
        return self.block // self.c_out

    def needs(self, n_out: int) -> np.ndarray:
        o = np.arange(n_out)
        return (o * self.c_out // self.block + 1) * self.words_in - 1


@dataclass
class Wire(Unit):
    node: Node


@dataclass
class Fifo(Unit):
    tensor: str
    need: int  # entries without which the branches could deadlock (from the graph)
    entries: int = 0  # entries it gets (set by the timing model: the need, or more for full speed)


@dataclass
class Fork(Unit):
    tensor: str


@dataclass
class Plan:
    units: list[Unit]  # in an order where every link is driven before it is read
    links: dict[str, str]  # link -> the tensor whose pixels it carries
    input_link: str
    output_link: str

    def drop(self, fifo: Fifo) -> None:
        """Remove a FIFO: its reader reads the FIFO's input link instead."""
        self.units.remove(fifo)
        del self.links[fifo.outputs[0]]
        for u in self.units:
            u.inputs = [fifo.inputs[0] if link == fifo.outputs[0] else link for link in u.inputs]


def _window_axes(size: int, kernel: int, stride: int, pads: tuple[int, int]) -> Axis:
    """Scan of one padded axis: real cells are taken, a result is issued where a window ends."""
    padded = size + pads[0] + pads[1]
    out = (padded - kernel) // stride + 1
    return Axis(padded, Cells(pads[0], size), Cells(kernel - 1, out, stride))


def _spatial(node: Node, graph: Graph) -> tuple[int, int]:
    return grid(graph.shape_of(node.inputs[0]))


def _refuse(node: Node, why: str) -> UserError:
    return UserError(
        f"layer '{node.name}' ({node.kind}): {why} in the streaming architecture; use --io parallel for this model"
    )


def _window_scan(node: Linear | Pool, graph: Graph, name: str, ins: list[str], out: str) -> Scan:
    """Convolution or pooling windows over the input's pixels (1-D windows slide along the row)."""
    window = node.window
    assert window is not None
    h, w = _spatial(node, graph)
    if window.dims == 1:
        rows = Axis.plain(1)
        cols = _window_axes(w, window.kernel[0], window.strides[0], window.pads[0])
        kernel = (1, window.kernel[0])
    else:
        rows = _window_axes(h, window.kernel[0], window.strides[0], window.pads[0])
        cols = _window_axes(w, window.kernel[1], window.strides[1], window.pads[1])
        kernel = (window.kernel[0], window.kernel[1])
    pad_value = 0
    if isinstance(node, Pool) and node.mode == "max":
        # padding never wins a max: the lowest value of the input type does the same (a window
        # always holds at least one real cell, checked below)
        pad_value = graph.in_type(node).min_int
    if isinstance(node, Pool) and int(np.min(node.counts(graph.shape_of(node.inputs[0])))) < 1:
        raise _refuse(node, "a window that lies wholly in the padding is not supported")
    return Scan(name, ins, [out], node=node, rows=rows, cols=cols, kernel=kernel, pad_value=pad_value)


def _pixel_scan(node: Node, graph: Graph, name: str, ins: list[str], out: str) -> Scan:
    h, w = _spatial(node, graph)
    return Scan(name, ins, [out], node=node, rows=Axis.plain(h), cols=Axis.plain(w))


def _pad_scan(node: Pad, graph: Graph, name: str, ins: list[str], out: str) -> Scan:
    h, w = _spatial(node, graph)
    pads = ((0, 0), *node.pads) if len(graph.shape_of(node.inputs[0])) == 2 else node.pads
    rows = Axis(h + sum(pads[0]), Cells(pads[0][0], h), Cells(0, h + sum(pads[0])))
    cols = Axis(w + sum(pads[1]), Cells(pads[1][0], w), Cells(0, w + sum(pads[1])))
    return Scan(name, ins, [out], node=node, rows=rows, cols=cols)


def _crop_scan(node: Crop, graph: Graph, name: str, ins: list[str], out: str) -> Scan:
    h, w = _spatial(node, graph)
    crops = ((0, 0), *node.crops) if len(graph.shape_of(node.inputs[0])) == 2 else node.crops
    rows = Axis(h, Cells(0, h), Cells(crops[0][0], h - sum(crops[0])))
    cols = Axis(w, Cells(0, w), Cells(crops[1][0], w - sum(crops[1])))
    return Scan(name, ins, [out], node=node, rows=rows, cols=cols)


def _upsample_scan(node: Upsample, graph: Graph, name: str, ins: list[str], out: str) -> Scan:
    h, w = _spatial(node, graph)
    fh, fw = (1, node.factors[0]) if len(graph.shape_of(node.inputs[0])) == 2 else node.factors
    rows = Axis(h * fh, Cells(0, h, fh), Cells(0, h * fh))
    cols = Axis(w * fw, Cells(0, w, fw), Cells(0, w * fw))
    return Scan(name, ins, [out], node=node, rows=rows, cols=cols, repeat=(fh, fw))


def _is_global(node: Pool, graph: Graph) -> bool:
    assert node.window is not None
    spatial = graph.shape_of(node.inputs[0])[:-1]
    return tuple(node.window.kernel) == tuple(spatial) and not any(a or b for a, b in node.window.pads)


def _linear_unit(node: Linear, graph: Graph, name: str, ins: list[str], out: str) -> Unit:
    return _window_scan(node, graph, name, ins, out) if node.window else _pixel_scan(node, graph, name, ins, out)


def _pool_unit(node: Pool, graph: Graph, name: str, ins: list[str], out: str) -> Unit:
    if _is_global(node, graph):
        p, c = pixels(graph.shape_of(node.inputs[0]))
        return Collect(name, ins, [out], node=node, c_in=c, c_out=c, block=p * c, reduce=node.mode)
    return _window_scan(node, graph, name, ins, out)


def _reshape_unit(node: Reshape, graph: Graph, name: str, ins: list[str], out: str) -> Unit:
    _, c_in = pixels(graph.shape_of(node.inputs[0]))
    _, c_out = pixels(node.shape)
    if c_in == c_out:
        return Wire(name, ins, [out], node=node)
    return Collect(name, ins, [out], node=node, c_in=c_in, c_out=c_out, block=math.lcm(c_in, c_out))


def _transpose_unit(node: Transpose, graph: Graph, name: str, ins: list[str], out: str) -> Unit:
    raise _refuse(node, "a transpose reorders whole images, which a pixel stream cannot do without a frame buffer")


def _concat_unit(node: Concat, graph: Graph, name: str, ins: list[str], out: str) -> Unit:
    ndim = len(node.shape)
    if (node.axis if node.axis >= 0 else ndim + node.axis) != ndim - 1:
        raise _refuse(node, "concatenation along a spatial axis is not supported (only along channels)")
    return _pixel_scan(node, graph, name, ins, out)


# op -> the unit that carries it through the stream
STREAM_UNITS: OpTable[Callable[[Any, Graph, str, list[str], str], Unit]] = OpTable(
    "the streaming VHDL design (--io stream)",
    {
        Linear: _linear_unit,
        Pool: _pool_unit,
        Reshape: _reshape_unit,
        Transpose: _transpose_unit,
        Pad: _pad_scan,
        Crop: _crop_scan,
        Upsample: _upsample_scan,
        Concat: _concat_unit,
        **dict.fromkeys((*ELEMENTWISE, Softmax), _pixel_scan),
    },
)


def node_unit(node: Node, graph: Graph, name: str, ins: list[str], out: str) -> Unit:
    """The unit that carries ``node`` (UserError for what cannot stream)."""
    return STREAM_UNITS[node](node, graph, name, ins, out)


def unit_needs(unit: Unit, graph: Graph) -> np.ndarray:
    """For every output pixel of a node's unit, the last pixel it needs of each input."""
    if isinstance(unit, Scan):
        return unit.needs()
    if isinstance(unit, Collect):
        return unit.needs(pixels(unit.node.shape)[0] if unit.reduce is None else 1)
    assert isinstance(unit, Wire)
    return np.arange(pixels(unit.node.shape)[0])


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Needs through two units: ``outer`` indexed by ``inner`` (-1 stays -1)."""
    return np.where(inner >= 0, outer[np.clip(inner, 0, None)], -1)


def fifo_entries(graph: Graph, needs: dict[str, np.ndarray], node: Node) -> list[int]:
    """Entries each input of a join needs so that its branch can run ahead of the others.

    For a tensor ``a`` that several inputs descend from: when the join waits for
    its pixel j, some branch needs ``a``'s pixels up to M (the most any of them
    needs for j).  The eager fork hands ``a``'s pixel M over only after every
    branch took pixel M - 1, and a branch takes pixel m only after issuing every
    result that needs less: those from j on must wait in the join's FIFO.
    """
    ancestry: dict[str, dict[str, np.ndarray]] = {INPUT: {INPUT: np.arange(pixels(graph.input_shape)[0])}}
    for n in graph.nodes:
        own = needs[n.name]
        anc: dict[str, np.ndarray] = {}
        for src in n.inputs:
            for a, arr in ancestry[src].items():
                c = _compose(arr, own)
                anc[a] = np.maximum(anc[a], c) if a in anc else c
        anc[n.name] = np.arange(len(own))
        ancestry[n.name] = anc
        if n is node:
            break
    entries = [0] * len(node.inputs)
    branch = [ancestry[src] for src in node.inputs]
    j = np.arange(pixels(node.shape)[0])
    for a in set().union(*branch):
        having = [k for k, b in enumerate(branch) if a in b]
        if len(having) < 2:
            continue
        reach = np.max([branch[k][a] for k in having], axis=0)
        for k in having:
            taken = np.maximum(branch[k][a], reach - 1)  # what branch k must take from a
            issued = np.searchsorted(branch[k][a], taken, side="left")  # results that need less
            direct = node.inputs[k] == a  # the FIFO itself takes the pixel
            entries[k] = max(entries[k], int(np.max(issued - j + direct)))
    return entries


def plan(graph: Graph, short: dict[str, str]) -> Plan:
    """The units of the streaming design of ``graph`` (``short``: VHDL names of the tensors)."""
    readers: dict[str, list[tuple[str, int]]] = {INPUT: []}
    for n in graph.nodes:
        readers[n.name] = []
        for k, src in enumerate(n.inputs):
            readers[src].append((n.name, k))
    readers[graph.output.name].append((OUTPUT, 0))
    links: dict[str, str] = {}
    units: list[Unit] = []
    unique = UniqueNames(set(short.values()))
    edge: dict[tuple[str, int], str] = {}  # (reader, port) -> link

    def produced(tensor: str, link: str) -> None:
        links[link] = tensor
        who = readers[tensor]
        if len(who) == 1:
            edge[who[0]] = link
            return
        outs = [f"{link}_f{i}" for i in range(len(who))]
        for out, reader in zip(outs, who, strict=True):
            links[out] = tensor
            edge[reader] = out
        units.append(Fork(unique(f"fork_{short[tensor]}"), [link], outs, tensor=tensor))

    produced(INPUT, short[INPUT])
    needs: dict[str, np.ndarray] = {}
    for n in graph.nodes:
        ins = [edge[(n.name, k)] for k in range(len(n.inputs))]
        unit = node_unit(n, graph, short[n.name], ins, short[n.name])
        needs[n.name] = unit_needs(unit, graph)
        if len(n.inputs) > 1:  # every input of a join gets a FIFO; the timing model drops those not needed
            for k, need in enumerate(fifo_entries(graph, needs, n)):
                link = f"{ins[k]}_q"
                links[link] = n.inputs[k]
                units.append(Fifo(unique(f"fifo_{short[n.name]}_{k}"), [ins[k]], [link], n.inputs[k], max(need, 0)))
                ins[k] = link
            unit.inputs = ins
        units.append(unit)
        produced(n.name, short[n.name])
    return Plan(units, links, short[INPUT], edge[(OUTPUT, 0)])
