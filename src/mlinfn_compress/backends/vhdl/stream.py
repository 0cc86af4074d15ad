"""The streaming architecture: one pixel per clock between layers, valid/ready handshakes.

Each unit of the plan (:mod:`.stream_plan`) becomes an entity: scans reuse
the per-node cores (the CMVM core of a Linear node, the element-wise,
pooling and concatenation entities of the dataflow architecture, sized to
one pixel), collects, FIFOs and forks have templates of their own.  The
top level joins them by links (valid, ready, one pixel of data); the design
grows with the image size only in its line buffers and FIFOs.  The latency
and initiation interval it states come from the clock-by-clock model of
its handshakes (:mod:`.stream_timing`), which the textio bench measures again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl.cmvm import build_core
from mlinfn_compress.backends.vhdl.design import ArithOptions, TensorNames, VhdlDesign, check_widths, template_env
from mlinfn_compress.backends.vhdl.ops import (
    ELEMENTWISE,
    Rendered,
    pool_requant,
    render_concat,
    render_elementwise,
    render_pool,
)
from mlinfn_compress.backends.vhdl.stream_plan import Collect, Fifo, Fork, Plan, Scan, Unit, Wire, pixels, plan
from mlinfn_compress.backends.vhdl.stream_timing import Deadlock, size_fifos, timing
from mlinfn_compress.compress.ir import INPUT, Concat, Graph, Linear, Node, Pool
from mlinfn_compress.compress.ir.dispatch import OpTable
from mlinfn_compress.compress.ir.movement import Movement
from mlinfn_compress.errors import UserError


class _Names(TensorNames):
    """Tensor names plus the stream's pixel types."""

    def pix(self, tensor: str) -> str:
        return f"{self.short[tensor]}_pix"


def _write(out: Path, entity: str, text: str) -> Path:
    path = out / f"{entity}.vhd"
    path.write_text(text)
    return path


@dataclass
class _Core:
    """The scan whose core is being written, its entity's name, ports and description lines."""

    unit: Scan
    entity: str
    ports: list[dict[str, str]]
    describe: list[str]


