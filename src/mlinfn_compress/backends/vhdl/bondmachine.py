"""The BondMachine-style architecture: small processing cores with weight ROMs, joined by handshakes.

Each dense layer (with the element-wise nodes after it) becomes a layer
entity (``bm_layer.vhd.j2``) holding its input vector, its cores
(``bm_core.vhd.j2``: a ROM of the non-zero weights of the neurons the core
serves, one multiplier, an accumulator and the layer's re-quantisation), one
chain of the dataflow architecture's element-wise entities per core (sized to
one value), its result register and its output buffer.  Layers are joined by
point-to-point links with valid/ready handshakes; the top level is the
streaming architecture's (``bm_top.vhd.j2`` extends it), with one word per
sample, and the textio bench is the streaming one.  What goes where, and the
latency and interval the design states, come from :mod:`.bondmachine_plan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl.bondmachine_plan import CORE_PIPELINE, Core, Layer, chain, plan, timing
from mlinfn_compress.backends.vhdl.design import (
    ArithOptions,
    TensorNames,
    VhdlDesign,
    check_widths,
    int_table,
    template_env,
)
from mlinfn_compress.backends.vhdl.ops import render_elementwise
from mlinfn_compress.backends.vhdl.requant import requant_spec, signed_bits
from mlinfn_compress.backends.vhdl.stream import write_top
from mlinfn_compress.compress.ir import INPUT, Graph


class _Names(TensorNames):
    """Tensor names plus the one-value vectors of the element-wise entities inside a layer."""

    def one(self, tensor: str) -> str:
        return f"{self.short[tensor]}_one"


def _core_context(graph: Graph, layer: Layer, core: Core, names: _Names) -> dict[str, Any]:
    """What ``bm_core.vhd.j2`` needs for ``core``: its ROM, widths and value ranges."""
    node = layer.linear
    x_t = graph.in_type(node)
    assert node.accum_type is not None and node.result_type is not None
    sw, _ = node.shifts(x_t)
    _, b = node.constants(x_t)
    lo, hi, _ = node.column_bounds(x_t)
    w_lo, w_hi = min(core.weights), max(core.weights)
    x_big = max(abs(x_t.min_int), abs(x_t.max_int))
    acc_mag = max(sum(abs(w) for w, j in zip(core.weights, _owners(core), strict=True) if j == n) * x_big
                  for n in core.neurons)  # fmt: skip
    corners = [a * c for a in (x_t.min_int, x_t.max_int) for c in (w_lo, w_hi)]
    slots = max(1, len(core.neurons) - 1)
    biases = [int(b[j]) for j in core.neurons] + [0] * (slots + 1 - len(core.neurons))
    return {
        "index": core.index,
        "neurons": core.neurons,
        "entries": core.entries,
        "idx_bits": max(1, (node.n_in - 1).bit_length()),
        "w_bits": signed_bits(w_lo, w_hi),
        "w_lo": w_lo,
        "w_hi": w_hi,
        "x_lo": x_t.min_int,
        "x_hi": x_t.max_int,
        "x_bits": signed_bits(x_t.min_int, x_t.max_int),
        "p_lo": min(0, *corners),
        "p_hi": max(0, *corners),
        "acc_mag": acc_mag,
        "sw": sw,
        "idx_table": int_table(core.inputs),
        "wgt_table": int_table(core.weights),
        "last_bits": "".join("1" if f else "0" for f in core.last),
        # places 0 to slots (at least 0 to 1: a one-bit place, where a null range would be a zero-width port)
        "slots": slots,
        "bias_table": int_table(biases),
        # a constrained range: GHDL 2.0's synthesis writes some tables of unconstrained integers as zeros
        "b_lo": min(-1, *biases),
        "b_hi": max(1, *biases),
        "rq": requant_spec(
            node.accum_type.frac,
            int(min(lo[j] for j in core.neurons)),
            int(max(hi[j] for j in core.neurons)),
            node.result_type,
        ),
        "x_vec": names.vec(node.inputs[0]),
        "y_vec": names.one(node.name),
        "pipeline": CORE_PIPELINE - 1,
    }


def _owners(core: Core) -> list[int]:
    """The neuron of each ROM entry."""
    owners, k = [], 0
    for last in core.last:
        owners.append(core.neurons[k])
        k += int(last)
    return owners


def render_bondmachine(
    graph: Graph, outdir: Path, bench_dir: Path, reuse: int, options: ArithOptions | None = None
) -> VhdlDesign:
    """Write the design with ``reuse`` neurons per core into ``outdir`` and its textio bench into
    ``bench_dir``.  ``options`` only carries the clock period the report quotes."""
    chain(graph)  # what the architecture does not take is refused before anything else
    check_widths(graph)
    assert graph.input_type is not None
    layers = plan(graph, reuse)
    t = timing(layers)
    outdir.mkdir(parents=True, exist_ok=True)
    env = template_env()
    names = _Names(graph)
    top = names.top
    common = {"top": top, "version": __version__, "source": Path(graph.source_path).name}
    files: list[Path] = []
    vectors: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []

    def write(entity: str, text: str) -> None:
        path = outdir / f"{entity}.vhd"
        path.write_text(text)
        files.append(path)

    for layer in layers:
        node = layer.linear
        entity = names.entity(node.name)
        tensors = [node.name, *(op.name for op in layer.ops)]
        vectors += [{"vec": names.one(t), "size": 1, "elem": names.elem(t), "comment": f"{t}: one value"}
                    for t in tensors]  # fmt: skip
        ops = []
        for op, src in zip(layer.ops, tensors, strict=False):
            op_entity = names.entity(op.name)
            base = dict(common, entity=op_entity, in_ports=[{"port": "x", "vec": names.one(src)}],
                        out_vec=names.one(op.name))  # fmt: skip
            write(op_entity, render_elementwise(env, graph, op, base, n=1).text)
            ops.append({"entity": op_entity, "short": names.short[op.name], "what": f"{op.kind} {op.name}"})
            rows.append({"name": op.name, "entity": op_entity, "fused_into": node.name, "latency": 0})
        cores = []
        for core in layer.cores:
            core_entity = f"{entity}_core{core.index}"
            ctx = dict(common, entity=core_entity, node=node, steps=layer.steps)
            ctx.update(_core_context(graph, layer, core, names))
            write(core_entity, env.get_template("bm_core.vhd.j2").render(ctx))
            cores.append({"index": core.index, "entity": core_entity, "neurons": core.neurons})
        out = layer.output
        ctx = dict(
            common,
            entity=entity,
            node=node,
            ops=ops,
            cores=cores,
            reuse=reuse,
            steps=layer.steps,
            longest=max((c.entries for c in layer.cores), default=0),
            chain=[names.one(t) for t in tensors],
            constants=sorted(layer.constants.items()),
            in_vec=names.vec(node.inputs[0]),
            out_vec=names.vec(out),
        )
        write(entity, env.get_template("bm_layer.vhd.j2").render(ctx))
        rows.insert(
            len(rows) - len(ops),
            {
                "name": node.name,
                "entity": entity,
                "entities": [entity, *(c["entity"] for c in cores), *(o["entity"] for o in ops)],
                "unit": "bondmachine layer",
                "latency": layer.period,
                "steps": layer.steps,
                "cores": len(layer.cores),
                "rom_entries": [c.entries for c in layer.cores],
                "constant_neurons": len(layer.constants),
                "multipliers": len(layer.cores),
            },
        )
    return _finish(graph, layers, t, names, common, files, vectors, rows, outdir, bench_dir, reuse, options)


def _finish(
    graph: Graph,
    layers: list[Layer],
    t: Any,
    names: _Names,
    common: dict[str, Any],
    files: list[Path],
    vectors: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    outdir: Path,
    bench_dir: Path,
    reuse: int,
    options: ArithOptions | None,
) -> VhdlDesign:
    """The package, the arg-max, the top level and the bench."""
    assert graph.input_type is not None
    env, top = template_env(), names.top
    tensors = []
    for tensor in [INPUT, *(n.name for n in graph.nodes)]:
        ty = graph.type_of(tensor)
        size = int(np.prod(graph.shape_of(tensor)))
        tensors.append({"name": tensor, "shape": "x".join(map(str, graph.shape_of(tensor))), "size": size, "type": ty,
                        "elem": names.elem(tensor), "vec": names.vec(tensor), "lo": ty.min_int, "hi": ty.max_int,
                        "int": True})  # fmt: skip
    pkg = outdir / f"{top}_pkg.vhd"
    pkg.write_text(env.get_template("pkg.vhd.j2").render(common, tensors=tensors, vectors=vectors))
    files.insert(0, pkg)
    n_out = graph.output_size
    links = ["l_input", *(f"l_{names.short[layer.output]}" for layer in layers)]
    tensors_of = [INPUT, *(layer.output for layer in layers)]
    units = []
    for k, layer in enumerate(layers):
        ports = [(f"{side}_{s}", f"{link}_{s}") for side, link in (("in", links[k]), ("out", links[k + 1]))
                 for s in ("valid", "ready", "data")]  # fmt: skip
        what = ", ".join([f"{layer.linear.kind} {layer.linear.name}", *(f"{op.kind} {op.name}" for op in layer.ops)])
        units.append({"label": f"u_{names.short[layer.linear.name]}", "entity": names.entity(layer.linear.name),
                      "ports": ports, "assigns": [], "wire": None,
                      "comment": f"{what}: {len(layer.cores)} core(s)"})  # fmt: skip
    if graph.has_argmax:
        entity = f"{top}_argmax"
        text = env.get_template("stream_argmax.vhd.j2").render(
            common,
            entity=entity,
            pix=names.vec(graph.output.name),
            elem=names.elem(graph.output.name),
            n=n_out,
            words=1,
        )
        path = outdir / f"{entity}.vhd"
        path.write_text(text)
        files.append(path)
    summary = [
        f"{layer.linear.name}: {len(layer.cores)} core(s), ROMs of {max((c.entries for c in layer.cores), default=0)} "
        f"entries at most, {layer.period} clocks per sample"
        for layer in layers
    ]
    ctx = common | {
        "units": units,
        "links": [{"name": link, "pix": names.vec(tensor)} for link, tensor in zip(links, tensors_of, strict=True)],
        "input_link": links[0],
        "output_link": links[-1],
        "description": f"{len(layers)}-layer network, bondmachine architecture, up to {reuse} neuron(s) per core"
        + (" with arg-max" if graph.has_argmax else ""),
        "reuse": reuse,
        "layers": summary,
    }
    return write_top(graph, "bm_top.vhd.j2", ctx, files, outdir, bench_dir, t, architecture="bondmachine",
                     layers=rows, arith=options or ArithOptions(), reuse=reuse)  # fmt: skip
