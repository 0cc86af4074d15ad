"""report.json: what a run did and what it proved, and the human summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl import VhdlDesign
from mlinfn_compress.compress.fixed import FixedType, to_float
from mlinfn_compress.compress.ir import Graph, Linear, Table

FLOAT32_MANTISSA_BITS = 24
EXHAUSTIVE_BITS = 22  # a table's error is measured on every input value up to this input width


def _t(x: object) -> str | None:
    return None if x is None else str(x)


def layer_rows(graph: Graph, design: VhdlDesign | None = None) -> list[dict[str, Any]]:
    """One row per node; with a VHDL design, also its hardware: pipeline stages, adders, register bits."""
    hardware = {row["name"]: row for row in design.layers} if design is not None else {}
    rows = []
    for n in graph.nodes:
        types = n.types()
        row = {
            "name": n.name,
            "op": n.kind,
            "block": n.op.value,
            "source": n.source,
            "inputs": list(n.inputs),
            "in_shape": list(graph.shape_of(n.inputs[0])),
            "out_shape": list(n.shape),
            "weight_type": _t(types.get("weight")),
            "bias_type": _t(types.get("bias")),
            "result_type": _t(n.result_type),
            "accum_type": _t(types.get("accum")),
            "sparsity": round(n.sparsity(), 6),
            "multipliers": n.multipliers(),
            "notes": n.notes,
        }
        if n.name in hardware:
            hw = hardware[n.name]
            row["pipeline_stages"] = hw["latency"]
            row["register_bits"] = hw.get("register_bits", 0)
            if "fused_into" in hw:
                row["computed_in"] = hw["fused_into"]  # a clip or cast computed by the core before it
            if "cores" in hw:  # a bondmachine layer
                row.update(cores=hw["cores"], rom_entries=hw["rom_entries"], constant_neurons=hw["constant_neurons"])
            elif isinstance(n, Linear) and design is not None and design.arith.arith == "shift-add":
                row["adders"] = hw.get("adders")
                row["dsp_products"] = hw.get("multipliers")
        if len(n.inputs) > 1:
            row["in_shapes"] = [list(s) for s in graph.in_shapes(n)]
        extra = {k: _t(v) for k, v in types.items() if k not in ("weight", "bias", "accum", "result")}
        if extra:
            row["other_types"] = extra
        if isinstance(n, Table) and n.quantised:
            row["table_error"] = table_error(n, graph.in_type(n))
        rows.append(row)
    return rows


def table_error(node: Table, x_t: FixedType) -> dict[str, Any]:
    """A lookup table's largest absolute error against its float function, over its input type's values.

    Every value of the input type when it has at most ``EXHAUSTIVE_BITS``
    bits; otherwise the values next to each boundary between two table
    entries and the type's ends (where a monotonic function's error peaks).
    """
    assert node.index_type is not None and node.table_int is not None and node.result_type is not None
    if x_t.width <= EXHAUSTIVE_BITS:
        x = np.arange(x_t.min_int, x_t.max_int + 1, dtype=np.int64)
        over = f"every value of {x_t}"
    else:
        idx = node.index_type
        step = x_t.frac - idx.frac  # one table step is 2**step input steps
        q = np.arange(idx.min_int, idx.max_int + 1, dtype=object)
        centres = q * 2**step if step >= 0 else q // 2**-step
        half = 2 ** (step - 1) if step >= 1 else 0
        near = [centres + d for d in (-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half, half + 1)]
        x = np.clip(np.concatenate([*near, [x_t.min_int, x_t.max_int]]), x_t.min_int, x_t.max_int)
        over = f"the values of {x_t} next to every boundary between table entries"
    y = node.forward_int([x[None, :]], [x_t])[0]
    err = np.abs(to_float(np.asarray(y), node.result_type.frac) - node.float_function()(to_float(x, x_t.frac)))
    worst = int(np.argmax(err))
    return {"max_abs_error": float(err[worst]), "at_input": float(to_float(x[worst : worst + 1], x_t.frac)[0]),
            "over": over}  # fmt: skip


def compression(graph: Graph) -> dict[str, Any]:
    dense = [n for n in graph.nodes if isinstance(n, Linear) and n.weight_int is not None]
    total = sum(int(np.asarray(n.weight_int).size) for n in dense)
    zeros = sum(int(np.count_nonzero(np.asarray(n.weight_int) == 0)) for n in dense)
    bits = 0
    for n in dense:
        assert n.weight_type is not None and n.bias_type is not None
        bits += n.multipliers() * n.weight_type.width + int(np.count_nonzero(n.bias_int)) * n.bias_type.width
    return {
        "sparsity": round(zeros / total, 6) if total else 0.0,
        "weights": total,
        "zero_weights": zeros,
        "multipliers": sum(n.multipliers() for n in dense),
        "weight_bits_total": bits,
        "float32_bits_total": 32 * graph.parameters,
    }


def float_exactness(graph: Graph) -> dict[str, Any]:
    """Which layers a float32 framework can compute exactly (every value within the mantissa)."""
    inexact = []
    for n in graph.nodes:
        t = n.types().get("accum", n.result_type)
        if t is not None and t.width - (1 if t.signed else 0) > FLOAT32_MANTISSA_BITS:
            inexact.append(n.name)
    return {"float32_exact": not inexact, "layers_beyond_float32": inexact}


def hardware(
    design: VhdlDesign | None, outputs: dict[str, Any], interval: int | None, io: dict[str, Any] | None
) -> dict[str, Any]:
    """report.json's ``hardware``: latency, interval, architecture, clock and arithmetic of the VHDL design
    (None where the HLS build decides)."""
    hw: dict[str, Any] = {
        "latency_cycles": design.latency if design is not None else None,
        "initiation_interval": interval,
        "io": io,
        "resources": None,
        "outputs": outputs,
    }
    if design is not None:
        arith = design.arith
        hw.update(
            latency_ns=design.latency_ns,
            clock_period_ns=arith.clock_period_ns if design.latency_ns is not None else None,
            arithmetic=arith.arith,
            dsp=arith.dsp,
            adders=sum(row.get("adders", 0) for row in design.layers) if arith.arith == "shift-add" else None,
            register_bits=sum(row.get("register_bits", 0) for row in design.layers) + design.delay_register_bits,
        )
        if design.architecture == "bondmachine":
            hw.update(
                arithmetic="multiply-accumulate",
                dsp=None,
                adders=None,
                register_bits=None,
                reuse=design.reuse,
                cores=sum(row.get("cores", 0) for row in design.layers),
            )
    return hw


def build_report(
    graph: Graph,
    target: str,
    design: VhdlDesign | None,
    verification: dict[str, Any],
    quantisation: dict[str, Any],
    outputs: dict[str, Any],
    timings: dict[str, float],
    *,
    interval: int | None = 1,
    io: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report; ``io``: the VHDL architecture, how it was chosen and why (None without VHDL)."""
    return {
        "tool": {"name": "mlinfn-compress", "version": __version__},
        "model": {
            "path": graph.source_path,
            "framework": graph.framework,
            "parameters": graph.parameters,
            "input_shape": list(graph.input_shape),
            "output_shape": list(graph.output.shape),
        },
        "target": target,
        "layers": layer_rows(graph, design),
        "compression": compression(graph),
        "quantisation": quantisation,
        "verification": verification,
        "hardware": hardware(design, outputs, interval, io),
        "accuracy": None,
        "timings_s": timings,
    }


