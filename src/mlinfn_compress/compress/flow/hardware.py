"""What ``--synth`` does with the VHDL design: the netlist, its simulation, resources and timing.

1. ``ghdl --synth`` writes the netlist (Verilog) of the design inside its
   place-and-route wrapper: ``OUTDIR/synth/netlist.v``;
2. Icarus Verilog simulates that netlist on at least 200 vectors and every
   output is compared with the golden model (``verification.netlist``; a
   mismatch fails the run);
3. yosys ``synth_xilinx`` counts cells per layer, with DSP48E1 blocks and
   without (``hardware.resources``);
4. nextpnr places and routes the wrapper on the smallest open-toolchain device
   that takes it (``hardware.timing``: device, utilisation, Fmax, critical path).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl import VhdlDesign
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.ir import Graph, golden
from mlinfn_compress.errors import ToolFailed

SYNTH_DIR = "synth"
RESOURCE_KEYS = ("LUT", "FF", "DSP", "CARRY", "BRAM")


@dataclass
class HardwareResult:
    resources: dict[str, Any]
    timing: dict[str, Any]
    netlist: dict[str, Any]

    @property
    def netlist_ok(self) -> bool:
        return bool(self.netlist.get("bit_exact"))


def synth_and_check(
    graph: Graph, design: VhdlDesign, dest: Path, x_int: np.ndarray, progress: Progress
) -> HardwareResult:
    """Run the four steps; files go to ``dest`` (OUTDIR/synth)."""
    from mlinfn_compress.sim.iverilog import check_netlist, netlist_vectors
    from mlinfn_compress.synth.netlist import ghdl_netlist
    from mlinfn_compress.synth.pnr import wrapper_top, write_wrapper

    assert graph.input_type is not None
    wrapper = write_wrapper(design, dest)
    try:
        with progress.step("netlist", "writing the netlist (ghdl --synth)"):
            netlist, repairs = ghdl_netlist([*design.files, wrapper], wrapper_top(design), dest / "netlist.v")
    except (RuntimeError, ToolFailed) as e:
        error = {"error": str(e)[:1000]}
        return HardwareResult(error, error, error | {"bit_exact": False})
    x = netlist_vectors(x_int, graph.input_type.min_int, graph.input_type.max_int)
    with tempfile.TemporaryDirectory(prefix="mlinfn-netlist-") as tmp:
        with progress.step("netlist_sim", f"simulating the netlist on {len(x)} vectors (Icarus Verilog)"):
            try:
                check = check_netlist(netlist, design, x, golden.run(graph, x), Path(tmp))
                check["ghdl_repairs"] = {k: n for k, n in repairs.items() if n}
            except (RuntimeError, ToolFailed) as e:
                check = {"error": str(e)[:1000], "samples": len(x), "bit_exact": False}
    with progress.step("synth", "counting resources (yosys synth_xilinx, with and without DSPs)"):
        resources = _resources(netlist, design)
    with progress.step("pnr", "placing and routing (yosys, nextpnr)"):
        timing = _timing(netlist, design, dest, resources)
    return HardwareResult(resources, timing, check)


def _resources(netlist: Path, design: VhdlDesign) -> dict[str, Any]:
    from mlinfn_compress.synth.yosys import xilinx_resources

    t0 = time.perf_counter()
    try:
        default = xilinx_resources(netlist, design.top)
        nodsp = xilinx_resources(netlist, design.top, nodsp=True)
    except (RuntimeError, ToolFailed) as e:
        return {"error": str(e)[:1000]}
    per_layer: list[dict[str, Any]] = []
    for layer in design.layers:
        if "fused_into" in layer:  # computed inside the layer before it (a relu): its cost is counted there
            per_layer.append({"layer": layer["name"], "entities": [], "computed_in": layer["fused_into"],
                              "default": _sum([]), "nodsp": _sum([])})  # fmt: skip
        elif "entities" in layer:  # a bondmachine layer: its entity holds its cores and element-wise entities
            entity = layer["entity"]
            if entity in default["subtrees"]:
                per_layer.append({"layer": layer["name"], "entities": layer["entities"],
                                  "default": default["subtrees"][entity],
                                  "nodsp": nodsp["subtrees"].get(entity, {})})  # fmt: skip
        elif "entity" in layer:
            per_layer += _module_rows(layer["name"], [layer["entity"], f"{layer['entity']}_core"], default, nodsp)
    per_layer += _module_rows("argmax", [f"{design.top}_argmax"], default, nodsp)
    per_layer += _module_rows("top level (delays, valid)", [design.top], default, nodsp)
    return {
        "tool": default["tool"],
        **{k: default[k] for k in (*RESOURCE_KEYS, "cells")},
        "nodsp": {k: nodsp[k] for k in (*RESOURCE_KEYS, "cells")},
        "per_layer": per_layer,
        "logic_levels": default["logic_levels"],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _module_rows(
    name: str, entities: list[str], default: dict[str, Any], nodsp: dict[str, Any]
) -> list[dict[str, Any]]:
    """The per-layer row of the modules among ``entities`` that synthesis kept (none: no row)."""
    found = [e for e in entities if e in default["modules"]]
    if not found:
        return []
    return [{"layer": name, "entities": found, "default": _sum([default["modules"][e] for e in found]),
             "nodsp": _sum([nodsp["modules"].get(e, {}) for e in found])}]  # fmt: skip


def _sum(counts: list[dict[str, int]]) -> dict[str, int]:
    return {k: sum(c.get(k, 0) for c in counts) for k in RESOURCE_KEYS}


def _timing(netlist: Path, design: VhdlDesign, dest: Path, resources: dict[str, Any]) -> dict[str, Any]:
    from mlinfn_compress.synth.pnr import place_and_route

    levels = resources.get("logic_levels")
    min_luts = resources.get("nodsp", {}).get("LUT", 0)
    with tempfile.TemporaryDirectory(prefix="mlinfn-pnr-") as tmp:
        try:
            timing = place_and_route(netlist, design, Path(tmp), min_luts)
        except (RuntimeError, ToolFailed) as e:
            timing = {"device": None, "error": str(e)[:1000]}
        for kept in [*Path(tmp).glob("pnr_*.json"), *Path(tmp).glob("nextpnr_*.log")]:
            shutil.copy(kept, dest / kept.name)
    timing["logic_levels"] = levels
    timing["logic_levels_on"] = "yosys synth_xilinx netlist: cells on the longest path between registers (ltp)"
    return timing
