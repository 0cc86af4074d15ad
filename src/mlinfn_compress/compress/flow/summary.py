"""The summary a run prints, and the one-line texts report.html shares with it, all read from report.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
    asked = ""
    if "asked_mhz" in timing:
        asked = f" (asked {timing['asked_mhz']} MHz: {'met' if timing['met'] else 'not met'})"
    return f"{timing['device']}: Fmax {timing['fmax_mhz']} MHz{asked}{_logic_cells(timing['utilisation'])}; {levels}"


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
