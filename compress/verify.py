"""Verification: simulate the generated design and compare it bit for bit.

The bulk check streams every sample through a VHDL textio bench in GHDL and
compares with the golden model (and with the framework's own inference where
that is exact); cocotb then checks the protocol (valid, latency, reset) on a
subset of the same samples.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import golden
from .backends.vhdl import VhdlDesign
from .compare import Comparison, compare
from .errors import UserError
from .fixed import to_float
from .ir import Graph
from .progress import Progress

PROTOCOL_SAMPLES = 200
DESIGN_FILE = "design.json"


@dataclass
class Verification:
    comparisons: list[Comparison]
    samples: int
    sim_seconds: float
    protocol: dict[str, Any]
    simulator: str
    test_logits: np.ndarray | None = None  # hardware outputs on the test set

    @property
    def mismatches(self) -> int:
        return max((c.mismatches for c in self.comparisons), default=0)

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and self.protocol.get("failed", 1) == 0 and self.protocol.get("tests", 0) > 0

    def to_json(self) -> dict[str, Any]:
        first = next((dict(c.first, against=c.against) for c in self.comparisons if c.first), None)
        return {
            "samples": self.samples,
            "simulator": self.simulator,
            "against": [c.against for c in self.comparisons],
            "mismatches": self.mismatches,
            "bit_exact": self.mismatches == 0,
            "first_mismatch": first,
            "comparisons": [c.to_json() for c in self.comparisons],
            "protocol": self.protocol,
            "simulation_seconds": round(self.sim_seconds, 3),
            "samples_per_second": round(self.samples / self.sim_seconds) if self.sim_seconds > 0 else None,
        }


def ghdl_version() -> str:
    try:
        out = subprocess.run(["ghdl", "--version"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0].strip()
    except (OSError, subprocess.CalledProcessError):
        return "GHDL (version unknown)"


def design_from_json(d: dict[str, Any], vhdl_dir: Path, sim_dir: Path) -> VhdlDesign:
    fields = dict(d)
    fields["files"] = [vhdl_dir / f for f in d["files"]]
    fields["testbench"] = sim_dir / d["testbench"]
    return VhdlDesign(**fields)


def run_verification(
    graph: Graph,
    design: VhdlDesign,
    x_int: np.ndarray,
    references: dict[str, np.ndarray],
    progress: Progress,
    keep_logs: Path | None = None,
    test_set: np.ndarray | None = None,
) -> Verification:
    """Simulate ``design`` on ``x_int`` and compare with golden and framework outputs.

    ``references`` maps a name to the float outputs of a framework model (the
    source model, the framework twin) whose inference must equal the golden
    model exactly.  ``test_set`` (integer inputs) is simulated as well, for
    accuracy; its outputs are compared with the golden model too.
    """
    from .sim.cocotb_runner import run_protocol_tests
    from .sim.ghdl import simulate

    out_t = graph.output.result_type
    assert out_t is not None
    expected = golden.run(graph, x_int)
    names = [f"out[{i}]" for i in range(design.n_out)]
    with tempfile.TemporaryDirectory(prefix="mlinfn-sim-") as tmp:
        with progress.step("simulate", f"simulating {len(x_int)} samples in GHDL"):
            sim = simulate(
                design.files, design.testbench, design.top, x_int, design.n_out, design.argmax, Path(tmp) / "bulk"
            )
        comparisons = [compare(sim.logits, expected["logits"], "golden", names)]
        if design.argmax:
            assert sim.argmax is not None
            comparisons.append(compare(sim.argmax, expected["argmax"], "golden (arg-max)", ["argmax"]))
        hw = to_float(sim.logits, out_t.frac)
        for ref_name, ref_out in references.items():
            comparisons.append(compare(hw, ref_out, ref_name, names))
        test_logits = None
        if test_set is not None:
            with progress.step("test_set", f"simulating the {len(test_set)} test samples in GHDL"):
                test_sim = simulate(
                    design.files,
                    design.testbench,
                    design.top,
                    test_set,
                    design.n_out,
                    design.argmax,
                    Path(tmp) / "test",
                )
            test_logits = test_sim.logits
            comparisons.append(compare(test_logits, golden.run(graph, test_set)["logits"], "golden (test set)", names))
        k = min(len(x_int), PROTOCOL_SAMPLES)
        with progress.step("protocol", f"cocotb protocol tests on {k} samples"):
            try:
                proto = run_protocol_tests(
                    design.files,
                    design.top,
                    x_int[:k],
                    expected["logits"][:k],
                    expected["argmax"][:k] if design.argmax else None,
                    (design.w_in, design.w_out, design.out_signed, design.latency),
                    Path(tmp) / "cocotb",
                )
                protocol = {"tests": proto.tests, "failed": proto.failed, "samples": proto.samples}
            except RuntimeError as e:
                protocol = {"tests": 0, "failed": 1, "samples": k, "error": str(e)[:500]}
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                for name in ("cocotb.log", "results.xml"):
                    src = Path(tmp) / "cocotb" / name
                    if src.exists():
                        shutil.copy(src, keep_logs / name)
    simulator = f"{ghdl_version()}: VHDL textio bench (all samples); cocotb protocol tests"
    return Verification(comparisons, len(x_int), sim.seconds, protocol, simulator, test_logits)


def load_outdir(outdir: Path) -> tuple[Graph, VhdlDesign, dict[str, Any]]:
    """Read back what a run wrote: the IR, the design description and the report."""
    design_file = outdir / DESIGN_FILE
    if not design_file.exists():
        raise UserError(f"{outdir}: not an mlinfn-compress output (no {DESIGN_FILE})")
    d = json.loads(design_file.read_text())
    graph = Graph.from_json(d["ir"])
    design = design_from_json(d["vhdl"], outdir / "vhdl", outdir / "sim")
    missing = [p for p in [*design.files, design.testbench] if not p.exists()]
    if missing:
        raise UserError(f"{outdir}: design files are missing: {', '.join(str(p) for p in missing)}")
    report_file = outdir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return graph, design, report
