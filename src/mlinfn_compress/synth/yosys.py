"""Resource estimates without vendor tools: ghdl --synth, then yosys synth_xilinx.

The counts are yosys's technology mapping for a Xilinx 7-series part (LUTs,
flip-flops, DSP48E1, CARRY4): a portable estimate, not a vendor place-and-route.
Synthesis keeps the design's hierarchy, so the counts come per entity (per
layer) as well as in total, once with DSP48E1 blocks and once without
(``-nodsp``); across layer boundaries yosys does not optimise.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from mlinfn_compress.sim import tools
from mlinfn_compress.sim.ghdl import run_tool, synth_verilog
from mlinfn_compress.synth.netlist import ghdl_netlist

FAMILY = "xc7"


def yosys() -> str:
    """The yosys program (ToolMissing when it is not installed)."""
    return tools.find("yosys")


def count_resources(cells: dict[str, int]) -> dict[str, int]:
    """LUT, FF, DSP, CARRY and BRAM counts from yosys's cells by type."""

    def total(prefixes: tuple[str, ...]) -> int:
        return sum(n for cell, n in cells.items() if cell.startswith(prefixes))

    return {
        "LUT": total(("LUT",)),
        "FF": total(("FD",)),
        "DSP": total(("DSP48",)),
        "CARRY": total(("CARRY",)),
        "BRAM": total(("RAMB",)),
    }


def synthesise(sources: list[Path], top: str) -> dict[str, Any]:
    """Synthesise the design; returns resources for report.json's hardware.resources."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlinfn-synth-") as tmp:
        netlist, _ = ghdl_netlist(sources, top, Path(tmp) / "top.v")
        resources = xilinx_resources(netlist, top)
    resources["seconds"] = round(time.perf_counter() - t0, 1)
    return resources


def xilinx_resources(netlist: Path, top: str, nodsp: bool = False) -> dict[str, Any]:
    """synth_xilinx of ``top`` in ``netlist``: totals, cells per module (``modules``) and logic levels."""
    program = yosys()
    with tempfile.TemporaryDirectory(prefix="mlinfn-xilinx-") as tmp:
        work = Path(tmp)
        script = (
            f"read_verilog {netlist.resolve()}; synth_xilinx -family {FAMILY} -noiopad{' -nodsp' if nodsp else ''} "
            f"-top {top}; setattr -mod -unset top; tee -q -o stat.json stat -json; "
            "flatten; select -set comb t:FD* %n; tee -q -o ltp.txt ltp -noff @comb"
        )
        run_tool([program, "-q", "-p", script], work, "yosys synth_xilinx")
        stat = read_stat(work / "stat.json")
        ltp = re.search(r"length=(\d+)", (work / "ltp.txt").read_text())
    modules = {name.lstrip("\\"): m.get("num_cells_by_type", {}) for name, m in stat.get("modules", {}).items()}
    cells = flatten_cells(modules, top)
    return {
        "tool": f"ghdl --synth + {stat.get('creator', 'yosys')} synth_xilinx -family {FAMILY}"
        f"{' -nodsp' if nodsp else ''} (an estimate)",
        **count_resources(cells),
        "cells": sum(cells.values()),
        "logic_levels": int(ltp.group(1)) if ltp else None,
        "modules": {name: count_resources(c) for name, c in modules.items()},
        # each module with everything it instantiates, as often as it does
        "subtrees": {name: count_resources(flatten_cells(modules, name)) for name in modules},
    }


def read_stat(path: Path) -> dict[str, Any]:
    """yosys's ``stat -json`` (yosys 0.23 leaves a comma before the closing brace)."""
    return json.loads(re.sub(r",\s*\}\s*$", "}", path.read_text()))


def flatten_cells(modules: dict[str, dict[str, int]], top: str) -> dict[str, int]:
    """Cells by type of the whole design: every module's own cells times its number of instances."""
    total: dict[str, int] = {}

    def add(module: str, times: int) -> None:
        for cell, n in modules.get(module, {}).items():
            if cell in modules:
                add(cell, times * int(n))
            else:
                total[cell] = total.get(cell, 0) + times * int(n)

    add(top, 1)
    return total


# ---- netlist helpers: Verilog from the VHDL, yosys statistics and logic levels ----


def vhdl_to_verilog(sources: list[Path], top: str, workdir: Path) -> Path:
    """``ghdl --synth`` of the VHDL design into one Verilog netlist (``workdir/<top>.v``)."""
    netlist = synth_verilog(sources, top, workdir)
    path = workdir / f"{top}.v"
    path.write_text(netlist)
    return path


def synthesise_verilog(files: list[Path], top: str, workdir: Path) -> dict[str, Any]:
    """yosys ``synth_xilinx`` of Verilog files: resources, the longest path between registers in
    logic levels (``ltp -noff``: cells on the longest combinational path, carry cells included)
    and the seconds yosys took."""
    program = yosys()
    t0 = time.perf_counter()
    reads = " ".join(f"read_verilog {p.resolve()};" for p in files)
    script = (
        f"{reads} synth_xilinx -family {FAMILY} -noiopad -flatten -top {top}; "
        "tee -q -o stat.json stat -json; tee -q -o ltp.txt ltp -noff * t:FD* %d"
    )
    run_tool([program, "-q", "-p", script], workdir, "yosys synth_xilinx")
    seconds = time.perf_counter() - t0
    stat = json.loads((workdir / "stat.json").read_text())
    cells: dict[str, int] = {}
    for module in stat.get("modules", {}).values():
        for cell, n in module.get("num_cells_by_type", {}).items():
            cells[cell] = cells.get(cell, 0) + int(n)
    return {
        **count_resources(cells),
        "logic_levels": logic_levels((workdir / "ltp.txt").read_text()),
        "seconds": round(seconds, 1),
    }


def logic_levels(ltp_text: str) -> int:
    """Cells on the longest path that yosys's ``ltp`` reports (its length counts the wires)."""
    import re

    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", ltp_text)
    if m is None:
        raise RuntimeError(f"yosys ltp printed no longest path:\n{ltp_text[:500]}")
    return int(m.group(1))
