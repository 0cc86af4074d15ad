"""Verification: simulate the generated design and compare it bit for bit.

The bulk check streams every sample through a VHDL textio bench in GHDL and
compares with the golden model (and with the framework's own inference where
that is exact); cocotb then checks the protocol (valid, latency, reset; for
the streaming and bondmachine architectures also back-pressure) on a subset
of the same samples.  The design description (design.json) says how the bench takes a
sample: one word, or an image as one word per pixel; the streaming bench
(which also drives the bondmachine architecture, one word per sample) also
measures latency and initiation interval, which must equal what the
renderer stated.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlinfn_compress.backends.vhdl import ArithOptions, VhdlDesign
from mlinfn_compress.compress.fixed import to_float
from mlinfn_compress.compress.flow.compare import Comparison, compare
from mlinfn_compress.compress.flow.progress import Progress
from mlinfn_compress.compress.ir import Graph, Softmax, golden
from mlinfn_compress.errors import ToolFailed, UserError

PROTOCOL_SAMPLES = 200
PROTOCOL_CYCLES = 4_000  # streaming designs: about this many clocks of images for each cocotb test
DESIGN_FILE = "design.json"


@dataclass
class Verification:
    comparisons: list[Comparison]
    samples: int
    sim_seconds: float
    protocol: dict[str, Any] | None  # cocotb results (VHDL only)
    simulator: str
    test_logits: np.ndarray | None = None  # hardware outputs on the test set
    test_golden: np.ndarray | None = None  # the golden model's outputs on the test set
    hls: dict[str, Any] | None = None  # the C simulation's facts (HLS only)
    timing: dict[str, Any] | None = None  # streaming: stated and measured latency and interval
    error: str | None = None  # why the design stopped its simulation (a value out of its range)
    test_outputs: dict[str, np.ndarray] = field(default_factory=dict)  # each simulator's outputs on the test set

    @property
    def mismatches(self) -> int:
        return max((c.mismatches for c in self.comparisons), default=0)

    @property
    def passed(self) -> bool:
        protocol_ok = self.protocol is None or (
            self.protocol.get("failed", 1) == 0 and self.protocol.get("tests", 0) > 0
        )
        hls_ok = self.hls is None or not self.hls["precision_differences"]
        timing_ok = self.timing is None or self.timing["agree"]
        return self.mismatches == 0 and protocol_ok and hls_ok and timing_ok

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
            "hls": self.hls,
            "timing": self.timing,
            "simulation_error": self.error,
            "simulation_seconds": round(self.sim_seconds, 3),
            "samples_per_second": round(self.samples / self.sim_seconds) if self.sim_seconds > 0 else None,
        }


def design_from_json(d: dict[str, Any], vhdl_dir: Path, sim_dir: Path) -> VhdlDesign:
    fields = dict(d)
    fields["files"] = [vhdl_dir / f for f in d["files"]]
    fields["testbench"] = sim_dir / d["testbench"]
    if "arith" in d:
        fields["arith"] = ArithOptions.from_json(d["arith"])
    return VhdlDesign(**fields)


def run_verification(
    graph: Graph,
    x_int: np.ndarray,
    references: dict[str, np.ndarray],
    progress: Progress,
    *,
    vhdl: VhdlDesign | None = None,
    hls: Any = None,
    keep_logs: Path | None = None,
    test_set: np.ndarray | None = None,
    expected: dict[str, np.ndarray] | None = None,
) -> Verification:
    """Simulate the design(s) on ``x_int`` and compare with golden and framework outputs.

    ``references`` maps a name to the float outputs of a framework model (the
    source model, the framework twin) whose inference must equal the golden
    model exactly.  ``test_set`` (integer inputs) is simulated as well, for
    accuracy; its outputs are compared with the golden model too.  ``expected``
    is the golden model's output on ``x_int`` when the caller already has it.  With both a
    VHDL design and an HLS project, the two are also compared with each other.
    """
    out_t = graph.output.result_type
    assert out_t is not None
    expected = expected if expected is not None else golden.run(graph, x_int)
    expected_test = golden.run(graph, test_set)["logits"] if test_set is not None else None
    names = [f"out[{i}]" for i in range(graph.output.size)]
    outputs: dict[str, np.ndarray] = {}
    test_outputs: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    simulators: list[str] = []
    errors: dict[str, str | None] = {}
    protocol = hls_info = timing = None
    argmax = None
    with tempfile.TemporaryDirectory(prefix="mlinfn-sim-") as tmp:
        if vhdl is not None:
            sims = _simulate_vhdl(vhdl, x_int, test_set, Path(tmp), progress)
            outputs["vhdl"], argmax, seconds["vhdl"] = sims[0].logits, sims[0].argmax, sims[0].seconds
            errors["vhdl"] = sims[0].error
            if sims[1] is not None:
                test_outputs["vhdl"] = sims[1].logits
            if sims[0].timing is not None:
                timing = _timing(vhdl, sims[0].timing)
            protocol = _protocol(vhdl, x_int, expected, Path(tmp), progress, keep_logs)
            simulators.append(
                f"{sims[0].version}, {sims[0].backend} backend: VHDL textio bench (all samples); cocotb protocol tests"
            )
    if hls is not None:
        hls_info, outputs["hls"], hls_test, seconds["hls"] = _simulate_hls(hls, x_int, test_set, progress)
        if hls_test is not None:
            test_outputs["hls"] = hls_test
        simulators.append(f"hls4ml {hls_info['hls4ml']} C-simulation ({hls.backend} project, g++)")
    several = len(outputs) > 1
    comparisons = []
    for target, out in outputs.items():
        prefix = f"{target}: " if several else ""
        comparisons.append(compare(out, expected["logits"], f"{prefix}golden", names))
        if target == "vhdl" and argmax is not None:
            comparisons.append(compare(argmax, expected["argmax"], f"{prefix}golden (arg-max)", ["argmax"]))
        for ref_name, ref_out in references.items() if not isinstance(graph.output, Softmax) else ():
            comparisons.append(compare(to_float(out, out_t.frac), ref_out, f"{prefix}{ref_name}", names))
        if target in test_outputs and expected_test is not None:
            comparisons.append(compare(test_outputs[target], expected_test, f"{prefix}golden (test set)", names))
    if several:
        comparisons.append(compare(outputs["hls"], outputs["vhdl"], "hls vs vhdl", names))
    if isinstance(graph.output, Softmax) and references:
        comparisons += _logit_comparisons(graph, x_int, references)
    first = "vhdl" if "vhdl" in outputs else "hls"
    return Verification(
        comparisons,
        len(x_int),
        seconds[first],
        protocol,
        "; ".join(simulators),
        test_outputs.get(first),
        expected_test,
        hls_info,
        timing,
        errors.get("vhdl"),
        test_outputs,
    )


def _logit_comparisons(graph: Graph, x_int: np.ndarray, references: dict[str, np.ndarray]) -> list[Comparison]:
    """The framework models compute the logits, not the table softmax: compare them with the golden model's
    logits, the softmax's input (the hardware is compared with the golden probabilities)."""
    tensor = graph.output.inputs[0]
    logits = golden.flat(graph.run_int(x_int)[tensor])
    frac = graph.type_of(tensor).frac
    names = [f"{tensor}[{i}]" for i in range(logits.shape[1])]
    return [
        compare(to_float(logits, frac), ref, f"golden logits before the table softmax vs {name}", names)
        for name, ref in references.items()
    ]


