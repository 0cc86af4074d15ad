"""Resource estimates without vendor tools: ghdl --synth, then yosys synth_xilinx.

The counts are yosys's technology mapping for a Xilinx 7-series part (LUTs,
flip-flops, DSP48E1, CARRY4): a portable estimate, not a vendor place-and-route.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from mlinfn_compress.errors import UserError

FAMILY = "xc7"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"--synth needs {name} (Debian package '{name}'); the README's set-up command installs it")
    return path


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


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
    ghdl, yosys = _tool("ghdl"), _tool("yosys")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlinfn-synth-") as tmp:
        work = Path(tmp)
        _run([ghdl, "-a", "--std=08", f"--workdir={work}", *[str(s.resolve()) for s in sources]], work, "GHDL analysis")
        netlist = _run([ghdl, "--synth", "--std=08", f"--workdir={work}", "--out=verilog", top], work, "ghdl --synth")
        (work / "top.v").write_text(netlist)
        script = (
            f"read_verilog top.v; synth_xilinx -family {FAMILY} -noiopad -flatten -top {top}; "
            "tee -q -o stat.json stat -json"
        )
        _run([yosys, "-q", "-p", script], work, "yosys synth_xilinx")
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
