"""report.json: what a run did and what it proved, and the human summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .backends.vhdl import VhdlDesign
from .ir import Graph, Linear

FLOAT32_MANTISSA_BITS = 24


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
            if isinstance(n, Linear) and design is not None and design.arith.arith == "shift-add":
                row["adders"] = hw.get("adders")
                row["dsp_products"] = hw.get("multipliers")
        if len(n.inputs) > 1:
            row["in_shapes"] = [list(s) for s in graph.in_shapes(n)]
        extra = {k: _t(v) for k, v in types.items() if k not in ("weight", "bias", "accum", "result")}
        if extra:
            row["other_types"] = extra
        rows.append(row)
    return rows


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


def hardware(design: VhdlDesign | None, outputs: dict[str, Any]) -> dict[str, Any]:
    """report.json's ``hardware``: latency, clock and arithmetic of the VHDL design (None: HLS decides)."""
    hw: dict[str, Any] = {
        "latency_cycles": design.latency if design is not None else None,
        "initiation_interval": 1,
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
    return hw


def build_report(
    graph: Graph,
    target: str,
    design: VhdlDesign | None,
    verification: dict[str, Any],
    quantisation: dict[str, Any],
    outputs: dict[str, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
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
        "hardware": hardware(design, outputs),
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
    if hw["latency_cycles"] is None:
        latency = "set by HLS synthesis"
    else:
        latency = f"{hw['latency_cycles']} cycles"
        if hw.get("latency_ns") is not None:
            latency += f" ({hw['latency_ns']} ns at {hw['clock_period_ns']} ns)"
    if hw.get("arithmetic") == "shift-add":
        arith = f"{hw['adders']} adders" + (" and DSP products (--dsp)" if hw["dsp"] else ", no multiplier")
    else:
        arith = f"{comp['multipliers']} multipliers"
    lines.append(
        f"  latency {latency}, initiation interval {hw['initiation_interval']}; "
        f"{arith}, {comp['sparsity']:.0%} of weights zero"
    )
    res = hw.get("resources")
    if res and "LUT" in res:
        lines.append(
            f"  resources (yosys estimate, {res['seconds']} s): {res['LUT']} LUT, {res['FF']} FF, "
            f"{res['DSP']} DSP, {res['CARRY']} CARRY4"
        )
    if hw["outputs"].get("note"):
        lines.append(f"  outputs: {hw['outputs']['note']}")
    fm = report["quantisation"].get("float_model")
    if fm:
        lines.append(
            f"  vs float model: max |error| {fm['max_abs_error']:.4g}, arg-max agreement {fm['argmax_agreement']:.2%}"
        )
    lines.append(
        f"  verification: {ver['samples']} samples against {', '.join(ver['against'])}: "
        f"{ver['mismatches']} mismatches{_checks(ver)} -> {_verdict(ver)}"
    )
    if ver.get("simulation_error"):
        lines.append(f"  {ver['simulation_error']}")
    if ver["first_mismatch"]:
        fm2 = ver["first_mismatch"]
        lines.append(
            f"  first mismatch: sample {fm2['sample']}, output {fm2.get('output_name', fm2['output'])} "
            f"against {fm2['against']}: expected {fm2['expected']}, got {fm2['got']}"
        )
    lines.append(f"  report: {outdir / 'report.json'}")
    return "\n".join(lines)


def _checks(ver: dict[str, Any]) -> str:
    text = ""
    proto = ver.get("protocol")
    if proto is not None:
        text += (
            f"; cocotb {proto.get('tests', 0) - proto.get('failed', 0)}/{proto.get('tests', 0)} protocol tests passed"
        )
    hls = ver.get("hls")
    if hls is not None:
        diffs = len(hls["precision_differences"])
        text += f"; HLS project precisions {'as the IR' if not diffs else f'differ from the IR in {diffs} places'}"
    return text


def _verdict(ver: dict[str, Any]) -> str:
    proto, hls = ver.get("protocol"), ver.get("hls")
    if not ver["bit_exact"]:
        return "MISMATCH"
    if proto is not None and (proto.get("failed") != 0 or not proto.get("tests")):
        return "PROTOCOL TESTS FAILED"
    if hls is not None and hls["precision_differences"]:
        return "HLS PRECISIONS CHANGED"
    return "BIT-EXACT"
