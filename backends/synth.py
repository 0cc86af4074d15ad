"""Resource estimates without vendor tools: ghdl --synth, then yosys synth_xilinx.

The counts are yosys's technology mapping for a Xilinx 7-series part (LUTs,
flip-flops, DSP48E1, CARRY4): a portable estimate, not a vendor place-and-route.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from mlinfn_compress.errors import UserError
from mlinfn_compress.sim.ghdl import STD, analyse, ghdl_path, run_tool

FAMILY = "xc7"


def _yosys() -> str:
    path = shutil.which("yosys")
    if path is None:
        raise UserError("--synth needs yosys (Debian package 'yosys'); the README's set-up command installs it")
    return path


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
    ghdl, yosys = ghdl_path(), _yosys()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlinfn-synth-") as tmp:
        work = Path(tmp)
        analyse(sources, work)
        netlist = run_tool([ghdl, "--synth", STD, f"--workdir={work}", "--out=verilog", top], work, "ghdl --synth")
        (work / "top.v").write_text(netlist)
        script = (
            f"read_verilog top.v; synth_xilinx -family {FAMILY} -noiopad -flatten -top {top}; "
            "tee -q -o stat.json stat -json"
        )
        run_tool([yosys, "-q", "-p", script], work, "yosys synth_xilinx")
        stat = json.loads((work / "stat.json").read_text())
    modules = stat.get("modules", {})
    cells: dict[str, int] = {}
    for module in modules.values():
        for cell, n in module.get("num_cells_by_type", {}).items():
            cells[cell] = cells.get(cell, 0) + int(n)
    return {
        "tool": f"ghdl --synth + {stat.get('creator', 'yosys')} synth_xilinx -family {FAMILY} (an estimate)",
        **count_resources(cells),
        "cells": sum(cells.values()),
        "seconds": round(time.perf_counter() - t0, 1),
    }