def summary(report: dict[str, Any], outdir: Path) -> str:
    lines = [f"mlinfn-compress {report['tool']['version']}: {report['model']['path']} -> {outdir}/"]
    lines.append(f"  {'layer':<16} {'op':<6} {'shape':>9}  {'weights':<26} {'result':<26} sparsity")
    for row in report["layers"]:
        shape = "x".join(map(str, row["in_shape"])) + "->" + "x".join(map(str, row["out_shape"]))
        lines.append(
            f"  {row['name']:<16} {row['op']:<6} {shape:>9}  {row['weight_type'] or '-':<26} "
            f"{row['result_type']:<26} {row['sparsity']:.0%}"
        )
    hw, comp, ver = report["hardware"], report["compression"], report["verification"]
    if hw.get("arithmetic") == "multiply-accumulate":
        arith = f"{hw['cores']} multiply-accumulate cores, up to {hw['reuse']} neuron(s) each"
    elif hw.get("arithmetic") == "shift-add":
        arith = f"{hw['adders']} adders" + (" and DSP products (--dsp)" if hw["dsp"] else ", no multiplier")
    else:
        arith = f"{comp['multipliers']} multipliers"
    lines.append(
        f"  latency {latency_text(report)}, initiation interval {hw['initiation_interval'] or 'set by its build'}; "
        f"{arith}, {comp['sparsity']:.0%} of weights zero"
    )
    io = hw.get("io")
    if io:
        lines.append(f"  architecture: {io['architecture']} ({io['chosen_by']}: {io['reason']})")
    res = hw.get("resources")
    if res and "LUT" in res:
        nodsp = res.get("nodsp", {})
        lines.append(
            f"  resources (yosys estimate, {res['seconds']} s): {res['LUT']} LUT, {res['FF']} FF, "
            f"{res['DSP']} DSP, {res['CARRY']} CARRY4" + (f"; without DSPs {nodsp['LUT']} LUT" if nodsp else "")
        )
    timing = hw.get("timing")
    if timing:
        lines.append(f"  timing: {timing_text(timing)}")
    if hw["outputs"].get("note"):
        lines.append(f"  outputs: {hw['outputs']['note']}")
    sm = hw["outputs"].get("softmax")
    if sm:
        lines.append(
            f"  table softmax: max |error| {sm['max_abs_error_vs_float']:.3g} against the float softmax of the same "
            f"logits ({sm['samples']} samples)"
        )
    for row in report["layers"]:
        if "table_error" in row:
            lines.append(f"  table {row['name']} ({row['op']}): max |error| {row['table_error']['max_abs_error']:.3g}")
    fm = report["quantisation"].get("float_model")
    if fm:
        lines.append(
            f"  vs float model: max |error| {fm['max_abs_error']:.4g}, arg-max agreement {fm['argmax_agreement']:.2%}"
        )
    lines.append(
        f"  verification: {ver['samples']} samples against {', '.join(ver['against'])}: "
        f"{ver['mismatches']} mismatches{_checks(ver)} -> {verdict(ver)}"
    )
    if ver.get("simulation_error"):
        lines.append(f"  {ver['simulation_error']}")
    if ver["first_mismatch"]:
        fm2 = ver["first_mismatch"]
        where = (
            fm2["where"]
            if "where" in fm2
            else f"sample {fm2['sample']}, output {fm2.get('output_name', fm2['output'])}"
        )
        lines.append(
            f"  first mismatch: {where} against {fm2['against']}: expected {fm2['expected']}, got {fm2['got']}"
        )
    net = ver.get("netlist")
    if net:
        lines.append(f"  netlist: {netlist_text(net)}")
    for text in report.get("warnings") or []:
        lines.append(f"  WARNING: {text}")
    lines.append(f"  report: {outdir / 'report.json'}, {outdir / 'report.html'}")
    return "\n".join(lines)