class _Renderer:
    def __init__(self, graph: Graph, out: Path, options: ArithOptions) -> None:
        self.graph = graph
        self.out = out
        self.options = options
        self.env: jinja2.Environment = template_env()
        self.names = _Names(graph)
        self.common: dict[str, Any] = {
            "top": self.names.top,
            "version": __version__,
            "source": Path(graph.source_path).name,
        }
        self.files: list[Path] = []
        self.vectors: list[dict[str, Any]] = []
        self.layers: list[dict[str, Any]] = []
        self.costs: dict[str, dict[str, int]] = {}  # a Linear node's core: adders, multipliers, register bits

    def entity(self, unit: Unit) -> str:
        return f"{self.names.top}_{unit.name}"

    # ---- scans ----

    def scan(self, unit: Scan) -> None:
        node, names = unit.node, self.names
        entity = self.entity(unit)
        single = len(node.inputs) == 1
        ports = [
            {"name": "in" if single else f"in{k}", "pix": names.pix(src), "core": "x" if single else f"x{k}"}
            for k, src in enumerate(node.inputs)
        ]
        kh, kw = unit.kernel
        rows, cols = unit.rows, unit.cols
        padded = unit.repeat is None and (rows.take.count < rows.size or cols.take.count < cols.size)
        take = " and ".join(e for e in (rows.take.expr("r", rows.size), cols.take.expr("c", cols.size)) if e != "true")
        emit = " and ".join(e for e in (rows.emit.expr("r", rows.size), cols.emit.expr("c", cols.size)) if e != "true")
        describe = [f"input {' and '.join(str(s) for s in self.graph.in_shapes(node))}, output {node.shape}."]
        core, has_divisor = self.core(unit, f"{entity}_core", ports, describe)
        divisor = None
        if has_divisor:
            divisor = {"rows": (rows.take.first, rows.take.count), "cols": (cols.take.first, cols.take.count)}
        ctx = dict(
            self.common,
            entity=entity,
            node=node,
            describe=describe,
            ports=ports,
            out_pix=names.pix(node.name),
            grid_rows=rows.size,
            grid_cols=cols.size,
            take_expr=take or "true",
            emit_expr=emit or "true",
            kh=kh,
            kw=kw,
            taps=kh * kw,
            channels=pixels(self.graph.shape_of(node.inputs[0]))[1],
            padded=padded,
            pad_value=unit.pad_value,
            repeat=unit.repeat,
            core=core,
            divisor=divisor,
            latency=unit.latency,
            depth=unit.depth,
        )
        self.files.append(_write(self.out, entity, self.env.get_template("stream_scan.vhd.j2").render(ctx)))

    def core(
        self, unit: Scan, entity: str, ports: list[dict[str, str]], describe: list[str]
    ) -> tuple[dict[str, Any] | None, bool]:
        """Write the scan's core; (what the scan template needs to instantiate it, whether it takes
        a divisor).  Sets the unit's latency."""
        return SCAN_CORES[unit.node](self, _Core(unit, entity, ports, describe))

    def _base(self, job: _Core) -> dict[str, Any]:
        return dict(self.common, entity=job.entity, out_vec=self.names.pix(job.unit.node.name))

    def _linear_core(self, job: _Core) -> tuple[dict[str, Any] | None, bool]:
        node, unit, names = job.unit.node, job.unit, self.names
        assert isinstance(node, Linear)
        short = names.short[node.name]
        win_vec, row_vec = f"{short}_win_vec", f"{short}_row_vec"
        if node.window is not None:
            w = node.window
            job.describe.append(f"Window {w.kernel}, strides {w.strides}, zero padding {w.pads} (line buffers).")
        self.vectors += [
            {
                "vec": win_vec,
                "size": node.n_in,
                "elem": names.elem(node.inputs[0]),
                "comment": f"{node.name}: one window",
            },
            {"vec": row_vec, "alias": names.pix(node.name), "comment": f"{node.name}: one result row"},
        ]
        ctx = dict(self._base(job), in_ports=[{"port": "x", "vec": win_vec}], out_vec=row_vec)
        core = build_core(self.env, self.graph, node, ctx, self.options)
        unit.latency = core.latency
        self.costs[node.name] = {"adders": core.adders, "multipliers": core.multipliers,
                                 "register_bits": core.register_bits}  # fmt: skip
        self.files.append(_write(self.out, job.entity, core.text))
        return {"entity": job.entity, "window_vec": win_vec, "ports": [("x", "xw")]}, False

    def _pool_core(self, job: _Core) -> tuple[dict[str, Any] | None, bool]:
        node, unit, graph = job.unit.node, job.unit, self.graph
        assert isinstance(node, Pool)
        win_vec = f"{self.names.short[node.name]}_win_vec"
        taps = unit.kernel[0] * unit.kernel[1]
        channels = pixels(graph.shape_of(node.inputs[0]))[1]
        self.vectors.append({"vec": win_vec, "size": taps * channels, "elem": self.names.elem(node.inputs[0]),
                             "comment": f"{node.name}: one window"})  # fmt: skip
        counts = {int(d) for d in node.divisors(graph.shape_of(node.inputs[0])).ravel()}
        divisor = node.mode == "avg" and len(counts) > 1
        in_ports = [{"port": "x", "vec": win_vec}] + ([{"port": "d", "vec": "integer"}] if divisor else [])
        rendered = render_pool(self.env, graph, node, dict(self._base(job), in_ports=in_ports), window_only=True)
        self.files.append(_write(self.out, job.entity, rendered.text))
        unit.latency = rendered.latency
        mapping = [("x", "xw")] + ([("d", "dv")] if divisor else [])
        return {"entity": job.entity, "window_vec": win_vec, "ports": mapping}, divisor

    def _movement_core(self, job: _Core) -> tuple[dict[str, Any] | None, bool]:
        node = job.unit.node
        if self.graph.in_type(node) != node.result_type:
            raise UserError(f"layer '{node.name}' ({node.kind}): data movement must keep its input's type")
        job.unit.latency = 0
        return None, False

    def _pixel_core(self, job: _Core, rendered: Rendered) -> tuple[dict[str, Any] | None, bool]:
        self.files.append(_write(self.out, job.entity, rendered.text))
        job.unit.latency = rendered.latency
        mapping = [(p["core"], f"{p['name']}_win(0)") for p in job.ports]
        return {"entity": job.entity, "window_vec": None, "ports": mapping}, False

    def _in_ports(self, job: _Core) -> list[dict[str, str]]:
        return [{"port": p["core"], "vec": p["pix"]} for p in job.ports]

    def _concat_core(self, job: _Core) -> tuple[dict[str, Any] | None, bool]:
        node, graph = job.unit.node, self.graph
        assert isinstance(node, Concat)
        shapes: list[tuple[int, ...]] = [(pixels(s)[1],) for s in graph.in_shapes(node)]
        base = dict(self._base(job), in_ports=self._in_ports(job))
        return self._pixel_core(job, render_concat(self.env, graph, node, base, shapes=shapes))

    def _elementwise_core(self, job: _Core) -> tuple[dict[str, Any] | None, bool]:
        node = job.unit.node
        base = dict(self._base(job), in_ports=self._in_ports(job))
        return self._pixel_core(job, render_elementwise(self.env, self.graph, node, base, n=pixels(node.shape)[1]))

    # ---- the other units ----

    def collect(self, unit: Collect) -> None:
        node, graph, names = unit.node, self.graph, self.names
        ctx = dict(
            self.common,
            entity=self.entity(unit),
            node=node,
            in_pix=names.pix(node.inputs[0]),
            out_pix=names.pix(node.name),
            elem=names.elem(node.name),
            c_in=unit.c_in,
            c_out=unit.c_out,
            block=unit.block,
            words_in=unit.words_in,
            words_out=1 if unit.reduce else unit.words_out,
            reduce=unit.reduce,
            describe=[f"input {graph.shape_of(node.inputs[0])}, output {node.shape}."],
        )
        if isinstance(node, Pool):
            extra, rq = pool_requant(graph, node, unit.words_in)
            ctx.update(extra=extra, requants=[rq], divisor=unit.words_in)
        self.files.append(
            _write(self.out, self.entity(unit), self.env.get_template("stream_collect.vhd.j2").render(ctx))
        )

    def fifo(self, unit: Fifo, reader: Node, port: int) -> None:
        bound = (
            f"the branches cannot deadlock with {unit.need} or more (from the graph)"
            if unit.need
            else "no entries are needed against a deadlock (from the graph)"
        )
        reason = f"Its branch runs ahead of the other input(s): {bound}; {unit.entries} keep them at full speed."
        ctx = dict(
            self.common,
            entity=self.entity(unit),
            entries=unit.entries,
            pix=self.names.pix(unit.tensor),
            node=reader,
            port=port,
            reason=reason,
        )
        self.files.append(_write(self.out, self.entity(unit), self.env.get_template("stream_fifo.vhd.j2").render(ctx)))

    def fork(self, unit: Fork) -> None:
        ctx = dict(self.common, entity=self.entity(unit), tensor=unit.tensor, n=len(unit.outputs))
        self.files.append(_write(self.out, self.entity(unit), self.env.get_template("stream_fork.vhd.j2").render(ctx)))