def _timing(design: VhdlDesign, measured: dict[str, Any]) -> dict[str, Any]:
    """The renderer's latency and interval beside the bench's; they agree where the bench could measure."""
    stated = {"latency_cycles": design.latency, "initiation_interval": design.initiation_interval}
    agree = measured["latency_cycles"] == design.latency
    if measured["samples"] >= max(design.steady_from, 2):
        agree = agree and measured["initiation_interval"] == design.initiation_interval
    return {"stated": stated, "measured": measured, "agree": agree}


def _simulate_vhdl(
    design: VhdlDesign, x_int: np.ndarray, test_set: np.ndarray | None, tmp: Path, progress: Progress
) -> tuple[Any, Any]:
    from mlinfn_compress.sim.ghdl import DesignStopped, SimResult, sim_backend, simulate_design

    def run(x: np.ndarray, work: Path) -> SimResult:
        try:
            return simulate_design(design, x, work)
        except DesignStopped as e:  # no outputs: every sample counts as a mismatch
            empty = np.zeros((0, design.n_out * design.out_words), dtype=np.int64)
            backend = sim_backend(len(x))
            return SimResult(empty, np.zeros(0, np.int64) if design.argmax else None, 0.0, 0.0,
                             backend=backend.name, error=str(e), version=backend.version())  # fmt: skip

    with progress.step("simulate", f"simulating {len(x_int)} samples in GHDL"):
        sim = run(x_int, tmp / "bulk")
    test_sim = None
    if test_set is not None:
        with progress.step("test_set", f"simulating the {len(test_set)} test samples in GHDL"):
            test_sim = run(test_set, tmp / "test")
    return sim, test_sim