def latency_text(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    cycles = hw["latency_cycles"]
    if cycles is not None:
        ns = hw.get("latency_ns")
        return f"{cycles} cycles" + (f" ({ns} ns at {hw['clock_period_ns']} ns)" if ns is not None else "")
    return "set by the BondMachine build" if report["target"] == "bondmachine" else "set by HLS synthesis"


def timing_text(timing: dict[str, Any]) -> str:
    """One line on place-and-route: device, Fmax, utilisation (or why there is none)."""
    levels = f"{timing.get('logic_levels')} logic levels"
    if timing.get("error"):
        return f"place-and-route failed ({timing['error'].splitlines()[0][:120]}); {levels}"
    placed = timing.get("placed")
    if not timing.get("device") and placed:
        return (
            f"{timing.get('note')}; placed on {placed['device']}{_logic_cells(placed['utilisation'])}: "
            f"{placed['fmax_estimate_mhz']} MHz estimated after placement (not routed); {levels}"
        )
    if not timing.get("device"):
        return f"{timing.get('note')}: {levels}"
    return f"{timing['device']}: Fmax {timing['fmax_mhz']} MHz{_logic_cells(timing['utilisation'])}; {levels}"


def _logic_cells(utilisation: dict[str, Any]) -> str:
    logic = next((u for k, u in utilisation.items() if k in ("ICESTORM_LC", "TRELLIS_COMB")), None)
    return f", {logic['used']} logic cells ({logic['percent']}%)" if logic else ""


def netlist_text(net: dict[str, Any]) -> str:
    if net.get("error"):
        return f"simulation failed: {net['error'].splitlines()[0][:160]}"
    return (
        f"{net['samples']} vectors through the synthesised netlist ({net['simulator']}): "
        f"{net['mismatches']} mismatches with golden"
    )


def _checks(ver: dict[str, Any]) -> str:
    text = ""
    proto = ver.get("protocol")
    if proto is not None:
        text += (
            f"; cocotb {proto.get('tests', 0) - proto.get('failed', 0)}/{proto.get('tests', 0)} protocol tests passed"
        )
    timing = ver.get("timing")
    if timing is not None:
        text += (
            "; latency and interval measured as stated"
            if timing["agree"]
            else (
                f"; measured latency {timing['measured']['latency_cycles']} and interval "
                f"{timing['measured']['initiation_interval']} differ from the design's"
            )
        )
    hls = ver.get("hls")
    if hls is not None:
        diffs = len(hls["precision_differences"])
        text += f"; HLS project precisions {'as the IR' if not diffs else f'differ from the IR in {diffs} places'}"
    return text


def verdict(ver: dict[str, Any]) -> str:
    proto, hls, net = ver.get("protocol"), ver.get("hls"), ver.get("netlist")
    if not ver["bit_exact"]:
        return "MISMATCH"
    if net is not None and not net.get("bit_exact"):
        return "NETLIST MISMATCH"
    if ver.get("bondmachine") is not None:
        return "EXPORTED EXACTLY (not simulated)"
    if proto is not None and (proto.get("failed") != 0 or not proto.get("tests")):
        return "PROTOCOL TESTS FAILED"
    if hls is not None and hls["precision_differences"]:
        return "HLS PRECISIONS CHANGED"
    if ver.get("timing") is not None and not ver["timing"]["agree"]:
        return "TIMING DIFFERS"
    return "BIT-EXACT"