# op -> how a scan computes it on each window or pixel (the core the scan instantiates)
SCAN_CORES: OpTable[Callable[[_Renderer, _Core], tuple[dict[str, Any] | None, bool]]] = OpTable(
    "the streaming VHDL design (--io stream)",
    {
        Linear: _Renderer._linear_core,
        Pool: _Renderer._pool_core,
        Movement: _Renderer._movement_core,
        Concat: _Renderer._concat_core,
        **dict.fromkeys(ELEMENTWISE, _Renderer._elementwise_core),
    },
)


def _ports(unit: Unit) -> list[tuple[str, str]]:
    """Port map of a unit with pixel ports (scan, collect, FIFO)."""
    if len(unit.inputs) == 1:
        names = ["in"]
    else:
        names = [f"in{k}" for k in range(len(unit.inputs))]
    out: list[tuple[str, str]] = []
    for name, link in [*zip(names, unit.inputs, strict=True), ("out", unit.outputs[0])]:
        out += [(f"{name}_{s}", f"{link}_{s}") for s in ("valid", "ready", "data")]
    return out


def _top_unit(unit: Unit, entity: str, names: _Names, p: Plan) -> dict[str, Any]:
    if isinstance(unit, Fork):
        ports = [("in_valid", f"{unit.inputs[0]}_valid"), ("in_ready", f"{unit.inputs[0]}_ready")]
        ports += [(f"out_valid({i})", f"{o}_valid") for i, o in enumerate(unit.outputs)]
        ports += [(f"out_ready({i})", f"{o}_ready") for i, o in enumerate(unit.outputs)]
        assigns = [f"{o}_data <= {unit.inputs[0]}_data;" for o in unit.outputs]
        comment = f"fork: {unit.tensor} to {len(unit.outputs)} readers"
        return {"label": f"u_{unit.name}", "entity": entity, "ports": ports, "assigns": assigns, "wire": None,
                "comment": comment}  # fmt: skip
    if isinstance(unit, Wire):
        i, o = unit.inputs[0], unit.outputs[0]
        assigns = [f"{o}_valid <= {i}_valid;", f"{i}_ready <= {o}_ready;"]
        copy = {"label": f"copy_{unit.name}", "dst": f"{o}_data", "src": f"{i}_data", "n": pixels(unit.node.shape)[1]}
        comment = f"{unit.node.kind} {unit.node.name}: the same words, read as {unit.node.shape}"
        return {"label": "", "entity": None, "ports": [], "assigns": assigns, "wire": copy, "comment": comment}
    if isinstance(unit, Fifo):
        comment = f"FIFO of {unit.entries} pixels of {unit.tensor}"
    elif isinstance(unit, Scan | Collect):
        comment = f"{unit.node.kind} {unit.node.name}"
    return {"label": f"u_{unit.name}", "entity": entity, "ports": _ports(unit), "assigns": [], "wire": None,
            "comment": comment}  # fmt: skip


