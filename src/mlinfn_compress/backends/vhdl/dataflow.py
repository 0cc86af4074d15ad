"""The dataflow architecture: every node of the graph in hardware at once, one input per clock.

Each node becomes an entity with a fixed latency (0 for wiring such as
reshape or padding, 1 for a registered element-wise stage, the CMVM core's
latency for a Linear node).  The top level places them on a timeline:
a node starts when its last input is ready, and the inputs that are ready
earlier go through delay registers, so every path has the same latency and
the initiation interval stays 1.  A single valid pipeline of the total
latency runs beside the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl.cmvm import build_core
from mlinfn_compress.backends.vhdl.design import ArithOptions, TensorNames, VhdlDesign, int_table, template_env
from mlinfn_compress.backends.vhdl.ops import (
    ELEMENTWISE,
    Rendered,
    linear_sources,
    render_concat,
    render_elementwise,
    render_move,
    render_pool,
    render_softmax,
)
from mlinfn_compress.backends.vhdl.requant import signed_bits, type_fits_int
from mlinfn_compress.compress.fixed import FixedType
from mlinfn_compress.compress.ir import (
    INPUT,
    Cast,
    Clip,
    Concat,
    Graph,
    Linear,
    Node,
    Pool,
    Softmax,
)
from mlinfn_compress.compress.ir.dispatch import OpTable
from mlinfn_compress.compress.ir.movement import Movement

Built = tuple[Rendered, list[Path], list[dict[str, Any]], dict[str, Any]]  # entity, its core's files, vectors, costs


@dataclass
class _Job:
    """Everything the renderer of one node's entity reads."""

    env: jinja2.Environment
    graph: Graph
    node: Node
    names: TensorNames
    base: dict[str, Any]
    out: Path
    options: ArithOptions
    then: Clip | Cast | None


def _entity(render: Callable[[jinja2.Environment, Graph, Any, dict[str, Any]], Rendered]) -> Callable[[_Job], Built]:
    """A node that is one template's entity: no core, no vector types of its own, costs from its registers."""

    def build(job: _Job) -> Built:
        return render(job.env, job.graph, job.node, job.base), [], [], {}

    return build


def _render_node(
    env: jinja2.Environment,
    graph: Graph,
    node: Node,
    names: TensorNames,
    common: dict[str, Any],
    out: Path,
    options: ArithOptions,
    then: Clip | Cast | None = None,
) -> tuple[list[Path], int, list[dict[str, Any]], dict[str, Any]]:
    """Write the node's entity (and its core); returns (files, latency, extra vector types for the
    package, the node's costs: adders, multipliers, register bits).  ``then``: the clip or cast
    fused into a Linear node's core (the entity then outputs that node's tensor)."""
    ports = (
        [{"port": "x", "vec": names.vec(node.inputs[0])}]
        if len(node.inputs) == 1
        else [{"port": f"x{k}", "vec": names.vec(s)} for k, s in enumerate(node.inputs)]
    )
    entity = names.entity(node.name)
    base = dict(common, entity=entity, in_ports=ports, out_vec=names.vec((then or node).name))
    job = _Job(env, graph, node, names, base, out, options, then)
    rendered, files, vectors, costs = PARALLEL[node](job)
    path = out / f"{entity}.vhd"
    path.write_text(rendered.text)
    files.append(path)
    if not costs:
        t = graph.type_of(node.name)
        costs = {"register_bits": rendered.latency * node.size * signed_bits(t.min_int, t.max_int)}
    return files, rendered.latency, vectors, costs


def _render_linear(job: _Job) -> Built:
    """The core of a Linear node and the entity that applies it at every window position."""
    env, graph, node, names, base, out, options, then = (job.env, job.graph, job.node, job.names, job.base, job.out,
                                                         job.options, job.then)  # fmt: skip
    assert isinstance(node, Linear)
    entity = base["entity"]
    result = (then or node).name
    short = names.short[node.name]
    win_vec, row_vec = f"{short}_win_vec", f"{short}_row_vec"
    vectors = [
        {"vec": win_vec, "size": node.n_in, "elem": names.elem(node.inputs[0]), "comment": f"{node.name}: one window"},
        {"vec": row_vec, "size": node.n_out, "elem": names.elem(result), "comment": f"{result}: one result row"},
    ]
    core = f"{entity}_core"
    core_ctx = dict(base, entity=core, in_ports=[{"port": "x", "vec": win_vec}], out_vec=row_vec)
    built = build_core(env, graph, node, core_ctx, options, then)
    path = out / f"{core}.vhd"
    path.write_text(built.text)
    positions, src = linear_sources(graph, node)
    costs: dict[str, Any] = {
        "adders": built.adders * positions,
        "multipliers": built.multipliers * positions,
        "register_bits": built.register_bits * positions,
        "core_instances": positions,
    }
    if built.stage_ns is not None:
        costs["stage_ns"] = built.stage_ns
    ctx = dict(
        base,
        node=node,
        core=core,
        latency=built.latency,
        positions=positions,
        n_in=node.n_in,
        n_out=node.n_out,
        window=node.window,
        win_vec=win_vec,
        row_vec=row_vec,
        src_table=int_table(src),
        zero=_zero(graph.in_type(node)),
        then=then,
    )
    rendered = Rendered(env.get_template("cmvm_apply.vhd.j2").render(ctx), built.latency)
    return rendered, [path], vectors, costs