def _protocol(
    design: VhdlDesign,
    x_int: np.ndarray,
    expected: dict[str, np.ndarray],
    tmp: Path,
    progress: Progress,
    keep_logs: Path | None,
) -> dict[str, Any]:
    from mlinfn_compress.sim.cocotb_runner import run_protocol_tests

    k = min(len(x_int), PROTOCOL_SAMPLES)
    meta: tuple[int, ...] = (design.w_in, design.w_out, design.out_signed, design.latency)
    module = "protocol_test"
    if design.architecture != "dataflow":  # stream and bondmachine: the handshake interface
        per_sample = max(design.initiation_interval, design.in_words, design.out_words)
        k = min(k, max(3, design.steady_from, PROTOCOL_CYCLES // per_sample))
        meta = (design.w_in, design.n_in, design.in_words, design.w_out, design.n_out, design.out_words,
                design.out_signed, design.latency, design.initiation_interval, design.steady_from)  # fmt: skip
        module = "stream_protocol_test"
    with progress.step("protocol", f"cocotb protocol tests on {k} samples"):
        try:
            proto = run_protocol_tests(
                design.files,
                design.top,
                x_int[:k],
                expected["logits"][:k],
                expected["argmax"][:k] if design.argmax else None,
                meta,
                tmp / "cocotb",
                module=module,
            )
            protocol = {"tests": proto.tests, "failed": proto.failed, "samples": proto.samples,
                        "backend": proto.backend}  # fmt: skip
        except (RuntimeError, ToolFailed) as e:  # the design stopped the simulator: a failed check
            protocol = {"tests": 0, "failed": 1, "samples": k, "error": str(e)[:500]}
        if keep_logs is not None:
            keep_logs.mkdir(parents=True, exist_ok=True)
            for name in ("cocotb.log", "results.xml"):
                src = tmp / "cocotb" / name
                if src.exists():
                    shutil.copy(src, keep_logs / name)
    return protocol


def _simulate_hls(
    project: Any, x_int: np.ndarray, test_set: np.ndarray | None, progress: Progress
) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None, float]:
    """Compile the HLS project on disk and run it; (facts, outputs, test-set outputs, predict seconds)."""
    import importlib.metadata

    from mlinfn_compress.sim.hls_csim import compile_project, precision_differences, predict_ints

    with progress.step("hls_compile", "compiling the HLS C-simulation with g++"):
        lib = compile_project(project)
    with progress.step("hls_csim", f"running the C-simulation on {len(x_int)} samples"):
        t0 = time.perf_counter()
        out = predict_ints(lib, x_int)
        seconds = time.perf_counter() - t0
        test = predict_ints(lib, test_set) if test_set is not None else None
    info = {
        "hls4ml": importlib.metadata.version("hls4ml"),
        "backend": project.backend,
        "project": project.project_name,
        "compile_seconds": round(lib.compile_seconds, 3),
        "precision_differences": precision_differences(project),
    }
    return info, out, test, seconds


def load_outdir(outdir: Path) -> tuple[Graph, VhdlDesign | None, Any, dict[str, Any]]:
    """Read back what a run wrote: the IR, the VHDL design and/or HLS project, and the report."""
    design_file = outdir / DESIGN_FILE
    if not design_file.exists():
        raise UserError(f"{outdir}: not an mlinfn-compress output (no {DESIGN_FILE})")
    d = json.loads(design_file.read_text())
    graph = Graph.from_json(d["ir"])
    design = None
    if d.get("vhdl") is not None:
        design = design_from_json(d["vhdl"], outdir / "vhdl", outdir / "sim")
        missing = [p for p in [*design.files, design.testbench] if not p.exists()]
        if missing:
            raise UserError(f"{outdir}: design files are missing: {', '.join(str(p) for p in missing)}")
    project = None
    if d.get("hls") is not None:
        from mlinfn_compress.backends.hls import load_project

        try:
            project = load_project(outdir / "hls")
        except (OSError, ValueError) as e:
            raise UserError(f"{outdir}: cannot read the HLS project ({e})") from e
    report_file = outdir / "report.json"
    report = json.loads(report_file.read_text()) if report_file.exists() else {}
    return graph, design, project, report