def render_stream(graph: Graph, outdir: Path, bench_dir: Path, options: ArithOptions | None = None) -> VhdlDesign:
    """Write the streaming design into ``outdir`` and its textio bench into ``bench_dir``; ``options``:
    the arithmetic of its CMVM cores."""
    options = options or ArithOptions()
    check_widths(graph)
    assert graph.input_type is not None
    outdir.mkdir(parents=True, exist_ok=True)
    r = _Renderer(graph, outdir, options)
    names = r.names
    p = plan(graph, names.short)
    for unit in p.units:
        if isinstance(unit, Scan):
            r.scan(unit)
        elif isinstance(unit, Collect):
            r.collect(unit)
        elif isinstance(unit, Fork):
            r.fork(unit)
    try:
        size_fifos(p, graph)
        t = timing(p, graph)
    except Deadlock as e:  # the FIFO sizing is meant to make this impossible
        raise RuntimeError(f"the streaming design of {graph.name} would deadlock: {e}") from e
    for unit in p.units:
        if isinstance(unit, Fifo):
            reader = next(u for u in p.units if unit.outputs[0] in u.inputs)
            assert isinstance(reader, Scan)
            r.fifo(unit, reader.node, reader.inputs.index(unit.outputs[0]))
    for unit in p.units:
        if isinstance(unit, Scan | Collect | Wire):
            lat = unit.latency if isinstance(unit, Scan) else 0
            kind = type(unit).__name__.lower()
            r.layers.append(
                {"name": unit.node.name, "entity": r.entity(unit), "unit": kind, "core_latency": lat, "latency": lat}
                | r.costs.get(unit.node.name, {})
            )
    return _finish(r, p, t, bench_dir)