# op -> how the parallel design renders its entity
PARALLEL: OpTable[Callable[[_Job], Built]] = OpTable(
    "the parallel VHDL design (--io parallel)",
    {
        Linear: _render_linear,
        Pool: _entity(render_pool),
        Movement: _entity(render_move),
        Concat: _entity(render_concat),
        Softmax: _entity(render_softmax),
        **dict.fromkeys(ELEMENTWISE, _entity(render_elementwise)),
    },
)


def fused_pairs(graph: Graph, options: ArithOptions) -> dict[str, Clip | Cast]:
    """Linear nodes whose only consumer is a clip or a cast: that node is computed in the Linear
    node's core (shift-add only), so the wide sums are never registered between the two."""
    if options.arith != "shift-add":
        return {}
    pairs: dict[str, Clip | Cast] = {}
    for node in graph.nodes:
        if not isinstance(node, Linear) or node.name == graph.output_name:
            continue
        consumers = graph.consumers(node.name)
        if len(consumers) == 1 and isinstance(consumers[0], Clip | Cast) and consumers[0].inputs == [node.name]:
            pairs[node.name] = consumers[0]
    return pairs


def _zero(t: FixedType) -> str:
    """The zero of a tensor's element type (integers or signed vectors)."""
    return "0" if type_fits_int(t) else "(others => '0')"