def _finish(r: _Renderer, p: Plan, t: Any, bench_dir: Path) -> VhdlDesign:
    graph, names, env, common = r.graph, r.names, r.env, r.common
    assert graph.input_type is not None
    top = names.top
    tensors = []
    for tensor in [INPUT, *(n.name for n in graph.nodes)]:
        ty = graph.type_of(tensor)
        shape = graph.shape_of(tensor)
        words, size = pixels(shape)
        tensors.append(
            {"name": tensor, "shape": "x".join(map(str, shape)), "size": size, "words": words, "type": ty,
             "elem": names.elem(tensor), "vec": names.pix(tensor), "lo": ty.min_int, "hi": ty.max_int,
             "int": True}
        )  # fmt: skip
    pkg = r.out / f"{top}_pkg.vhd"
    pkg.write_text(env.get_template("pkg.vhd.j2").render(common, tensors=tensors, vectors=r.vectors))
    out_node = graph.output
    out_words, n_out = pixels(out_node.shape)
    files = [pkg, *r.files]
    if graph.has_argmax:
        entity = f"{top}_argmax"
        pix, elem = names.pix(out_node.name), names.elem(out_node.name)
        text = env.get_template("stream_argmax.vhd.j2").render(
            common, entity=entity, pix=pix, elem=elem, n=n_out, words=out_words
        )
        files.append(_write(r.out, entity, text))
    units = [_top_unit(u, r.entity(u), names, p) for u in p.units]
    links = [{"name": link, "pix": names.pix(tensor)} for link, tensor in p.links.items()]
    description = f"{len(graph.nodes)}-node network, streaming (one pixel per clock, valid/ready)" + (
        " with arg-max" if graph.has_argmax else ""
    )
    ctx = common | {"units": units, "links": links, "input_link": p.input_link, "output_link": p.output_link,
                    "description": description}  # fmt: skip
    return write_top(graph, "stream_top.vhd.j2", ctx, files, r.out, bench_dir, t, architecture="stream",
                     layers=r.layers, arith=r.options)  # fmt: skip


def write_top(
    graph: Graph,
    template: str,
    ctx: dict[str, Any],
    files: list[Path],
    outdir: Path,
    bench_dir: Path,
    t: Any,
    **design: Any,
) -> VhdlDesign:
    """The handshake top level (``template`` rendered with ``ctx`` and the interface), its textio
    bench, and the design with them: ``files`` before the top level, ``t`` the stated timing,
    ``design`` the other VhdlDesign fields."""
    assert graph.input_type is not None
    out_t = graph.output.result_type
    assert out_t is not None
    env, top = template_env(), ctx["top"]
    in_words, n_in = pixels(graph.input_shape)
    out_words, n_out = pixels(graph.output.shape)
    iface = {
        "n_in": n_in,
        "w_in": graph.input_type.width,
        "in_signed": graph.input_type.signed,
        "in_type": graph.input_type,
        "in_shape": graph.input_shape,
        "in_words": in_words,
        "n_out": n_out,
        "w_out": out_t.width,
        "out_signed": out_t.signed,
        "out_type": out_t,
        "out_shape": graph.output.shape,
        "out_words": out_words,
        "argmax": graph.has_argmax,
        "w_idx": max(1, int(out_words * n_out - 1).bit_length()),
        "latency": t.latency,
        "interval": t.initiation_interval,
    }
    top_path = outdir / f"{top}.vhd"
    top_path.write_text(env.get_template(template).render(ctx | iface))
    bench_dir.mkdir(parents=True, exist_ok=True)
    tb_path = bench_dir / f"{top}_tb.vhd"
    stall_limit = 2 * (t.latency + t.initiation_interval) + 100
    tb_path.write_text(env.get_template("stream_tb.vhd.j2").render(ctx | iface, stall_limit=stall_limit))
    return VhdlDesign(
        top=top,
        files=[*files, top_path],
        testbench=tb_path,
        latency=t.latency,
        n_in=n_in,
        w_in=graph.input_type.width,
        in_signed=graph.input_type.signed,
        n_out=n_out,
        w_out=out_t.width,
        out_signed=out_t.signed,
        argmax=graph.has_argmax,
        w_idx=iface["w_idx"],
        initiation_interval=t.initiation_interval,
        in_words=in_words,
        out_words=out_words,
        steady_from=t.steady_from,
        **design,
    )