def render(graph: Graph, outdir: Path, bench_dir: Path, options: ArithOptions | None = None) -> VhdlDesign:
    """Write the design into ``outdir`` and its textio bench into ``bench_dir``."""
    if not graph.quantised:
        raise ValueError("the graph must be quantised before rendering")
    assert graph.input_type is not None
    options = options or ArithOptions()
    env = template_env()
    names = TensorNames(graph)
    top = names.top
    outdir.mkdir(parents=True, exist_ok=True)
    common = {"top": top, "version": __version__, "source": Path(graph.source_path).name}
    tensors = []
    for tensor in [INPUT, *(n.name for n in graph.nodes)]:
        t = graph.type_of(tensor)
        shape = graph.shape_of(tensor)
        size = 1
        for s in shape:
            size *= s
        tensors.append(
            {
                "name": tensor,
                "shape": "x".join(map(str, shape)),
                "size": size,
                "type": t,
                "elem": names.elem(tensor),
                "vec": names.vec(tensor),
                "lo": t.min_int,
                "hi": t.max_int,
                "int": type_fits_int(t),
                "bits": signed_bits(t.min_int, t.max_int),
            }
        )
    files: list[Path] = []
    vectors: list[dict[str, Any]] = []
    ready: dict[str, int] = {INPUT: 0}  # the clock cycle at which each tensor is valid
    delays_needed: dict[str, int] = {}  # tensor -> deepest delay any consumer needs
    units: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    fused = fused_pairs(graph, options)
    absorbed = {c.name: name for name, c in fused.items()}
    for node in graph.nodes:
        start = max(ready[s] for s in node.inputs)
        if node.name in absorbed:  # computed by the core of the Linear node before it
            ready[node.name] = ready[node.inputs[0]]
            layers.append({"name": node.name, "fused_into": absorbed[node.name], "start": start, "latency": 0})
            continue
        then = fused.get(node.name)
        ports = []
        for k, src in enumerate(node.inputs):
            lag = start - ready[src]
            delays_needed[src] = max(delays_needed.get(src, 0), lag)
            signal = _signal(names, src, lag)
            ports.append({"port": "x" if len(node.inputs) == 1 else f"x{k}", "signal": signal})
        node_files, latency, extra, costs = _render_node(env, graph, node, names, common, outdir, options, then)
        files += node_files
        vectors += extra
        ready[node.name] = start + latency
        what = f"{node.kind} {node.name}" + (f" with {then.kind} {then.name}" if then is not None else "")
        units.append(
            {
                "label": f"u_{names.short[node.name]}",
                "entity": names.entity(node.name),
                "ports": ports,
                "output": _signal(names, (then or node).name, 0),
                "argmax": False,
                "comment": f"{what}: cycles {start} to {start + latency}",
            }
        )
        layers.append(
            {"name": node.name, "entity": names.entity(node.name), "start": start, "latency": latency, **costs}
        )
    out_node = graph.output
    last = _signal(names, out_node.name, 0)
    latency = ready[out_node.name]
    if graph.has_argmax:
        entity = f"{top}_argmax"
        path = outdir / f"{entity}.vhd"
        widths = tournament(out_node.size)
        levels = len(widths) - 1
        path.write_text(
            env.get_template("argmax.vhd.j2").render(
                common, entity=entity, in_vec=names.vec(out_node.name), in_elem=names.elem(out_node.name),
                n=out_node.size, widths=widths, levels=levels,
            )
        )  # fmt: skip
        files.append(path)
        units.append(
            {
                "label": "u_argmax",
                "entity": entity,
                "ports": [{"port": "x", "signal": last}],
                "output": "s_argmax",
                "argmax": True,
                "comment": f"arg-max: cycles {latency} to {latency + levels}",
            }
        )
        last = "s_argmax"
        latency += levels
    signals = [{"name": _signal(names, INPUT, 0), "vec": names.vec(INPUT)}]
    signals += [
        {"name": _signal(names, n.name, 0), "vec": names.vec(n.name)} for n in graph.nodes if n.name not in fused
    ]
    delays = []
    delay_bits = 0
    for tensor, depth in delays_needed.items():
        t = graph.type_of(tensor)
        delay_bits += depth * math.prod(graph.shape_of(tensor)) * signed_bits(t.min_int, t.max_int)
        for d in range(1, depth + 1):
            signals.append({"name": _signal(names, tensor, d), "vec": names.vec(tensor)})
            delays.append({"name": _signal(names, tensor, d), "source": _signal(names, tensor, d - 1)})
    if graph.has_argmax:
        signals.append({"name": "s_argmax", "vec": names.vec(out_node.name)})
    pkg = outdir / f"{top}_pkg.vhd"
    pkg.write_text(env.get_template("pkg.vhd.j2").render(common, tensors=tensors, vectors=vectors))
    out_t = out_node.result_type
    assert out_t is not None
    w_idx = max(1, int(out_node.size - 1).bit_length())
    iface = {
        "n_in": graph.input_size,
        "w_in": graph.input_type.width,
        "in_signed": graph.input_type.signed,
        "in_type": graph.input_type,
        "n_out": out_node.size,
        "w_out": out_t.width,
        "out_signed": out_t.signed,
        "out_type": out_t,
        "argmax": graph.has_argmax,
        "w_idx": w_idx,
        "latency": latency,
        "in_int": type_fits_int(graph.input_type),
        "in_bits": signed_bits(graph.input_type.min_int, graph.input_type.max_int),
        "out_int": type_fits_int(out_t),
    }
    description = f"{len(graph.nodes)}-node network, fully parallel (dataflow)" + (
        " with arg-max" if graph.has_argmax else ""
    )
    top_path = outdir / f"{top}.vhd"
    top_path.write_text(
        env.get_template("top.vhd.j2").render(
            common
            | iface
            | {
                "units": units,
                "signals": signals,
                "delays": delays,
                "last": last,
                "input_signal": _signal(names, INPUT, 0),
                "description": description,
            }
        )
    )
    bench_dir.mkdir(parents=True, exist_ok=True)
    tb_path = bench_dir / f"{top}_tb.vhd"
    tb_path.write_text(env.get_template("tb_textio.vhd.j2").render(common | iface))
    return VhdlDesign(
        top=top,
        files=[pkg, *files, top_path],
        testbench=tb_path,
        latency=latency,
        n_in=graph.input_size,
        w_in=graph.input_type.width,
        in_signed=graph.input_type.signed,
        n_out=out_node.size,
        w_out=out_t.width,
        out_signed=out_t.signed,
        argmax=graph.has_argmax,
        w_idx=w_idx,
        layers=layers,
        arith=options,
        delay_register_bits=delay_bits,
    )


def _signal(names: TensorNames, tensor: str, delay: int) -> str:
    base = f"t_{names.short[tensor]}"
    return base if delay == 0 else f"{base}_d{delay}"


def tournament(n: int) -> list[int]:
    """The number of candidates before and after each registered level of a tournament over n values
    (one level at least, so that the arg-max is registered like every other stage)."""
    widths = [n]
    while widths[-1] > 1 or len(widths) == 1:
        widths.append((widths[-1] + 1) // 2)
    return widths
